"""What a new operator hit in the TUI (issue 12), at 80x24 and 120x40.

Read from the screen as the operator sees it (the compositor's text): numbers
are never cut, paths are cut from the left, the console can be left and the
footer keeps Quit and Help, a returned frame falls back to __main__, watches
belong to one target, and the ▲ marks the one thread burning a core.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Awaitable, Callable

import pytest
from textual.pilot import Pilot

from inspector.metrics import ProcessSample
from inspector.render import inline
from tui.app import InspectorApp
from tui.screens.help import help_table
from tui.screens.inspect import InspectScreen
from tui.widgets.census_view import CensusView
from tui.widgets.eval_console import EvalConsole, HistoryInput
from tui.widgets.stack_tree import StackTree
from tui.widgets.threads_table import ThreadsTable

from .conftest import QUIET, attached, fake_app, query, settle, transcript_text, wait_for
from .fakes import (
    LONG_TYPE,
    PID,
    PROCESSES,
    REQUESTS,
    THREADS,
    WORKER_1,
    FakeSampler,
    FakeSession,
)

pytestmark = [pytest.mark.tui, pytest.mark.timeout(90)]

SIZES = [(80, 24), (120, 40)]


def run(app: InspectorApp, scenario: Callable[[Pilot[int]], Awaitable[None]],
        size: tuple[int, int]) -> None:
    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await scenario(pilot)
    asyncio.run(main())


def screen_text(app: InspectorApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def numbers(text: str) -> set[str]:
    return set(re.findall(r"\d[\d,]*", text))


async def on_worker_1(pilot: Pilot[int]) -> InspectScreen:
    screen = await attached(pilot)
    screen.query_one(ThreadsTable).select_ident(WORKER_1)
    await settle(pilot)
    return screen


@pytest.mark.parametrize("size", SIZES)
def test_no_number_is_cut_in_any_tab(size: tuple[int, int]) -> None:
    app = fake_app(FakeSession(), pid=PID)

    async def scenario(pilot: Pilot[int]) -> None:
        screen = await on_worker_1(pilot)
        for _ in range(3):
            app.sample_metrics()
            await settle(pilot)
        text = screen_text(app)
        # Stack: whole line numbers, the native id whole, the file cut from the left
        assert re.search(r"(threading|…[a-z]*)\.py:1045\b", text), text
        assert re.search(r"\.py:1002\b", text) and "native 19273" in text, text
        assert "pid %d" % PID in text
        assert not numbers(text) & {"104", "100", "10", "1927", "1406"}, text
        # Modules: the file name stays, the start of the path goes
        await pilot.press("m")
        await settle(pilot)
        text = screen_text(app)
        assert "requests/adapters.py" in text and "2.31.0" in text, text
        assert REQUESTS in text or "…" in text
        # Objects: the type's own name and every count
        await pilot.press("o", "n")
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        text = screen_text(app)
        assert "InstrumentedAttribute" in text and "1,024" in text, text
        assert "4,200" in text and "+100" in text and "3,100" in text, text
        rows = screen.query_one(CensusView).query_one("#census-table").region.height
        assert rows >= 6, rows  # the intro gave way: every type shows
        # Tasks: the coroutine on the row
        await pilot.press("t")
        await settle(pilot)
        assert "Task-1 main()" in screen_text(app)
        # Console prompt keeps the frame's name
        await pilot.press("s")
        await settle(pilot)
        screen.query_one(StackTree).cursor_line = 2  # frame #1 Worker.run
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        assert "Worker.run ›" in screen_text(app)

    run(app, scenario, size)


@pytest.mark.parametrize("size", SIZES)
def test_objects_tab_gets_the_width_on_a_narrow_screen(size: tuple[int, int]) -> None:
    app = fake_app(FakeSession(), pid=PID)

    async def scenario(pilot: Pilot[int]) -> None:
        screen = await attached(pilot)
        await pilot.press("o", "n")
        await settle(pilot)
        side = screen.query_one("#side")
        assert side.display is (size[0] >= 100)  # folded away only when space is short
        text = screen_text(app)
        shown = LONG_TYPE if LONG_TYPE in text else re.search(r"…[\w.]+", text)
        assert shown and str(shown if isinstance(shown, str) else shown.group())\
            .endswith(".InstrumentedAttribute"), text  # cut from the left, if at all
        assert "1,024" in text
        await pilot.press("s")
        await settle(pilot)
        assert screen.query_one("#side").display

    run(app, scenario, size)


@pytest.mark.parametrize("size", SIZES)
def test_esc_leaves_the_console_and_the_footer_keeps_quit_and_help(size) -> None:
    app = fake_app(FakeSession(), pid=PID)

    async def scenario(pilot: Pilot[int]) -> None:
        screen = await attached(pilot)
        await pilot.press("e")
        await settle(pilot)
        assert isinstance(app.focused, HistoryInput)
        footer = screen_text(app).splitlines()[-1]
        assert "^q Quit" in footer and "f1 Help" in footer and "esc Leave" in footer, footer
        await pilot.press("q", "d")  # letters are text here
        assert screen.query_one(HistoryInput).value == "qd"
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.focused, HistoryInput)
        assert app.focused is screen.query_one(StackTree)
        footer = screen_text(app).splitlines()[-1]
        assert "q Quit" in footer and "? Help" in footer, footer
        await pilot.press("f1")
        await settle(pilot)
        assert "HelpScreen" in type(app.screen).__name__

    run(app, scenario, size)


def test_esc_in_the_console_cancels_a_running_query_first() -> None:
    gate = threading.Event()
    app = fake_app(FakeSession(gate=gate), pid=PID)

    async def scenario(pilot: Pilot[int]) -> None:
        screen = await attached(pilot)
        field = screen.query_one(HistoryInput)
        field.focus()
        field.value = "len(orders)"
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.busy, what="the query to run")
        await pilot.press("escape")  # cancels, stays in the console
        await pilot.pause(0.2)
        assert not app.busy and isinstance(app.focused, HistoryInput)
        assert any("cancelled" in line for line in transcript_text(screen))
        await pilot.press("escape")  # now leaves
        await pilot.pause(0.2)
        assert not isinstance(app.focused, HistoryInput)
        gate.set()
        await settle(pilot)

    run(app, scenario, (80, 24))


def test_a_query_in_a_returned_frame_runs_in_main_and_says_so() -> None:
    session = FakeSession(frames_gone=True)
    app = fake_app(session, pid=PID)

    async def scenario(pilot: Pilot[int]) -> None:
        screen = await on_worker_1(pilot)
        console = screen.query_one(EvalConsole)
        assert console.scope.is_frame  # the innermost frame is highlighted
        await query(pilot, screen, "len(orders)")
        lines = transcript_text(screen)
        assert lines[0].startswith("› len(orders) → 200"), lines
        assert "in __main__" in lines[0], lines
        note = " ".join(lines[1:])
        assert "worker-1 · Worker.handle has returned; evaluated in __main__" in note, lines

    run(app, scenario, (120, 40))


def test_watches_belong_to_one_target() -> None:
    other = FakeSession(pid=PID + 1)
    sessions = [FakeSession(), other]
    app = InspectorApp(PID, attach=lambda pid: sessions.pop(0),
                       list_processes=lambda: list(PROCESSES), sampler=FakeSampler,
                       timings=QUIET)

    async def scenario(pilot: Pilot[int]) -> None:
        screen = await attached(pilot)
        await query(pilot, screen, "len(orders)")
        screen.query_one(HistoryInput).focus()
        await pilot.press("ctrl+t")
        await settle(pilot)
        assert len(app.watches) == 1
        app.action_detach()
        await wait_for(pilot, lambda: app.screen is app.picker, what="the picker")
        app._start_attach(PID + 1)
        await wait_for(pilot, lambda: isinstance(app.screen, InspectScreen),
                       what="the second process")
        await settle(pilot)
        assert app.watches == []
        assert not [c for c in other.calls if c[0] in ("eval", "inspect")]

    run(app, scenario, (120, 40))


def test_the_busy_marker_is_on_the_one_thread_burning_a_core() -> None:
    app = fake_app(FakeSession(), pid=PID)
    worker_2, worker_3 = THREADS[3].native_id or 0, THREADS[4].native_id or 0

    def sample(cpu: dict[int, float]) -> ProcessSample:
        return ProcessSample(pid=PID, at=1.0, cpu_percent=100.0, rss=1, num_threads=7,
                             num_fds=3, uptime=1.0, thread_cpu=cpu)

    async def scenario(pilot: Pilot[int]) -> None:
        screen = await attached(pilot)
        table = screen.query_one(ThreadsTable)
        screen.show_sample(sample({worker_2: 97.0, worker_3: 3.0}))
        await settle(pilot)
        marks = {t.name: str(table.get_row_at(i)[0]) for i, t in enumerate(table.threads)}
        assert marks["worker-2"] == "▲" and marks["worker-3"] == " ", marks
        screen.show_sample(sample({worker_2: 60.0, worker_3: 55.0}))
        await settle(pilot)
        marks = {t.name: str(table.get_row_at(i)[0]) for i, t in enumerate(table.threads)}
        assert "▲" not in marks.values(), marks  # two busy threads: neither is "the" one

    run(app, scenario, (120, 40))


def test_attaching_is_shown_while_the_agent_starts() -> None:
    gate = threading.Event()

    def slow_attach(pid: int) -> FakeSession:
        gate.wait(20)
        return FakeSession()

    app = InspectorApp(PID, attach=slow_attach, list_processes=lambda: list(PROCESSES),
                       sampler=FakeSampler, timings=QUIET)

    async def scenario(pilot: Pilot[int]) -> None:
        await pilot.pause(0.3)
        text = screen_text(app)
        assert "attaching to %d" % PID in text and "esc cancels" in text, text
        gate.set()
        await attached(pilot)
        assert "attaching to" not in screen_text(app)

    run(app, scenario, (80, 24))


def test_help_lists_n_and_functions_are_named_once() -> None:
    keys = [str(row) for row in help_table().columns[0].cells]
    assert "n" in keys
    assert inline({"type": "function", "kind": "opaque", "text": "<function f>"}) \
        == "<function f>"
    assert inline({"type": "Lock", "kind": "opaque"}) == "<Lock>"


def test_a_failing_worker_is_reported_once_and_the_app_stays() -> None:
    app = fake_app(FakeSession(), pid=PID)

    def broken(request: int, value: object, failure: object) -> None:
        raise RuntimeError("a bug in a handler")

    async def scenario(pilot: Pilot[int]) -> None:
        await attached(pilot)
        app._ask("reading the moon", lambda s: s.threads(), broken)
        await settle(pilot)
        texts = [n.message for n in app._notifications]
        assert any("reading the moon failed: a bug in a handler" in t for t in texts), texts
        assert isinstance(app.screen, InspectScreen) and not app.busy

    run(app, scenario, (80, 24))
