"""Pure helpers over snapshot nodes: where a value lives, what its children are.

A value shown in the TUI is addressed the way `Session.inspect` wants it: a
scope (a thread's frame, a module, or `__main__`), an optional root
expression evaluated in that scope, and a path of `["attr", name]` /
`["item", i]` steps (docs/DESIGN.md, "Paths"). Nothing here talks to a target,
so these functions are unit-tested without one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from inspector.models import FrameInfo
from inspector.render import inline, term_safe

Node = dict[str, Any]
Step = tuple[str, str | int]

PREVIEW_CHARS = 120  # a label's value preview is cut here; the full value is copyable
CONTAINER_KINDS = frozenset({"seq", "set", "map"})
EXPANDABLE_KINDS = CONTAINER_KINDS | {"object", "cut"}


class FrameGoneError(Exception):
    """The frame a scope names is no longer on its thread's stack."""


@dataclass(frozen=True)
class Scope:
    """Where a query runs: a thread's frame, or a module's globals (`__main__`).

    A live thread's stack moves on between two requests, so frame #1 now may
    be another function than frame #1 a second ago. A frame scope therefore
    names the call itself (`frame_id`, from the stack read): the agent finds
    exactly that call wherever it is on the stack now, or says it returned.
    Without a frame_id (an older agent), it remembers which function it is
    (qualname, file) and its depth from the outermost frame, and `find_frame`
    turns that back into the current index before each request.
    """

    thread: int | None = None
    frame: int | None = None  # index when the stack was read (0 = innermost)
    module: str | None = None
    label: str = "__main__"
    qualname: str | None = None
    file: str | None = None
    depth: int | None = None  # from the outermost frame (0 = the thread's first frame)
    frame_id: int | None = None  # FrameInfo.frame_id: this very call

    @classmethod
    def of_frame(cls, thread: int, frame: FrameInfo, stack_size: int, label: str) -> Scope:
        return cls(thread=thread, frame=frame.index, label=label, qualname=frame.qualname,
                   file=frame.file, depth=stack_size - 1 - frame.index,
                   frame_id=frame.frame_id)

    @property
    def is_frame(self) -> bool:
        return self.thread is not None

    def call_args(self, frame: int | None = None) -> dict[str, Any]:
        """Keyword arguments for Session.eval / Session.inspect."""
        if self.thread is not None:
            args: dict[str, Any] = {"thread": self.thread,
                                    "frame": frame if frame is not None else self.frame or 0}
            if self.frame_id is not None:
                args["frame_id"] = self.frame_id
            return args
        return {"module": self.module} if self.module else {}


def find_frame(frames: Sequence[FrameInfo], scope: Scope) -> int:
    """The current index of the scope's frame in `frames` (innermost first).

    Raises FrameGoneError when no frame runs the same function any more.
    """
    if scope.qualname is None:
        return scope.frame or 0

    def same(f: FrameInfo) -> bool:
        return f.qualname == scope.qualname and f.file == scope.file

    expected = len(frames) - 1 - (scope.depth or 0)
    if 0 <= expected < len(frames) and same(frames[expected]):
        return frames[expected].index
    candidates = [f.index for f in frames if same(f)]
    if not candidates:
        raise FrameGoneError("%s has returned: it is no longer on the thread's stack (r "
                             "reloads the stack)" % scope.qualname)
    return min(candidates, key=lambda i: abs(i - expected))


MAIN = Scope()


@dataclass(frozen=True)
class Address:
    """A value in the target: scope + root expression + path of steps."""

    scope: Scope
    expr: str  # "" addresses the scope's namespace itself (its locals or globals)
    path: tuple[Step, ...] = ()

    def child(self, step: Step) -> Address:
        return replace(self, path=(*self.path, step))

    def path_list(self) -> list[list[Any]]:
        return [[op, arg] for op, arg in self.path]

    @property
    def root_expr(self) -> str | None:
        """The `expr` argument for Session.inspect (None: the namespace)."""
        return self.expr or None

    @property
    def text(self) -> str:
        """A readable spelling: `self.jobs[3]`; a mapping's i-th value is `[#i]`."""
        if not self.expr:
            out = "locals()" if self.scope.is_frame else "globals()"
        elif _is_simple(self.expr) or not self.path:
            out = self.expr
        else:
            out = "(%s)" % self.expr
        for op, arg in self.path:
            if op == "attr":
                out += ".%s" % arg
            else:
                out += "[#%s]" % arg
        return out


