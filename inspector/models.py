"""Frozen data that crosses from the library to its users (CLI, TUI, scripts).

Values from the target arrive as snapshot nodes (docs/DESIGN.md,
"Snapshots"); `Value` wraps one node and converts what can be converted to
plain Python (`to_python()`), which scripts and probes want.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class FrameInfo:
    index: int  # 0 = innermost (the frame running now)
    function: str
    qualname: str
    file: str
    line: int
    first_line: int
    source: str | None = None  # the source line, read by the client from disk
    locals: Value | None = None


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class ThreadStack:
    thread: ThreadInfo
    frames: tuple[FrameInfo, ...]
    frames_cut: bool = False  # deeper frames exist but were not sent


@dataclass(frozen=True)
class ModuleInfo:
    name: str
    file: str | None
    version: str | None


@dataclass(frozen=True)
class AgentInfo:
    """What the agent said about itself in the handshake."""

    pid: int
    python: tuple[int, ...]
    agent_thread: int
    agent_native_id: int | None
    extra: dict[str, Any] = field(default_factory=dict)


# -- object census, memory summary, asyncio tasks ------------------------------


@dataclass(frozen=True)
class CensusEntry:
    """One type in a census: its stable name (module + qualname), count, bytes."""

    type: str
    count: int
    size: int  # shallow bytes, like sys.getsizeof (GC header included)


@dataclass(frozen=True)
class Census:
    """Objects the target's garbage collector tracks, by type (payloads/census.py)."""

    entries: tuple[CensusEntry, ...]  # sorted by `sort`, at most the requested top
    total_objects: int
    total_size: int
    distinct_types: int
    generations: tuple[int, ...]  # objects listed per gc generation
    frozen: int  # objects in the permanent generation (gc.freeze), not walked
    duration: float  # seconds the census took in the target
    list_pause: float  # longest single gc.get_objects() call (GIL held throughout)
    max_hold: float  # longest stretch the census held the GIL
    complete: bool  # False: the time budget ran out, counts are partial
    stopped: str | None = None  # the budget that stopped it
    sort: str = "count"
    taken_at: float = 0.0  # time.time() on the client when the answer arrived

    @property
    def has_all_types(self) -> bool:
        """True when every type is listed (a type missing from it has count 0)."""
        return len(self.entries) >= self.distinct_types

    def by_type(self) -> dict[str, CensusEntry]:
        return {e.type: e for e in self.entries}


@dataclass(frozen=True)
class CensusDelta:
    """How one type changed between two censuses (inspector.census.census_diff)."""

    type: str
    count_before: int
    count_after: int
    size_before: int
    size_after: int
    new: bool = False  # absent from the first census

    @property
    def count_delta(self) -> int:
        return self.count_after - self.count_before

    @property
    def size_delta(self) -> int:
        return self.size_after - self.size_before


@dataclass(frozen=True)
class GcGeneration:
    index: int
    count: int | None  # allocations (gen 0) or collections of the younger gen since the last
    threshold: int | None
    collections: int | None
    collected: int | None
    uncollectable: int | None


@dataclass(frozen=True)
class AllocationSite:
    """A tracemalloc allocation site (the innermost frame of its traces)."""

    file: str
    line: int
    size: int  # bytes currently allocated from here
    count: int  # live blocks


@dataclass(frozen=True)
class TracemallocSummary:
    tracing: bool | None  # None: the target's _tracemalloc looked replaced
    current: int | None = None
    peak: int | None = None
    overhead: int | None = None  # memory tracemalloc itself uses
    traceback_limit: int | None = None
    top: tuple[AllocationSite, ...] = ()
    sites: int | None = None
    note: str | None = None


@dataclass(frozen=True)
class ProcessStats:
    """Sampled from outside the target with psutil (nothing injected)."""

    rss: int
    vms: int
    cpu_user: float  # seconds
    cpu_system: float
    num_threads: int
    num_fds: int | None
    uptime: float


@dataclass(frozen=True)
class MemorySummary:
    gc_enabled: bool
    gc_counts: tuple[int, ...]
    gc_thresholds: tuple[int, ...]
    generations: tuple[GcGeneration, ...]
    garbage: int | None  # len(gc.garbage)
    frozen: int
    tracemalloc: TracemallocSummary | None  # None: the target never imported tracemalloc
    process: ProcessStats | None = None


@dataclass(frozen=True)
class AwaitLink:
    """One link of a task's await chain, outermost (the task's coroutine) first."""

    kind: str  # "coroutine" | "generator" | "awaitable" (a future, ...) | "cut"
    name: str  # qualname of a coroutine/generator, type name of anything else
    file: str | None = None
    line: int | None = None
    running: bool = False  # executing right now (its thread is in a C call)

    @property
    def label(self) -> str:
        where = " %s:%d" % (self.file, self.line or 0) if self.file else ""
        return "%s%s%s" % (self.name, where, " (running)" if self.running else "")


@dataclass(frozen=True)
class LoopInfo:
    id: int
    type: str
    thread: int | None  # ident of the thread running it (loop._thread_id)
    thread_name: str | None
    running: bool
    closed: bool | None
    current_task: int | None  # id of the task running in it right now


@dataclass(frozen=True)
class TaskInfo:
    id: int
    name: str | None
    type: str
    state: str  # "pending" | "done" | "cancelled"
    loop: LoopInfo | None
    chain: tuple[AwaitLink, ...]
    waiter: str | None = None  # type of the future the task waits on
    awaiting: tuple[int, ...] = ()  # ids of the tasks it waits on (await, gather, TaskGroup)
    current: bool = False  # running in its loop right now
    exception: str | None = None  # type name, for a task that finished with one

    @property
    def label(self) -> str:
        return self.name or ("task %#x" % self.id)

    @property
    def coroutine(self) -> str | None:
        return self.chain[0].name if self.chain else None


@dataclass(frozen=True)
class TaskNode:
    """A task and the tasks it waits on, for tree views (render.task_tree)."""

    task: TaskInfo
    children: tuple[TaskNode, ...] = ()
    cycle: bool = False  # the task already appears above (an await cycle)


@dataclass(frozen=True)
class DumpTarget:
    """Who a dump describes."""

    pid: int
    python: tuple[int, ...]
    cmdline: str
    exe: str
    host: str


@dataclass(frozen=True)
class Dump:
    """A thread dump for bug reports (`inspector dump`), readable offline (`show`)."""

    version: int  # DUMP_VERSION of the writer
    created: str  # ISO 8601, UTC
    tool: str  # "inspector 0.1.0"
    target: DumpTarget
    threads: tuple[ThreadStack, ...]
    memory: MemorySummary | None
    tasks: tuple[TaskInfo, ...] | None
    census: Census | None = None
    redacted: bool = True  # secret-looking values hidden
    with_locals: bool = False
    errors: dict[str, str] = field(default_factory=dict)  # section -> why it is missing
