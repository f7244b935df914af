"""asyncio tasks read from outside their loop (payloads/tasks.py), in-process: a real
event loop runs in a thread of the test process, the test thread reads it."""
from __future__ import annotations

import _weakrefset
import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from inspector.diagnostics import TaskInfo
from inspector.diagnostics import parse_tasks as _tasks
from inspector.render import render_tasks, task_tree, task_tree_lines
from payloads import tasks as payload_tasks

ROOT = Path(__file__).resolve().parents[2]
CALLS: list[str] = []


class LoopThread:
    """An event loop running `main()` in a daemon thread until stop()."""

    def __init__(self, main: Callable[[], Any], factory: Any = None) -> None:
        self.loop = asyncio.new_event_loop()
        if factory is not None:
            self.loop.set_task_factory(factory)
        self.ready = threading.Event()
        self.main = main
        self.thread = threading.Thread(target=self._run, name="loop-thread", daemon=True)
        self.thread.start()
        assert self.ready.wait(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def runner() -> None:
            task = asyncio.ensure_future(self.main())
            await asyncio.sleep(0.05)  # let every task reach its first await
            self.ready.set()
            try:
                await task
            except asyncio.CancelledError:
                pass

        try:
            self.loop.run_until_complete(runner())
        except BaseException:
            pass

    def stop(self) -> None:
        def cancel_all() -> None:
            for t in asyncio.all_tasks(self.loop):
                t.cancel()

        self.loop.call_soon_threadsafe(cancel_all)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def run_loop() -> Iterator[Callable[..., LoopThread]]:
    started: list[LoopThread] = []

    def start(main: Callable[[], Any], factory: Any = None) -> LoopThread:
        lt = LoopThread(main, factory)
        started.append(lt)
        return lt

    yield start
    for lt in started:
        lt.stop()


def listed(lt: LoopThread) -> list[TaskInfo]:
    """The tasks of that loop (earlier tests' loops may still hold cancelled tasks)."""
    return [t for t in _tasks(payload_tasks.list_tasks())
            if t.loop is not None and t.loop.id == id(lt.loop)]


async def leaf(seconds: float = 100) -> None:
    await asyncio.sleep(seconds)


async def middle() -> None:
    await leaf()


async def gathering() -> None:
    await asyncio.gather(leaf(), leaf())


async def app() -> None:
    asyncio.ensure_future(middle()).set_name("worker")
    asyncio.ensure_future(gathering())
    done = asyncio.ensure_future(asyncio.sleep(0))
    cancelled = asyncio.ensure_future(leaf())
    await asyncio.sleep(0.01)
    cancelled.cancel()
    await asyncio.sleep(0.01)
    await asyncio.sleep(100)
    return done


def test_lists_tasks_with_names_states_and_await_chains(run_loop):
    # Given a loop in another thread running a few tasks
    lt = run_loop(app)
    # When we read its tasks from this thread
    tasks = listed(lt)
    by_coro = {}
    for t in tasks:
        by_coro.setdefault(t.coroutine, []).append(t)
    # Then each task has a name, a state and its await chain down to the future
    worker = next(t for t in tasks if t.coroutine == "middle")
    assert worker.name == "worker" and worker.state == "pending"
    assert [link.name for link in worker.chain[:3]] == ["middle", "leaf", "sleep"]
    assert worker.chain[0].file == __file__ and worker.chain[0].line > 0
    assert worker.chain[-1].kind == "awaitable"
    assert worker.waiter is not None and "Future" in worker.waiter
    # a gather() parent waits on its children
    parent = next(t for t in tasks if t.coroutine == "gathering")
    children = [t for t in tasks if t.id in parent.awaiting]
    assert len(children) == 2 and all(c.coroutine == "leaf" for c in children)
    assert parent.waiter == "asyncio.tasks._GatheringFuture"
    # the loop and the thread running it
    assert worker.loop is not None and worker.loop.thread == lt.thread.ident
    assert worker.loop.thread_name == "loop-thread" and worker.loop.running
    assert worker.loop.id == id(lt.loop)


def test_done_and_cancelled_states(run_loop):
    keep: list[asyncio.Task[Any]] = []

    async def main() -> None:
        done = asyncio.ensure_future(asyncio.sleep(0))
        cancelled = asyncio.ensure_future(leaf())
        failed = asyncio.ensure_future(boom())
        keep.extend([done, cancelled, failed])
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.sleep(0.01)
        await asyncio.sleep(100)

    lt = run_loop(main)
    states = {t.id: t for t in listed(lt)}
    done, cancelled, failed = (states[id(t)] for t in keep)
    assert done.state == "done" and cancelled.state == "cancelled"
    assert failed.state == "done" and failed.exception == "ValueError"
    assert done.chain[0].kind == "coroutine"  # finished coroutine: no frame, no line
    for t in keep:
        t.exception() if not t.cancelled() else None  # retrieve: no "never retrieved" log


async def boom() -> None:
    raise ValueError("boom")


@pytest.mark.skipif(not hasattr(asyncio, "TaskGroup"), reason="TaskGroup is 3.11+")
def test_taskgroup_children_hang_under_their_parent(run_loop):
    async def grouped() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(leaf(), name="child-a")
            tg.create_task(leaf(), name="child-b")

    async def main() -> None:
        await asyncio.ensure_future(grouped())

    lt = run_loop(main)
    tasks = listed(lt)
    parent = next(t for t in tasks if (t.coroutine or "").endswith("grouped"))
    names = sorted(t.name or "" for t in tasks if t.id in parent.awaiting)
    assert names == ["child-a", "child-b"]
    lines = task_tree_lines(tasks)
    text = "\n".join(lines)
    assert "(T) child-a [pending]" in text
    # drawn under the parent's innermost frame, like `python -m asyncio pstree`
    parent_line = next(i for i, line in enumerate(lines) if "grouped" in line)
    child_line = next(i for i, line in enumerate(lines) if "child-a" in line)
    assert child_line > parent_line


class HostileTask(asyncio.Task):  # type: ignore[type-arg]
    def get_name(self) -> str:
        CALLS.append("get_name")
        return "hostile"

    def __repr__(self) -> str:
        CALLS.append("__repr__")
        return "HostileTask()"

    def __eq__(self, other: object) -> bool:
        CALLS.append("__eq__")
        return False

    def __hash__(self) -> int:
        CALLS.append("__hash__")
        return 42


def test_task_subclass_methods_never_run(run_loop):
    def factory(loop: asyncio.AbstractEventLoop, coro: Any) -> asyncio.Task[Any]:
        return HostileTask(coro, loop=loop)

    CALLS.clear()
    lt = run_loop(lambda: middle(), factory)
    time.sleep(0.05)
    CALLS.clear()
    tasks = listed(lt)
    assert any(t.type.endswith("HostileTask") and t.coroutine == "middle" for t in tasks)
    assert all(t.name and t.name.startswith("Task-") for t in tasks)  # the stored name
    assert CALLS == []


def test_pure_python_tasks(run_loop):
    def factory(loop: asyncio.AbstractEventLoop, coro: Any) -> asyncio.Task[Any]:
        return asyncio.tasks._PyTask(coro, loop=loop)  # type: ignore[attr-defined]

    lt = run_loop(lambda: gathering(), factory)
    tasks = listed(lt)
    parent = next(t for t in tasks if t.coroutine == "gathering")
    assert parent.type == "asyncio.tasks.Task" and parent.state == "pending"
    assert len(parent.awaiting) == 2
    assert [link.name for link in next(t for t in tasks if t.id in parent.awaiting).chain][
        :2] == ["leaf", "sleep"]


def test_weaksets_are_never_iterated(run_loop, monkeypatch):
    # WeakSet.__iter__ is Python code that mutates the set's _iterating guard
    iterated: list[str] = []
    original = _weakrefset.WeakSet.__iter__

    def spy(self: Any) -> Any:
        if threading.current_thread() is threading.main_thread():
            iterated.append("iter")
        return original(self)

    lt = run_loop(app)
    monkeypatch.setattr(_weakrefset.WeakSet, "__iter__", spy)
    assert listed(lt)
    monkeypatch.setattr(_weakrefset.WeakSet, "__iter__", original)
    assert iterated == []


def test_running_coroutine_is_not_descended(run_loop):
    # Given a task blocked in a C call (GIL released) inside its coroutine
    entered = threading.Event()

    async def blocking() -> None:
        entered.set()
        time.sleep(0.5)
        await asyncio.sleep(100)

    async def main() -> None:
        await asyncio.sleep(0.06)  # after LoopThread's ready signal
        await blocking()

    lt = run_loop(main)
    assert entered.wait(5)
    tasks = listed(lt)
    # Then it is the loop's current task, marked running, its chain not followed
    current = [t for t in tasks if t.current]
    assert len(current) == 1
    assert current[0].chain[0].name.endswith("<locals>.main") and current[0].chain[0].running
    assert len(current[0].chain) == 1
    assert current[0].loop is not None and current[0].loop.current_task == current[0].id


def test_tree_and_text_rendering(run_loop):
    lt = run_loop(app)
    tasks = listed(lt)
    forest = task_tree(tasks)
    gathering_node = next(n for n in forest if n.task.coroutine == "gathering")
    assert len(gathering_node.children) == 2
    text = render_tasks(tasks)
    assert text.startswith("Event loop ") and 'thread "loop-thread"' in text
    assert "(T) worker [pending]" in text
    assert " middle " in text and "awaiting " in text
    assert "└── " in text and "├── " in text


def test_tree_cuts_await_cycles():
    a = TaskInfo(id=1, name="a", type="T", state="pending", loop=None, chain=(), awaiting=(2,))
    b = TaskInfo(id=2, name="b", type="T", state="pending", loop=None, chain=(), awaiting=(1,))
    forest = task_tree([a, b])
    assert len(forest) == 1 and forest[0].children[0].children[0].cycle
    assert "await cycle" in "\n".join(task_tree_lines([a, b]))


def test_without_asyncio_nothing_is_imported():
    # Given a bare interpreter that never imported asyncio
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from payloads import tasks\n"
            "print(tasks.list_tasks()['asyncio'], 'asyncio' in sys.modules)" % str(ROOT))
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                         text=True, timeout=60)
    # Then listing tasks says so, and did not import asyncio
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


