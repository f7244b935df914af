"""Frozen data that crosses from the library to its users (CLI, TUI, scripts).

Values from the target arrive as snapshot nodes (docs/DESIGN.md,
"Snapshots"); `Value` wraps one node and converts what can be converted to
plain Python (`to_python()`), which scripts and probes want.
"""

from __future__ import annotations

from ._record import field, record

TYPE_CHECKING = False  # typing's constant without importing typing (mypy reads it as True)
if TYPE_CHECKING:  # dump.py resolves the annotations with its own Any
    from typing import Any


@record
class Value:
    """One snapshot node (a JSON object) from the target."""

    node: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.node.get("kind", "?"))

    @property
    def type_name(self) -> str:
        return str(self.node.get("type", "?"))

    @property
    def truncated(self) -> bool:
        return bool(self.node.get("truncated"))

    def to_python(self) -> Any:
        """Plain Python for builtin values; the node itself for anything else."""
        return node_to_python(self.node)

    def __str__(self) -> str:
        """The value as `inspector eval` prints it."""
        from .render import pretty

        return pretty(self.node, 100)

    def __repr__(self) -> str:
        text = str(self)
        if len(text) > 80 or "\n" in text:
            text = text.split("\n", 1)[0][:77] + "..."
        return "Value(%s: %s)" % (self.type_name, text)


_SCALARS: dict[str, Any] = {"NoneType": None, "True": True, "False": False}


def node_to_python(node: dict[str, Any]) -> Any:
    kind = node.get("kind")
    if kind == "scalar":
        if "value" in node:
            return node["value"]
        text = node.get("text", "")
        if node.get("type") == "float":
            return float(text)
        if node.get("type") == "NoneType":
            return None
        return text
    if kind == "str":
        return node.get("text", "")
    if kind == "seq":
        items = [node_to_python(i) for i in node.get("items", [])]
        return tuple(items) if node.get("type") == "tuple" else items
    if kind == "set":
        return [node_to_python(i) for i in node.get("items", [])]
    if kind == "map":
        out = {}
        for key, value in node.get("items", []):
            k = node_to_python(key)
            try:
                hash(k)
            except TypeError:
                k = repr(k)
            out[k] = node_to_python(value)
        return out
    return node


@record
class FrameInfo:
    index: int  # 0 = innermost (the frame running now)
    function: str
    qualname: str
    file: str
    line: int
    first_line: int
    source: str | None = None  # the source line, read by the client from disk
    locals: Value | None = None
    # Names this very call while it runs (pass it as frame_id= to locals/eval/
    # inspect): a busy thread's frame #N is another function a moment later.
    frame_id: int | None = None


@record
class ThreadInfo:
    ident: int
    native_id: int | None
    name: str | None
    daemon: bool | None
    is_main: bool
    is_agent: bool
    python_thread: bool  # registered in the target's `threading` module
    top: FrameInfo | None = None

    @property
    def label(self) -> str:
        return self.name or ("thread %d" % self.ident)


@record
class ThreadStack:
    thread: ThreadInfo
    frames: tuple[FrameInfo, ...]
    frames_cut: bool = False  # deeper frames exist but were not sent


@record
class ModuleInfo:
    name: str
    file: str | None
    version: str | None


@record
class AgentInfo:
    """What the agent said about itself in the handshake."""

    pid: int
    python: tuple[int, ...]
    agent_thread: int
    agent_native_id: int | None
    extra: dict[str, Any] = field(default_factory=dict)
