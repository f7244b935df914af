"""Census, memory and asyncio-task results: their frozen models and the
parsers of the agent's replies.

Kept apart from `inspector.models` so that `inspector stack` (the cold path)
does not build these classes: every record class costs import time.
"""

from __future__ import annotations

import time
from typing import Any

from ._record import field, record
from ._text import term_safe
from .models import FrameInfo, ThreadStack

# -- object census, memory summary, asyncio tasks ------------------------------


@record
class CensusEntry:
    """One type in a census: its stable name (module + qualname), count, bytes."""

    type: str
    count: int
    size: int  # shallow bytes, like sys.getsizeof (GC header included)


@record
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


@record
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


@record
class GcGeneration:
    index: int
    count: int | None  # allocations (gen 0) or collections of the younger gen since the last
    threshold: int | None
    collections: int | None
    collected: int | None
    uncollectable: int | None


@record
class AllocationSite:
    """A tracemalloc allocation site (the innermost frame of its traces)."""

    file: str
    line: int
    size: int  # bytes currently allocated from here
    count: int  # live blocks


@record
class TracemallocSummary:
    tracing: bool | None  # None: the target's _tracemalloc looked replaced
    current: int | None = None
    peak: int | None = None
    overhead: int | None = None  # memory tracemalloc itself uses
    traceback_limit: int | None = None
    top: tuple[AllocationSite, ...] = ()
    sites: int | None = None
    note: str | None = None
    imported: bool = True  # False: tracing since startup (-X tracemalloc,
    # PYTHONTRACEMALLOC), the target never imported tracemalloc


@record
class ProcessStats:
    """Sampled from outside the target with psutil (nothing injected)."""

    rss: int
    vms: int
    cpu_user: float  # seconds
    cpu_system: float
    num_threads: int
    num_fds: int | None
    uptime: float


@record
class MemorySummary:
    gc_enabled: bool
    gc_counts: tuple[int, ...]
    gc_thresholds: tuple[int, ...]
    generations: tuple[GcGeneration, ...]
    garbage: int | None  # len(gc.garbage)
    frozen: int
    tracemalloc: TracemallocSummary | None  # None: the target never imported tracemalloc
    process: ProcessStats | None = None


@record
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


@record
class LoopInfo:
    id: int
    type: str
    thread: int | None  # ident of the thread running it
    thread_name: str | None
    running: bool | None  # None: no thread was found running it, and the loop
    # does not say (uvloop keeps its state in C); see docs/DESIGN.md
    closed: bool | None
    current_task: int | None  # id of the task running in it right now
    # how the thread was found: "loop._thread_id", "current task", "stack"
    thread_found_by: str | None = None


@record
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


@record
class TaskNode:
    """A task and the tasks it waits on, for tree views (render.task_tree)."""

    task: TaskInfo
    children: tuple[TaskNode, ...] = ()
    cycle: bool = False  # the task already appears above (an await cycle)


@record
class GreenletInfo:
    """One greenlet (payloads/greenlets.py): its state and its stack."""

    id: int
    type: str
    function: str | None  # what it runs (gevent: the spawned callable)
    state: str  # "running" | "suspended" | "not started" | "dead" | "?"
    parent: int | None
    is_hub: bool
    is_main: bool  # a thread's main greenlet (no parent)
    thread: int | None  # ident of its hub's thread, when it has a hub
    thread_name: str | None
    frames: tuple[FrameInfo, ...] = ()  # innermost first
    frames_cut: bool = False
    frames_from: str | None = None  # "gr_frame" (suspended), "thread" (running now)

    @property
    def label(self) -> str:
        return self.function or self.type


@record
class HubInfo:
    """A gevent hub: the event loop of one thread."""

    id: int
    type: str
    thread: int | None
    thread_name: str | None
    loop_type: str | None
    pending_callbacks: int | None  # None: not readable without running the loop's code