def _is_simple(expr: str) -> bool:
    return all(part.isidentifier() for part in expr.split("."))


@dataclass(frozen=True)
class Child:
    """One child of a node: its display name, the step that reaches it, its node."""

    name: str
    step: Step
    node: Node


def has_children(node: Node) -> bool:
    """Whether expanding the node can show anything."""
    kind = node.get("kind")
    if kind == "cut":
        return True
    if kind in CONTAINER_KINDS:
        return bool(node.get("len") or node.get("items"))
    if kind == "object":
        return bool(node.get("attrs")) or bool(node.get("truncated"))
    return False


def children(node: Node, offset: int = 0) -> list[Child]:
    """The children a node carries, numbered from `offset` (its first item's index)."""
    kind = node.get("kind")
    out: list[Child] = []
    if kind in ("seq", "set"):
        for i, item in enumerate(node.get("items") or []):
            out.append(Child("[%d]" % (offset + i), ("item", offset + i), item))
    elif kind == "map":
        for i, pair in enumerate(node.get("items") or []):
            key, value = pair
            out.append(Child(key_text(key), ("item", offset + i), value))
    elif kind == "object":
        for name, value in (node.get("attrs") or {}).items():
            out.append(Child(str(name), ("attr", str(name)), value))
    return out


def key_text(key: Node) -> str:
    """A mapping key as a name: strings bare (`host`), anything else inline."""
    if key.get("kind") == "str" and not key.get("truncated"):
        return str(key.get("text", ""))
    return clip(inline(key), 40)


def namespace_entries(node: Node) -> list[tuple[str, Node]]:
    """(name, value node) pairs of a locals/globals `map` node."""
    return [(key_text(k), v) for k, v in node.get("items") or []]


def page_offset(node: Node, requested: int) -> int | None:
    """Where the node's items start, or None if the agent ignored `offset`.

    An agent that pages echoes the offset it honoured in the node; one that
    does not (an older agent) always sends the first items, which must not be
    shown again as if they were the next page.
    """
    if "offset" in node:
        try:
            return int(node["offset"])
        except (TypeError, ValueError):
            return None
    return 0 if requested == 0 else None


def remaining(node: Node, offset: int) -> tuple[int, int] | None:
    """(shown so far, total) when a container has more items than it carried."""
    if node.get("kind") not in CONTAINER_KINDS or not node.get("truncated"):
        return None
    total = node.get("len")
    shown = offset + len(node.get("items") or [])
    if not isinstance(total, int) or total <= shown:
        return None
    return shown, total


def more_label(shown: int, total: int) -> str:
    return "%s of %s items — more…" % (format(shown, ","), format(total, ","))


def clip(text: str, limit: int = PREVIEW_CHARS) -> str:
    text = term_safe(text.replace("\n", "⏎"))  # the target's text: no escape sequences
    return text if len(text) <= limit else text[: limit - 1] + "…"


def preview(node: Node, limit: int = PREVIEW_CHARS) -> str:
    return clip(inline(node), limit)


def type_tag(node: Node) -> str:
    """A short type description: `list · 200`, `Config`, `str · 4,096 chars`."""
    kind = node.get("kind")
    tname = str(node.get("type", "?")).rsplit(".", 1)[-1] if kind == "object" else str(
        node.get("type", "?"))
    if kind in CONTAINER_KINDS and isinstance(node.get("len"), int):
        return "%s · %s" % (tname, format(node["len"], ","))
    if kind in ("str", "bytes") and node.get("truncated"):
        return "%s · %s chars" % (tname, format(node.get("len", 0), ","))
    return tname


def number(node: Node) -> float | None:
    """The node's value when it is an exact int or float (not a bool)."""
    if node.get("kind") != "scalar" or node.get("type") not in ("int", "float"):
        return None
    value = node.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
