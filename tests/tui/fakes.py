"""Deterministic stand-ins for a session, a sampler and the process list.

Used for the snapshot tests (stable SVGs) and for states that are hard to
produce on purpose with a real target (the agent dying mid-session, a slow
answer to cancel). The flows that matter run against a real target
(test_real_target.py). Values are turned into snapshot nodes the way the
agent does (docs/DESIGN.md, "Snapshots"), with the same bounds on items.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from inspector.diagnostics import AwaitLink, Census, CensusEntry, LoopInfo, TaskInfo
from inspector.errors import BudgetExceeded, Denied, EvalError, FrameGone, TargetLost
from inspector.metrics import ProcessSample
from inspector.models import FrameInfo, ModuleInfo, ThreadInfo, ThreadStack, Value
from inspector.procs import PythonProcess

MAX_ITEMS = 100  # items per container node, as the agent sends
PID = 19271  # five digits, idents of 15: numbers as long as real ones (none may be cut)
IDENT = 140615661206400
FILE = "/srv/app/examples/threaded_service.py"
THREADING = "/usr/lib/python3.11/threading.py"
REQUESTS = "/opt/venvs/service/lib/python3.11/site-packages/requests/adapters.py"
LONG_TYPE = "sqlalchemy.orm.attributes.InstrumentedAttribute"


def node_of(value: Any, depth: int = 0, offset: int = 0) -> dict[str, Any]:
    """A snapshot node for a plain Python value (a small version of the agent's)."""
    if depth > 3:
        return {"type": type(value).__name__, "kind": "cut", "id": id(value)}
    if value is None or isinstance(value, (bool, int, float)):
        return {"type": type(value).__name__, "kind": "scalar", "text": repr(value),
                "value": value}
    if isinstance(value, str):
        return {"type": "str", "kind": "str", "text": value, "len": len(value),
                "truncated": False}
    if isinstance(value, Secret):
        return {"type": "str", "kind": "redacted", "reason": "name looks like a secret"}
    if isinstance(value, (list, tuple)):
        items = list(value)[offset:offset + MAX_ITEMS]
        node: dict[str, Any] = {
            "type": type(value).__name__, "kind": "seq", "len": len(value), "id": 1000 + depth,
            "truncated": offset + len(items) < len(value),
            "items": [node_of(i, depth + 1) for i in items]}
        if offset:
            node["offset"] = offset
        return node
    if isinstance(value, dict):
        pairs = list(value.items())[offset:offset + MAX_ITEMS]
        node = {"type": "dict", "kind": "map", "len": len(value), "id": 2000 + depth,
                "truncated": offset + len(pairs) < len(value),
                "items": [[node_of(k, depth + 1), node_of(v, depth + 1)] for k, v in pairs]}
        if offset:
            node["offset"] = offset
        return node
    if isinstance(value, Obj):
        return {"type": value.type_name, "kind": "object", "id": 3000 + depth,
                "attrs": {k: node_of(v, depth + 1) for k, v in value.attrs.items()}}
    raise TypeError(value)


@dataclass
class Obj:
    type_name: str
    attrs: dict[str, Any]


class Secret:
    pass


def service_globals() -> dict[str, Any]:
    orders = [{"id": i, "qty": i % 5 + 1, "item": "sku-%03d" % (i % 17)} for i in range(200)]
    config = Obj("__main__.Config", {"host": "127.0.0.1", "port": 8080, "timeout": 2.5,
                                      "api_key": Secret(), "features": {"fast_path": True}})
    cache = Obj("__main__.LRUCache", {"capacity": 100, "hits": 1234, "misses": 56,
                                      "_data": {i: {"id": i} for i in range(50)}})
    return {"orders": orders, "config": config, "cache": cache,
            "registry": {"svc-%02d" % i: {"healthy": i % 4 != 0} for i in range(12)},
            "big": list(range(120000))}


def worker(index: int) -> Obj:
    return Obj("__main__.Worker", {"_name": "worker-%d" % index, "done": 1000 + index,
                                   "current": {"id": 77, "created": 1.5}, "alive": True})


@dataclass
class FakeTarget:
    pid: int = PID
    python_version: tuple[int, ...] = (3, 11)
    cmdline: str = "python examples/threaded_service.py"


@dataclass
class FakeInjection:
    backend: str = "gdb"
    path: str = "thread"
    stopped_ms: float = 18.0


def _frame(index: int, function: str, qualname: str, file: str, line: int,
           source: str) -> FrameInfo:
    return FrameInfo(index, function, qualname, file, line, line - 4, source)


def _thread(n: int, name: str, *, main: bool = False, agent: bool = False) -> ThreadInfo:
    return ThreadInfo(ident=IDENT + n * 8392704, native_id=PID + n, name=name,
                      daemon=not main, is_main=main, is_agent=agent, python_thread=not agent)


THREADS = [
    _thread(0, "MainThread", main=True),
    _thread(1, "worker-0"), _thread(2, "worker-1"), _thread(3, "worker-2"),
    _thread(4, "worker-3"), _thread(5, "producer"),
    _thread(99, "inspector-agent", agent=True),
]
WORKER_1 = THREADS[2].ident


def stack_of(thread: ThreadInfo) -> ThreadStack:
    if thread.is_main:
        frames = (_frame(0, "main", "main", FILE, 104, "time.sleep(0.5)"),
                  _frame(1, "<module>", "<module>", FILE, 110, "main()"))
    elif thread.name == "producer":
        frames = (_frame(0, "producer", "producer", FILE, 95, "time.sleep(0.005)"),
                  _frame(1, "run", "Thread.run", THREADING, 982,
                         "self._target(*self._args, **self._kwargs)"))
    elif thread.is_agent:
        frames = (_frame(0, "serve", "Agent.serve", "<inspector-agent:agent>", 120, ""),)
    else:
        frames = (
            _frame(0, "handle", "Worker.handle", FILE, 78,
                   "time.sleep(0.01 + random.random() * 0.02)"),
            _frame(1, "run", "Worker.run", FILE, 69, "self.handle(job)"),
            _frame(2, "_bootstrap_inner", "Thread._bootstrap_inner", THREADING, 1045,
                   "self.run()"),
            _frame(3, "_bootstrap", "Thread._bootstrap", THREADING, 1002,
                   "self._bootstrap_inner()"),
        )
    return ThreadStack(thread=thread, frames=frames)


@dataclass
class FakeSession:
    """Answers like a session attached to examples/threaded_service.py."""

    pid: int = PID
    target: FakeTarget = field(default_factory=FakeTarget)
    injection: FakeInjection = field(default_factory=FakeInjection)
    closed: bool = False
    dead: str | None = None  # once set, every call raises TargetLost with it
    gate: threading.Event | None = None  # when set, eval waits for it (a slow answer)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    ticks: int = 0
    censuses: int = 0
    isolated_queries: list[bool] = field(default_factory=list)  # `isolated` of each eval
    frames_gone: bool = False  # every frame has returned (an asyncio loop's select())

    def _enter(self, op: str, arg: Any = None) -> None:
        self.calls.append((op, arg))
        if self.dead is not None:
            self.closed = True
            raise TargetLost(self.dead)
        if self.closed:
            raise TargetLost("this session is detached; attach again")

    def _find(self, thread: int | str) -> ThreadInfo:
        for t in THREADS:
            if thread in (t.ident, t.name):
                return t
        raise EvalError("ValueError: no thread %r" % (thread,))

    def threads(self) -> list[ThreadInfo]:
        self._enter("threads")
        return list(THREADS)

    def stack(self, thread: int | str | None = None, *,
              locals: bool = False) -> list[ThreadStack]:
        self._enter("stack", thread)
        chosen = [self._find(thread)] if thread is not None else [
            t for t in THREADS if not t.is_agent]
        return [stack_of(t) for t in chosen]

    def _scope(self, thread: int | str | None, frame: int | None) -> dict[str, Any]:
        names = service_globals()
        if thread is None:
            return names
        t = self._find(thread)
        if t.name and t.name.startswith("worker") and frame in (0, 1):
            index = int(t.name.split("-")[1])
            local = {"self": worker(index)}
            if frame == 0:
                local["job"] = {"id": 77, "created": 1.5}
                local["key"] = 27
            return {**names, **local}
        return names

    def locals(self, thread: int | str, frame: int = 0, *,
               frame_id: int | None = None) -> Value:
        self._enter("locals", (thread, frame))
        scope = self._scope(thread, frame)
        local = {k: v for k, v in scope.items() if k in ("self", "job", "key")}
        return Value(node_of(local))

    def modules(self) -> list[ModuleInfo]:
        self._enter("modules")
        return [ModuleInfo("__main__", FILE, None), ModuleInfo("json", "/usr/lib/json.py",
                                                                "2.0.9"),
                ModuleInfo("requests.adapters", REQUESTS, "2.31.0"),
                ModuleInfo("sys", None, None), ModuleInfo("threading", THREADING, None)]

    def eval(self, expr: str, thread: int | str | None = None, frame: int | None = None, *,
             module: str | None = None, isolated: bool = False,
             frame_id: int | None = None) -> Value:
        self._enter("eval", expr)
        self.isolated_queries.append(isolated)
        if self.frames_gone and thread is not None:
            raise FrameGone("that call has returned: it is no longer on thread %r's stack "
                            "(read the stack again)" % (thread,))
        if self.gate is not None:
            self.gate.wait(10)
        if expr.startswith("open("):
            raise Denied("call of 'open' refused: not on the allowlist")
        if "**" in expr:
            raise BudgetExceeded("operator '**' would build an int of at least 30000000000 "
                                 "bits (budget max_int_bits=65536)")
        scope = self._scope(thread, frame)
        if expr == "len(orders)":
            return Value(node_of(len(scope["orders"])))
        if expr == "cache.hits":
            self.ticks += 1
            return Value(node_of(1234 + self.ticks))
        if expr in scope:
            return Value(node_of(scope[expr]))
        raise EvalError("NameError: name %r is not defined" % expr)

    def inspect(self, path: list[list[Any]] | None = None, *, expr: str | None = None,
                thread: int | str | None = None, frame: int | None = None,
                module: str | None = None, offset: int = 0,
                frame_id: int | None = None) -> Value:
        self._enter("inspect", (expr, path, offset))
        if expr == "cache.hits":
            self.ticks += 1
            return Value(node_of(1234 + self.ticks * 3))
        scope = self._scope(thread, frame)
        if expr is None:
            value: Any = scope
        elif expr in scope:
            value = scope[expr]
        elif expr == "len(orders)":
            value = 200
        else:
            raise EvalError("NameError: name %r is not defined" % expr)
        for op, arg in path or []:
            if op == "attr":
                value = value.attrs[arg]
            elif isinstance(value, dict):
                value = list(value.values())[arg]
            else:
                value = value[arg]
        return Value(node_of(value, offset=offset))

    def census(self, top: int = 20, *, sort: str = "count",
               max_seconds: float | None = None) -> Census:
        """Two types grow by 100 dicts / 10 Orders per census; the rest stay."""
        self._enter("census", top)
        self.censuses += 1
        n = self.censuses
        entries = (CensusEntry("builtins.dict", 4000 + 100 * n, (4000 + 100 * n) * 232),
                   CensusEntry("builtins.function", 3100, 3100 * 152),
                   CensusEntry("builtins.tuple", 2500, 2500 * 64),
                   CensusEntry("__main__.Order", 10 * n, 10 * n * 56),
                   CensusEntry(LONG_TYPE, 1024, 1024 * 48))
        return Census(entries=entries, total_objects=sum(e.count for e in entries),
                      total_size=sum(e.size for e in entries), distinct_types=len(entries),
                      generations=(10, 20, 9600), frozen=0, duration=0.12, list_pause=0.004,
                      max_hold=0.005, complete=True, taken_at=1_700_000_000.0 + 60 * n)

    def tasks(self) -> list[TaskInfo]:
        self._enter("tasks")
        loop = LoopInfo(id=1, type="asyncio.unix_events._UnixSelectorEventLoop", thread=IDENT,
                        thread_name="MainThread", running=True, closed=False, current_task=None)
        return [
            TaskInfo(id=11, name="Task-1", type="asyncio.Task", state="pending", loop=loop,
                     chain=(AwaitLink("coroutine", "main", FILE, 60),
                            AwaitLink("awaitable", "_GatheringFuture")),
                     waiter="_GatheringFuture", awaiting=(12,)),
            TaskInfo(id=12, name="ticker", type="asyncio.Task", state="pending", loop=loop,
                     chain=(AwaitLink("coroutine", "ticker", FILE, 44),
                            AwaitLink("coroutine", "sleep", "/usr/lib/asyncio/tasks.py", 605),
                            AwaitLink("awaitable", "Future")),
                     waiter="Future"),
        ]

    def detach(self) -> None:
        self.calls.append(("detach", None))
        self.closed = True


class FakeSampler:
    """CPU and RSS that move in a fixed pattern; worker-2 burns a core."""

    CPU = (3.0, 5.0, 12.0, 40.0, 85.0, 60.0, 22.0, 9.0)

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.n = 0

    def sample(self) -> ProcessSample:
        self.n += 1
        busy = THREADS[3].native_id or 0
        return ProcessSample(pid=self.pid, at=float(self.n),
                             cpu_percent=self.CPU[self.n % len(self.CPU)],
                             rss=(40 + self.n % 5) * 1024 * 1024, num_threads=7, num_fds=12,
                             uptime=3723.0, thread_cpu={busy: 85.0, THREADS[0].native_id or 0:
                                                        0.5})


PROCESSES = [
    PythonProcess(pid=PID, user="svc", version="3.11", command="python "
                  "examples/threaded_service.py", cpu_percent=4.0, rss=42 * 1024 * 1024,
                  num_threads=6, create_time=0.0),
    PythonProcess(pid=1234, user="root", version="3.8", command="/usr/bin/python3.8 "
                  "/opt/legacy/cron_job.py --every 5m", cpu_percent=0.0, rss=18 * 1024 * 1024,
                  num_threads=1, create_time=0.0),
    PythonProcess(pid=5150, user="www", version="3.12", command="gunicorn: worker [app:app]",
                  cpu_percent=31.5, rss=230 * 1024 * 1024, num_threads=9, create_time=0.0),
    PythonProcess(pid=777, user="ci", version="2.7", command="python2 build.py",
                  cpu_percent=1.0, rss=9 * 1024 * 1024, num_threads=1, create_time=0.0),
]