@record
class Greenlets:
    """Every greenlet of the target and gevent's hubs (`inspector greenlets`)."""

    greenlet: bool  # False: the target never imported greenlet
    gevent: bool  # the target imported gevent.hub
    greenlets: tuple[GreenletInfo, ...]
    hubs: tuple[HubInfo, ...]
    total: int  # greenlets found (more than listed when truncated)
    complete: bool  # False: the heap walk ran out of time


@record
class DumpTarget:
    """Who a dump describes."""

    pid: int
    python: tuple[int, ...]
    cmdline: str
    exe: str
    host: str


@record
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


# -- parsing the agent's replies (payloads/census.py, payloads/tasks.py) -------


def parse_census(raw: dict[str, Any], taken_at: float) -> Census:
    return Census(
        entries=tuple(CensusEntry(term_safe(e["type"]), int(e["count"]), int(e["size"]))
                      for e in raw.get("types", [])),
        total_objects=int(raw.get("total_objects", 0)),
        total_size=int(raw.get("total_size", 0)),
        distinct_types=int(raw.get("distinct_types", 0)),
        generations=tuple(int(n) for n in raw.get("generations", ())),
        frozen=int(raw.get("frozen") or 0),
        duration=float(raw.get("duration") or 0.0),
        list_pause=float(raw.get("list_pause") or 0.0),
        max_hold=float(raw.get("max_hold") or 0.0),
        complete=bool(raw.get("complete", True)),
        stopped=raw.get("stopped"),
        sort=str(raw.get("sort") or "count"),
        taken_at=taken_at,
    )


def _optional_int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _tracemalloc_summary(raw: dict[str, Any] | None) -> TracemallocSummary | None:
    if raw is None:
        return None
    return TracemallocSummary(
        tracing=raw.get("tracing"),
        current=_optional_int(raw.get("current")),
        peak=_optional_int(raw.get("peak")),
        overhead=_optional_int(raw.get("overhead")),
        traceback_limit=_optional_int(raw.get("traceback_limit")),
        top=tuple(AllocationSite(term_safe(t["file"]), int(t["line"]), int(t["size"]),
                                 int(t["count"])) for t in raw.get("top") or ()),
        sites=_optional_int(raw.get("sites")),
        note=raw.get("note"),
        imported=raw.get("imported") is not False,
    )


def parse_memory_summary(raw: dict[str, Any], process: ProcessStats | None) -> MemorySummary:
    gc = raw.get("gc") or {}
    return MemorySummary(
        gc_enabled=bool(gc.get("enabled")),
        gc_counts=tuple(int(n) for n in gc.get("counts", ())),
        gc_thresholds=tuple(int(n) for n in gc.get("thresholds", ())),
        generations=tuple(
            GcGeneration(int(g["index"]), _optional_int(g.get("count")),
                         _optional_int(g.get("threshold")), _optional_int(g.get("collections")),
                         _optional_int(g.get("collected")),
                         _optional_int(g.get("uncollectable")))
            for g in gc.get("generations", ())),
        garbage=_optional_int(gc.get("garbage")),
        frozen=int(gc.get("frozen") or 0),
        tracemalloc=_tracemalloc_summary(raw.get("tracemalloc")),
        process=process,
    )


def _await_link(raw: dict[str, Any]) -> AwaitLink:
    if raw.get("kind") in ("coroutine", "generator"):
        return AwaitLink(kind=str(raw["kind"]), name=term_safe(raw.get("qualname") or "?"),
                         file=_opt_text(raw.get("file")), line=_optional_int(raw.get("line")),
                         running=bool(raw.get("running")))
    return AwaitLink(kind=str(raw.get("kind") or "awaitable"),
                     name=term_safe(raw.get("type") or ""))


def _opt_text(value: Any) -> str | None:
    """Display text from the target, escaped (term_safe); None stays None."""
    return term_safe(value) if value is not None else None


