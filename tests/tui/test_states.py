"""States that are rare or awkward with a real target, driven with a fake session.

Each test says what the operator sees: an attach failure inline, the banner
when the agent dies, a cancelled slow answer, a big container paged, help,
copy, and the session detached on quit.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from inspector.errors import AttachError
from tui.app import InspectorApp
from tui.screens.help import HelpScreen
from tui.widgets.eval_console import EvalConsole, HistoryInput, Transcript
from tui.widgets.stack_tree import StackTree
from tui.widgets.status_line import StatusLine
from tui.widgets.tasks_view import TasksView
from tui.widgets.watch_list import WatchList, WatchRow

from .conftest import QUIET, attached, fake_app, query, settle, transcript_text, wait_for
from .fakes import PID, PROCESSES, FakeSampler, FakeSession

pytestmark = [pytest.mark.tui, pytest.mark.timeout(60)]


def run(app: InspectorApp, scenario: Callable[[Pilot[int]], Awaitable[None]],
        size: tuple[int, int] = (120, 40)) -> None:
    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await scenario(pilot)
    asyncio.run(main())


def test_attach_failure_is_one_line_in_the_picker_and_the_app_stays():
    def refuse(pid: int) -> FakeSession:
        raise AttachError("ptrace is not permitted (kernel.yama.ptrace_scope=2); run as root "
                          "or set it to 0")

    app = InspectorApp(None, attach=refuse, list_processes=lambda: list(PROCESSES),
                       sampler=FakeSampler, timings=QUIET)

    async def scenario(pilot: Pilot[int]) -> None:
        await wait_for(pilot, lambda: app.picker.listed, what="the process list")
        await pilot.press(*str(PID), "enter")
        await settle(pilot)
        error = app.picker.query_one("#picker-error", Static)
        assert "ptrace is not permitted" in str(error.render())
        assert error.has_class("-shown")
        assert app.screen is app.picker and app.attaching is None
        assert app.picker.query_one(StatusLine).busy_text is None

    run(app, scenario)


def test_agent_dying_shows_a_banner_keeps_the_data_and_reattach_is_one_key():
    first = FakeSession()
    second = FakeSession()
    sessions = [first, second]
    app = InspectorApp(PID, attach=lambda pid: sessions.pop(0),
                       list_processes=lambda: list(PROCESSES), sampler=FakeSampler,
                       timings=QUIET)

    async def scenario(pilot: Pilot[int]) -> None:
        screen = await attached(pilot)
        tree = screen.query_one(StackTree)
        frames_before = [str(n.label) for n in tree.root.children]
        assert frames_before
        first.dead = "the connection to the agent was lost"
        await query(pilot, screen, "len(orders)")
        banner = screen.query_one("#lost-banner", Static)
        assert screen.has_class("-lost") and banner.display
        assert "the connection to the agent was lost" in str(banner.render())
        assert [str(n.label) for n in tree.root.children] == frames_before  # kept
        assert screen.query_one(HistoryInput).disabled
        assert app.check_action("reattach", ()) is True
        await pilot.press("a")
        screen2 = await attached(pilot)
        assert screen2 is not screen and not screen2.has_class("-lost")
        assert app.session is second

    run(app, scenario)


def test_a_slow_answer_spins_and_esc_cancels_it_without_freezing():
    gate = threading.Event()
    session = FakeSession(gate=gate)
    app = fake_app(session, pid=PID)

    async def scenario(pilot: Pilot[int]) -> None:
        screen = await attached(pilot)
        field = screen.query_one(HistoryInput)
        field.focus()
        field.value = "len(orders)"
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.query_one(StatusLine).busy_text, what="spinner")
        assert "evaluating len(orders)" in (screen.query_one(StatusLine).busy_text or "")
        assert app.check_action("cancel", ()) is True
        await pilot.press("tab")  # the UI still answers keys while the agent is busy
        await pilot.press("escape")
        assert screen.query_one(StatusLine).busy_text is None
        assert any("cancelled" in line for line in transcript_text(screen))
        gate.set()
        await settle(pilot)
        assert not any("→ 200" in line for line in transcript_text(screen))  # dropped

    run(app, scenario)


def test_refusals_budget_and_errors_show_the_rule_inline_never_a_traceback():
    app = fake_app(pid=PID)

    async def scenario(pilot: Pilot[int]) -> None:
        screen = await attached(pilot)
        await query(pilot, screen, "open('/etc/passwd')")
        await query(pilot, screen, "10**10**10")
        await query(pilot, screen, "nope")
        text = "\n".join(transcript_text(screen))
        assert "refused by the sandbox" in text and "not on the allowlist" in text
        assert "over budget" in text and "max_int_bits" in text
        assert "NameError: name 'nope' is not defined" in text
        assert "Traceback" not in text
        field = screen.query_one(HistoryInput)  # up/down walk the history
        await pilot.press("up")
        assert field.value == "nope"
        await pilot.press("up", "up")
        assert field.value == "open('/etc/passwd')"
        await pilot.press("down")
        assert field.value == "10**10**10"

    run(app, scenario)


def test_a_big_container_pages_with_more():
    app = fake_app(pid=PID)

    async def scenario(pilot: Pilot[int]) -> None:
        screen = await attached(pilot)
        screen.query_one(EvalConsole).use_main = True
        await query(pilot, screen, "big")
        transcript = screen.query_one(Transcript)
        row = transcript.root.children[-1]
        transcript.focus()
        transcript.move_cursor(row)
        await pilot.press("enter")
        await settle(pilot)
        more = row.children[-1]
        assert str(more.label) == "100 of 120,000 items — more…"
        assert len(row.children) == 101
        transcript.move_cursor(more)
        await pilot.press("enter")
        await settle(pilot)
        assert str(row.children[100].label).startswith("[100] = 100")
        assert str(row.children[-1].label) == "200 of 120,000 items — more…"

    run(app, scenario)


def test_help_opens_with_question_mark_and_copy_puts_the_value_on_the_clipboard():
    app = fake_app(pid=PID)

    async def scenario(pilot: Pilot[int]) -> None:
        screen = await attached(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert app.screen is screen
        screen.query_one(EvalConsole).use_main = True
        await query(pilot, screen, "len(orders)")
        screen.query_one(Transcript).focus()
        await pilot.press("c")
        assert app.clipboard == "200"

    run(app, scenario)


def test_quit_detaches_the_session():
    session = FakeSession()
    app = fake_app(session, pid=PID)

    async def scenario(pilot: Pilot[int]) -> None:
        await attached(pilot)
        await pilot.press("q")
        await settle(pilot)

    run(app, scenario)
    assert session.closed and ("detach", None) in session.calls
    assert app.return_code == 0


def test_the_app_ending_any_other_way_still_detaches():
    session = FakeSession()
    app = fake_app(session, pid=PID)

    async def scenario(pilot: Pilot[int]) -> None:
        await attached(pilot)
        app.exit(3)  # e.g. an error elsewhere ends the app: no q, no d

    run(app, scenario)
    assert session.closed and session.calls[-1] == ("detach", None)


def test_pin_a_console_answer_watch_it_update_and_unpin_it():
    app = fake_app(pid=PID)

    async def scenario(pilot: Pilot[int]) -> None:
        screen = await attached(pilot)
        screen.query_one(EvalConsole).use_main = True
        await query(pilot, screen, "cache.hits")
        screen.query_one(Transcript).focus()
        await pilot.press("p")
        await settle(pilot)
        assert [w.label for w in app.watches] == ["cache.hits"]
        for _ in range(3):
            app.evaluate_watches()
            await settle(pilot)
        watch = app.watches[0]
        assert len(watch.history) == 4 and watch.history[-1] > watch.history[0]
        rows = screen.query(WatchRow)
        assert len(rows) == 1 and "(" in str(rows.first().query_one(".watch-value").render())
        await pilot.press("tab")  # the watch list is the last pane
        assert isinstance(app.focused, WatchList)
        await pilot.press("p")
        await settle(pilot)
        assert app.watches == [] and not screen.query(WatchRow)

    run(app, scenario)


def test_esc_while_attaching_stops_waiting_and_a_late_agent_is_detached():
    release = threading.Event()
    late = FakeSession()

    def slow_attach(pid: int) -> FakeSession:
        release.wait(10)
        return late

    app = InspectorApp(None, attach=slow_attach, list_processes=lambda: list(PROCESSES),
                       sampler=FakeSampler, timings=QUIET)

    async def scenario(pilot: Pilot[int]) -> None:
        await wait_for(pilot, lambda: app.picker.listed, what="the process list")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.attaching is not None, what="the attach")
        assert app.picker.query_one(StatusLine).busy_text.startswith("attaching to")
        await pilot.press("escape")
        assert app.attaching is None and app.picker.query_one(StatusLine).busy_text is None
        assert "stopped waiting" in str(app.picker.query_one("#picker-error", Static).render())
        release.set()
        await wait_for(pilot, lambda: late.closed, what="the late session's detach")
        assert app.screen is app.picker and app.session is None

    run(app, scenario)


def test_objects_tab_takes_a_census_on_request_and_shows_what_grew():
    session = FakeSession()
    app = fake_app(session, pid=PID)

    async def scenario(pilot: Pilot[int]) -> None:
        screen = await attached(pilot)
        await pilot.press("o")
        assert not any(op == "census" for op, _ in session.calls)  # costly: only on request
        screen.query_one("#census-table").focus()
        await pilot.press("n")
        await settle(pilot)
        table = screen.query_one("#census-table", DataTable)
        assert str(table.get_row_at(0)[0]) == "builtins.dict"
        await pilot.press("n")
        await settle(pilot)
        first = [str(cell) for cell in table.get_row_at(0)]
        assert first[0] == "builtins.dict" and first[3] == "+100"
        assert any(str(table.get_row_at(i)[0]) == "__main__.Order" for i in
                   range(table.row_count))
        summary = str(screen.query_one("#census-summary", Static).render())
        assert "objects" in summary and "Δ since" in summary

    run(app, scenario)


def test_tasks_tab_lists_tasks_and_their_await_chains():
    app = fake_app(pid=PID)

    async def scenario(pilot: Pilot[int]) -> None:
        screen = await attached(pilot)
        await pilot.press("t")
        await settle(pilot)
        tree = screen.query_one(TasksView)
        rows = [str(n.label) for n in tree.root.children]
        # the coroutine is on the row, before it is opened (a task named after its
        # coroutine is not named twice)
        assert rows[0].startswith("Task-1 main()  pending"), rows
        assert "waits on _GatheringFuture" in rows[0]
        assert rows[1].startswith("ticker  pending"), rows
        chain = [str(n.label) for n in tree.root.children[1].children]
        assert "ticker" in chain[0] and "sleep" in chain[1] and "Future" in chain[2]
        assert "awaits task ticker" in [str(n.label) for n in tree.root.children[0].children]

    run(app, scenario)



def test_ctrl_o_runs_queries_in_an_isolated_fork_and_says_so():
    app = fake_app(pid=PID)

    async def scenario(pilot: Pilot[int]) -> None:
        screen = await attached(pilot)
        console = screen.query_one(EvalConsole)
        await query(pilot, screen, "len(orders)")
        screen.query_one(HistoryInput).focus()
        await pilot.press("ctrl+o")
        await settle(pilot)
        assert console.isolated and "isolated" in str(console.border_title)
        assert "(fork)" in str(screen.query_one("#console-scope").render())
        await query(pilot, screen, "len(orders)")
        await pilot.press("ctrl+o")
        await query(pilot, screen, "len(orders)")
        session = app.session
        assert session is not None
        assert session.isolated_queries == [False, True, False]  # type: ignore[attr-defined]

    run(app, scenario)
