"""The operator's flow, with Pilot, against a real examples/threaded_service.py.

Given the example service running, when the operator picks it in the picker,
attaches, browses a worker's stack, queries, pins a watch and detaches, then
each step shows what the target holds and the agent thread is gone at the end.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from tests.targets.process import TargetProcess
from tui.app import InspectorApp, Timings
from tui.screens.inspect import InspectScreen
from tui.widgets.eval_console import HistoryInput, Transcript
from tui.widgets.stack_tree import StackTree
from tui.widgets.threads_table import ThreadsTable
from tui.widgets.watch_list import WatchList, WatchRow

from .conftest import wait_for

pytestmark = [pytest.mark.tui, pytest.mark.timeout(90)]

FAST = Timings(processes=0.5, metrics=0.5, watches=0.3, heartbeat=5.0)


@pytest.fixture
def service(needs_gdb: None) -> Iterator[TargetProcess]:
    target = TargetProcess.example(sys.executable, "threaded_service.py")
    try:
        yield target
    finally:
        target.kill()


async def attached(app: InspectorApp, pilot: Pilot[Any]) -> InspectScreen:
    """The inspect screen, once the attach is done and a stack is shown."""
    await wait_for(pilot, lambda: isinstance(app.screen, InspectScreen)
                   and app.screen.query(StackTree), timeout=30, what="the attach")
    screen = app.screen
    assert isinstance(screen, InspectScreen)
    return screen


def labels(tree: StackTree | Transcript) -> list[str]:
    out = []

    def walk(node) -> None:  # type: ignore[no-untyped-def]
        for child in node.children:
            out.append(str(child.label))
            if child.is_expanded:
                walk(child)
    walk(tree.root)
    return out


def test_pick_attach_browse_query_watch_detach(service: TargetProcess) -> None:
    threads_before = service.os_thread_count()

    async def flow() -> None:
        app = InspectorApp(None, timings=FAST)
        async with app.run_test(size=(120, 40)) as pilot:
            # Pick: filter the live list by the target's pid, Enter attaches.
            await pilot.press(*str(service.pid))
            procs = app.picker.table
            await wait_for(pilot, lambda: service.pid in [p.pid for p in procs.rows_shown],
                           what="the picker to list the target")
            shown = procs.rows_shown
            assert all(str(service.pid) in "%d %s" % (p.pid, p.command) for p in shown)
            # Another process may share the digits (in its pid or command line).
            procs.move_cursor(row=[p.pid for p in shown].index(service.pid))
            await pilot.press("enter")
            screen = await attached(app, pilot)
            assert service.os_thread_count() == threads_before + 1  # the agent thread

            # Threads: main first, the agent marked and listed last; pick worker-1.
            table = screen.query_one(ThreadsTable)
            await wait_for(pilot, lambda: len(table.threads) >= 6, what="the thread list")
            assert table.threads[0].is_main and table.threads[-1].is_agent
            table.select_ident(next(t.ident for t in table.threads if t.name == "worker-1"))
            tree = screen.query_one(StackTree)
            await wait_for(pilot, lambda: tree.thread is not None
                           and tree.thread.name == "worker-1"
                           and any("Worker.run" in line for line in labels(tree)),
                           what="worker-1's stack")

            # Open Worker.run's frame: its locals load; open `self`: its attributes load.
            frame = next(n for n in tree.root.children if "Worker.run" in str(n.label))
            tree.focus()
            tree.move_cursor(frame)
            await pilot.press("enter")
            await wait_for(pilot, lambda: any(str(c.label).startswith("self = ")
                                              for c in frame.children), what="the locals")
            local = next(c for c in frame.children if str(c.label).startswith("self = "))
            tree.move_cursor(local)
            await pilot.press("enter")
            await wait_for(pilot, lambda: any(str(c.label).startswith("done = ")
                                              for c in local.children),
                           what="self's attributes")
            assert any(str(c.label).startswith("cache = ") for c in local.children)

            # The console evaluates in the highlighted frame (Worker.run: __main__'s globals).
            await pilot.press("e")
            assert isinstance(app.focused, HistoryInput)
            transcript = screen.query_one(Transcript)
            await pilot.press(*"len(orders)", "enter")
            await wait_for(pilot, lambda: any("→ 200" in line for line in labels(transcript)),
                           what="len(orders) → 200 in %s" % labels(transcript))
            app.focused.value = "open('/etc/passwd')"  # type: ignore[union-attr]
            await pilot.press("enter")
            await wait_for(pilot, lambda: any("refused by the sandbox" in line
                                              for line in labels(transcript)),
                           what="the refusal")
            text = "\n".join(labels(transcript))
            assert "call of 'open' refused" in text and "Traceback" not in text

            # Pin self.done from the tree: it is re-evaluated and grows.
            tree.focus()
            done = next(c for c in local.children if str(c.label).startswith("done = "))
            tree.move_cursor(done)
            await pilot.press("p")
            watches = screen.query_one(WatchList)
            await wait_for(pilot, lambda: app.watches and len(app.watches[0].history) >= 2
                           and app.watches[0].history[-1] > app.watches[0].history[0],
                           what="the watch to update")
            row = watches.query_one(WatchRow)
            assert row.pinned.label == "self.done"

            # Detach: back to the picker, and the agent thread has left the target.
            await pilot.press("d")
            await wait_for(pilot, lambda: app.screen is app.picker and not app.detaching,
                           what="the detach")
            assert app.session is None
            assert service.wait_threads(threads_before) == threads_before
            assert service.alive()
            await app.action_quit()

    asyncio.run(flow())


def test_target_exiting_shows_the_banner_and_keeps_the_last_stack(
        service: TargetProcess) -> None:
    async def flow() -> None:
        app = InspectorApp(service.pid, timings=FAST)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await attached(app, pilot)
            tree = screen.query_one(StackTree)
            await wait_for(pilot, lambda: any("main" in line for line in labels(tree)),
                           what="the main thread's stack")
            shown = labels(tree)
            service.kill()
            await wait_for(pilot, lambda: screen.has_class("-lost"), what="the banner")
            banner = str(screen.query_one("#lost-banner", Static).render())
            assert "target process %d exited" % service.pid in banner
            assert "a re-attaches" in banner
            assert labels(tree) == shown  # the last data stays on screen
            await app.action_quit()

    asyncio.run(flow())



def test_a_dump_browses_offline_read_only(service: TargetProcess, tmp_path) -> None:
    """Given a dump of the service (with locals and a census), when it is opened
    with `inspector show --tui`'s viewer after the service has exited, then it
    opens on the process view (never the live picker), says OFFLINE, its
    threads, frames and dumped locals browse as live ones, the census shows at
    once, and what needs a live process (query, watch, refresh, detach) is not
    offered."""
    import subprocess

    from inspector.dump import load_dump
    from tui.offline import dump_viewer
    from tui.widgets.census_view import CensusView
    from tui.widgets.metrics_bar import MetricsBar

    out = tmp_path / "dump.json"
    written = subprocess.run([sys.executable, "-m", "inspector", "dump", str(service.pid),
                              "--locals", "--census", "10", "-o", str(out)],
                             capture_output=True, text=True, timeout=60)
    assert written.returncode == 0, written.stderr
    service.kill()
    dump = load_dump(out.read_bytes(), str(out))

    async def flow(size: tuple[int, int]) -> None:
        app = dump_viewer(dump, FAST)
        async with app.run_test(size=size) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, InspectScreen)
                           and app.screen.query(StackTree), what="the dump view")
            assert not app.picker.is_mounted  # keys never went into a process filter
            screen = app.screen
            assert isinstance(screen, InspectScreen)
            header = str(screen.query_one("#metrics-target", Static).render())
            assert header.startswith("OFFLINE dump · pid %d" % dump.target.pid), header
            table = screen.query_one(ThreadsTable)
            await wait_for(pilot, lambda: len(table.threads) >= 5, what="the thread list")
            table.select_ident(next(t.ident for t in table.threads if t.name == "worker-1"))
            tree = screen.query_one(StackTree)
            await wait_for(pilot, lambda: any("Worker.run" in line for line in labels(tree)),
                           what="worker-1's dumped stack")
            frame = next(n for n in tree.root.children if "Worker.run" in str(n.label))
            tree.focus()
            tree.move_cursor(frame)
            await pilot.press("enter")
            await wait_for(pilot, lambda: any(str(c.label).startswith("self = ")
                                              for c in frame.children), what="dumped locals")
            # Only what works offline is offered
            keys = {b.binding.action for b in app.active_bindings.values() if b.enabled}
            assert not keys & {"app.detach", "app.refresh_target", "focus_console", "pin"}
            await pilot.press("e", "d", "r")
            assert isinstance(app.screen, InspectScreen) and app.focused is tree
            assert not screen.query_one(Transcript).display or \
                not screen.query_one("#console").display
            view = screen.query_one(CensusView)
            await wait_for(pilot, lambda: view.census is not None, what="the dumped census")
            assert view.census == dump.census
            assert screen.query_one(MetricsBar) is not None
            await app.action_quit()

    for size in ((120, 40), (80, 24)):
        asyncio.run(flow(size))


def test_a_resident_agent_is_reused_not_joined_by_another(service: TargetProcess) -> None:
    """Given a resident agent (`inspector attach --keep`), when the TUI attaches,
    then it talks to that agent (no injection, said in the header) and the
    thread list tells its listener from the session's thread."""
    import subprocess
    from pathlib import Path

    cli = str(Path(sys.executable).parent / "inspector")
    kept = subprocess.run([cli, "attach", str(service.pid), "--keep"], capture_output=True,
                          text=True, timeout=60)
    assert kept.returncode == 0, kept.stderr
    with_resident = service.os_thread_count()

    async def flow() -> None:
        app = InspectorApp(service.pid, timings=FAST)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await attached(app, pilot)
            assert app.session is not None and app.session.injection is None
            assert "resident agent" in screen.how
            table = screen.query_one(ThreadsTable)
            await wait_for(pilot, lambda: sum(t.is_agent for t in table.threads) >= 2,
                           what="the agent threads")
            agents = sorted(t.label for t in table.threads if t.is_agent)
            assert agents == ["inspector-agent", "inspector-agent (resident)"], agents
            assert service.os_thread_count() == with_resident + 1  # one session thread
            await app.action_quit()

    try:
        asyncio.run(flow())
        assert service.wait_threads(with_resident, timeout=5) == with_resident
    finally:
        subprocess.run([cli, "detach", str(service.pid)], capture_output=True, timeout=60)


def test_main_thread_of_a_target_without_threading(needs_gdb: None) -> None:
    """examples/cpu_worker.py never imports threading: its main thread is still
    MainThread, marked, with its native id and its CPU (the busy one: ▲)."""
    target = TargetProcess.example(sys.executable, "cpu_worker.py")

    async def flow() -> None:
        app = InspectorApp(target.pid, timings=FAST)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await attached(app, pilot)
            table = screen.query_one(ThreadsTable)
            await wait_for(pilot, lambda: bool(table.threads), what="the thread list")
            main = table.threads[0]
            assert main.is_main and main.name == "MainThread" and main.native_id == target.pid
            await wait_for(pilot, lambda: str(table.get_row_at(0)[2]).strip() != "-",
                           what="the main thread's CPU")
            await wait_for(pilot, lambda: str(table.get_row_at(0)[0]) in ("▲", "●"),
                           what="the main thread's marker")
            assert "foreign" not in " ".join(str(c) for c in table.get_row_at(0))
            await app.action_quit()

    try:
        asyncio.run(flow())
    finally:
        target.kill()