def _loop_info(raw: dict[str, Any]) -> LoopInfo:
    return LoopInfo(id=int(raw["id"]), type=term_safe(raw.get("type") or "?"),
                    thread=_optional_int(raw.get("thread")),
                    thread_name=_opt_text(raw.get("thread_name")),
                    running=_optional_bool(raw.get("running")),
                    closed=_optional_bool(raw.get("closed")),
                    current_task=_optional_int(raw.get("current_task")),
                    thread_found_by=_opt_text(raw.get("thread_found_by")))


def _optional_bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def parse_tasks(raw: dict[str, Any]) -> list[TaskInfo]:
    loops = {int(lp["id"]): _loop_info(lp) for lp in raw.get("loops", [])}
    out = []
    for t in raw.get("tasks", []):
        waiter = t.get("waiter") or {}
        loop_id = t.get("loop")
        out.append(TaskInfo(
            id=int(t["id"]), name=_opt_text(t.get("name")), type=term_safe(t.get("type") or "?"),
            state=str(t.get("state") or "?"),
            loop=loops.get(loop_id) if loop_id is not None else None,
            chain=tuple(_await_link(link) for link in t.get("chain", [])),
            waiter=waiter.get("type"),
            awaiting=tuple(int(i) for i in t.get("awaiting", [])),
            current=bool(t.get("current")),
            exception=_opt_text(t.get("exception")),
        ))
    out.sort(key=lambda task: (task.loop.id if task.loop else 0, _natural(task.label)))
    return out


def _natural(text: str) -> tuple[Any, ...]:
    """'Task-10' after 'Task-9'."""
    import re

    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


def process_stats(pid: int) -> ProcessStats | None:
    """RSS, CPU time, threads and fds of `pid` from psutil (None if it is gone)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            mem = proc.memory_info()
            cpu = proc.cpu_times()
            threads = proc.num_threads()
            created = proc.create_time()
            try:
                fds: int | None = proc.num_fds()
            except psutil.AccessDenied:
                fds = None
    except psutil.Error:
        return None
    return ProcessStats(rss=mem.rss, vms=mem.vms, cpu_user=cpu.user, cpu_system=cpu.system,
                        num_threads=threads, num_fds=fds, uptime=max(0.0, time.time() - created))


def parse_greenlets(raw: dict[str, Any], frame: Any) -> Greenlets:
    """`frame` turns one raw frame into a FrameInfo (session._frame_info)."""
    greenlets = []
    for g in raw.get("greenlets", []):
        greenlets.append(GreenletInfo(
            id=int(g["id"]), type=term_safe(g.get("type") or "?"),
            function=_opt_text(g.get("function")), state=str(g.get("state") or "?"),
            parent=_optional_int(g.get("parent")), is_hub=bool(g.get("is_hub")),
            is_main=bool(g.get("is_main")), thread=_optional_int(g.get("thread")),
            thread_name=_opt_text(g.get("thread_name")),
            frames=tuple(frame(f) for f in g.get("frames", [])),
            frames_cut=bool(g.get("frames_cut")),
            frames_from=_opt_text(g.get("frames_from"))))
    hubs = tuple(HubInfo(id=int(h["id"]), type=term_safe(h.get("type") or "?"),
                         thread=_optional_int(h.get("thread")),
                         thread_name=_opt_text(h.get("thread_name")),
                         loop_type=_opt_text(h.get("loop_type")),
                         pending_callbacks=_optional_int(h.get("pending_callbacks")))
                 for h in raw.get("hubs", []))
    order = {"running": 0, "suspended": 1, "not started": 2, "dead": 3}
    greenlets.sort(key=lambda g: (not g.is_hub, not g.is_main, order.get(g.state, 4),
                                  _natural(g.label)))
    return Greenlets(greenlet=bool(raw.get("greenlet")), gevent=bool(raw.get("gevent")),
                     greenlets=tuple(greenlets), hubs=hubs, total=int(raw.get("total") or 0),
                     complete=bool(raw.get("complete", True)))
