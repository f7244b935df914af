"""Browse a dump offline (`inspector show dump.json --tui`): no target, no agent.

`DumpSession` answers the TUI's questions from a `Dump` (inspector.dump):
threads, stacks, the locals that were dumped (expanded through the stored
snapshot nodes, read-only), the census and asyncio tasks if the dump has them.
Queries need a live process and are refused with a message saying so. The
metrics bar shows the dumped process figures, frozen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from inspector.diagnostics import Census, Dump, TaskInfo
from inspector.errors import EvalError, UsageError
from inspector.metrics import ProcessSample
from inspector.models import FrameInfo, ModuleInfo, ThreadInfo, ThreadStack, Value

if TYPE_CHECKING:
    from .app import InspectorApp, Timings

OFFLINE = "this is a dump (offline): queries need the live process"


@dataclass(frozen=True)
class _DumpTarget:
    python_version: tuple[int, ...]
    cmdline: str


@dataclass(frozen=True)
class _Offline:
    """Shown in the header where a live session shows how it attached."""

    backend: str


class DumpSession:
    """A read-only stand-in for inspector.Session, backed by a dump."""

    def __init__(self, dump: Dump) -> None:
        self.dump = dump
        self.pid = dump.target.pid
        self.target = _DumpTarget(tuple(dump.target.python), dump.target.cmdline)
        self.injection = _Offline("offline dump of %s" % dump.created)
        self.closed = False

    # -- what the dump has --------------------------------------------------------------

    def threads(self) -> list[ThreadInfo]:
        return [st.thread for st in self.dump.threads]

    def stack(self, thread: int | str | None = None, *,
              locals: bool = False) -> list[ThreadStack]:
        if thread is None:
            return list(self.dump.threads)
        return [self._thread(thread)]

    def locals(self, thread: int | str, frame: int = 0, *,
               frame_id: int | None = None) -> Value:
        found = self._frame(thread, frame, frame_id)
        if found.locals is None:
            raise EvalError("the dump has no locals: write it with `inspector dump --locals`")
        return found.locals

    def modules(self) -> list[ModuleInfo]:
        return []

    def census(self, top: int = 20, *, sort: str = "count",
               max_seconds: float | None = None) -> Census:
        if self.dump.census is None:
            raise EvalError("the dump has no census: write it with `inspector dump --census N`")
        return self.dump.census

    def tasks(self) -> list[TaskInfo]:
        return list(self.dump.tasks or ())

    def inspect(self, path: list[list[Any]] | None = None, *, expr: str | None = None,
                thread: int | str | None = None, frame: int | None = None,
                module: str | None = None, offset: int = 0,
                frame_id: int | None = None) -> Value:
        if expr is not None or thread is None:
            raise EvalError(OFFLINE)
        node = self.locals(thread, frame or 0, frame_id=frame_id).node
        for step in path or []:
            node = _child(node, step)
        if offset:
            raise EvalError("the dump holds the first items only; paging needs the live "
                            "process")
        return Value(node)

    def eval(self, expr: str, thread: int | str | None = None, frame: int | None = None, *,
             module: str | None = None, isolated: bool = False,
             frame_id: int | None = None) -> Value:
        raise EvalError(OFFLINE)

    def detach(self) -> None:
        self.closed = True

    # -- lookups ------------------------------------------------------------------------

    def _thread(self, thread: int | str) -> ThreadStack:
        for st in self.dump.threads:
            t = st.thread
            if thread in (t.ident, t.native_id, t.name):
                return st
        raise EvalError("the dump has no thread %r" % (thread,))

    def _frame(self, thread: int | str, index: int, frame_id: int | None) -> FrameInfo:
        frames = self._thread(thread).frames
        if frame_id is not None:
            for f in frames:
                if f.frame_id == frame_id:
                    return f
        for f in frames:
            if f.index == index:
                return f
        raise EvalError("thread %r has no frame %d in the dump" % (thread, index))


def _child(node: dict[str, Any], step: list[Any]) -> dict[str, Any]:
    """Follow one ["attr", name] / ["item", i] step inside stored snapshot nodes."""
    kind, arg = step[0], step[1]
    if node.get("kind") == "cut":
        raise EvalError("not in the dump: the snapshot stopped at this depth")
    if kind == "attr":
        attrs = node.get("attrs") or {}
        if arg in attrs:
            return dict(attrs[arg])
    elif kind == "item" and isinstance(arg, int):
        items = node.get("items") or []
        if 0 <= arg < len(items):
            item = items[arg]
            return dict(item[1] if node.get("kind") == "map" else item)
    raise EvalError("not in the dump: %s %r was not captured" % (kind, arg))


class DumpSampler:
    """The dumped process figures, frozen (there is no process to sample)."""

    def __init__(self, dump: Dump) -> None:
        self.dump = dump

    def __call__(self, pid: int) -> DumpSampler:
        return self

    def sample(self) -> ProcessSample:
        memory = self.dump.memory
        process = memory.process if memory is not None else None
        return ProcessSample(
            pid=self.dump.target.pid, at=time.monotonic(), cpu_percent=0.0,
            rss=process.rss if process is not None else 0,
            num_threads=len(self.dump.threads),
            num_fds=(process.num_fds or 0) if process is not None else 0,
            uptime=process.uptime if process is not None else 0.0)


def dump_viewer(dump: Dump, timings: Timings | None = None) -> InspectorApp:
    """The TUI over a dump: it opens straight on the process view (never the
    live process picker) and offers only what works offline."""
    from .app import InspectorApp

    if not dump.threads:
        raise UsageError("the dump has no threads to show")
    return InspectorApp(dump.target.pid, attach=lambda pid: DumpSession(dump),
                        sampler=DumpSampler(dump), list_processes=list, timings=timings,
                        offline=True)


def run_dump_viewer(dump: Dump) -> int:
    """The TUI over a dump; returns the exit code."""
    app = dump_viewer(dump)
    code = app.run()
    return int(app.return_code or code or 0)