class OpaqueLoop(asyncio.SelectorEventLoop):  # type: ignore[misc,valid-type]
    """Keeps its thread to itself, as uvloop does (its _thread_id is a C field):
    reading `_thread_id` statically finds a property, which is never run."""

    @property
    def _thread_id(self) -> Any:
        CALLS.append("_thread_id")
        return self.__dict__.get("tid")

    @_thread_id.setter
    def _thread_id(self, value: Any) -> None:
        self.__dict__["tid"] = value


def _loops_by_id() -> dict[int, Any]:
    return {t.loop.id: t.loop for t in _tasks(payload_tasks.list_tasks()) if t.loop}


def test_a_loop_that_hides_its_thread_is_found_by_its_stack():
    # Given a loop whose thread is not readable, running tasks in "opaque-loop"
    loop = OpaqueLoop()
    ready = threading.Event()

    async def main() -> None:
        asyncio.ensure_future(leaf()).set_name("opaque-leaf")
        await asyncio.sleep(0.05)
        ready.set()
        await asyncio.sleep(100)

    # and one that is not running, whose task was only created, held by the
    # frame that runs the first one
    idle = OpaqueLoop()
    idle_task = idle.create_task(leaf())

    def run() -> None:
        try:
            loop.run_until_complete(main())
        except BaseException:
            pass
        assert idle is not None

    thread = threading.Thread(target=run, name="opaque-loop", daemon=True)
    thread.start()
    assert ready.wait(5)
    try:
        CALLS.clear()
        loops = _loops_by_id()
        # Then the running loop is on its thread, found by its run_forever frame
        found = loops[id(loop)]
        assert found.running is True and found.thread == thread.ident
        assert found.thread_name == "opaque-loop" and found.thread_found_by == "stack"
        # and the idle one is on no thread, its state unknown rather than guessed
        assert loops[id(idle)].thread is None and loops[id(idle)].running is None
        assert "state unknown" in render_tasks([t for t in _tasks(payload_tasks.list_tasks())
                                                if t.loop and t.loop.id == id(idle)])
        assert CALLS == []  # the property never ran
    finally:
        idle_task.cancel()
        idle.run_until_complete(asyncio.sleep(0))
        idle.close()
        def cancel_all() -> None:
            for t in asyncio.all_tasks(loop):
                t.cancel()

        loop.call_soon_threadsafe(cancel_all)
        thread.join(5)
        loop.close()
