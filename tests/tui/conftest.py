"""Helpers for driving the TUI: a fake-backed app and waiting on Pilot."""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.pilot import Pilot
from textual.worker import WorkerState

from tui.app import InspectorApp, Timings
from tui.screens.inspect import InspectScreen
from tui.widgets.eval_console import HistoryInput, Transcript
from tui.widgets.stack_tree import StackTree

from .fakes import PROCESSES, FakeSampler, FakeSession

NOON = 1_700_000_000.0  # a fixed clock for "changed at" times in snapshots
QUIET = Timings(processes=None, metrics=None, watches=None, heartbeat=None)


def fake_app(session: FakeSession | None = None, *, pid: int | None = None,
             timings: Timings = QUIET) -> InspectorApp:
    """An app whose session, sampler and process list are the deterministic fakes."""
    chosen = session or FakeSession()
    return InspectorApp(pid, attach=lambda _pid: chosen, list_processes=lambda: list(PROCESSES),
                        sampler=FakeSampler, clock=lambda: NOON, timings=timings)


async def wait_for(pilot: Pilot[int], predicate: Callable[[], object],
                   timeout: float = 15.0, what: str = "condition") -> None:
    """Let the app run until `predicate()` holds (workers answer on their own time)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        await pilot.pause(0.05)


async def settle(pilot: Pilot[int]) -> None:
    """Wait until no worker runs and the app has handled what they posted."""
    app = pilot.app
    quiet = 0
    while quiet < 2:  # twice: a handled message may start another worker
        await pilot.pause()
        if any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in app.workers):
            await app.workers.wait_for_complete()
            quiet = 0
        else:
            quiet += 1


async def attached(pilot: Pilot[int]) -> InspectScreen:
    app = pilot.app
    assert isinstance(app, InspectorApp)
    await wait_for(pilot, lambda: isinstance(app.screen, InspectScreen)
                   and app.screen.query(StackTree), what="the process view")
    await settle(pilot)
    screen = app.screen
    assert isinstance(screen, InspectScreen)
    return screen


def transcript_text(screen: InspectScreen) -> list[str]:
    out: list[str] = []
    for node in screen.query_one(Transcript).root.children:
        out.append(str(node.label))
        out.extend(str(c.label) for c in node.children)
    return out


async def query(pilot: Pilot[int], screen: InspectScreen, expr: str) -> None:
    """Run a query from the console (typing is exercised in test_real_target.py)."""
    field = screen.query_one(HistoryInput)
    field.focus()
    field.value = expr
    await pilot.press("enter")
    await settle(pilot)
