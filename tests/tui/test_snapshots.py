"""SVG snapshots of the picker and the process view (layout regressions in review).

Fed with the deterministic fakes (tests/tui/fakes.py): a fixed process list, a
session answering like examples/threaded_service.py, a sampler with a fixed
CPU pattern and a fixed clock, so the pictures only change when the layout
does. Update them with `pytest tests/tui --snapshot-update` and review the
diff; the files live in tests/tui/__snapshots__/.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from tui.app import InspectorApp
from tui.values import MAIN, Address
from tui.widgets.eval_console import EvalConsole
from tui.widgets.stack_tree import StackTree
from tui.widgets.threads_table import ThreadsTable

from .conftest import attached, fake_app, query, settle, wait_for
from .fakes import PID, WORKER_1, FakeSession

pytestmark = [pytest.mark.tui, pytest.mark.timeout(60)]


@pytest.fixture(autouse=True)
def utc() -> Iterator[None]:
    """Watches show wall-clock times: pin the zone so the pictures match anywhere."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


async def picker_ready(pilot: Pilot[int]) -> None:
    app = pilot.app
    assert isinstance(app, InspectorApp)
    await wait_for(pilot, lambda: app.picker.listed, what="the process list")
    app.picker.query_one(Input).cursor_blink = False  # a blink could land on the picture
    await settle(pilot)


async def process_view(pilot: Pilot[int]) -> None:
    """Attached; worker-1's innermost frame and `self` open; queries; two watches."""
    app = pilot.app
    assert isinstance(app, InspectorApp)
    screen = await attached(pilot)
    for _ in range(10):
        app.sample_metrics()
        await settle(pilot)
    screen.query_one(ThreadsTable).select_ident(WORKER_1)
    await settle(pilot)
    tree = screen.query_one(StackTree)
    frame = tree.root.children[0]
    frame.expand()
    await settle(pilot)
    next(c for c in frame.children if str(c.label).startswith("self")).expand()
    await settle(pilot)
    screen.query_one(EvalConsole).use_main = True
    await query(pilot, screen, "len(orders)")
    await query(pilot, screen, "open('/etc/passwd')")
    app.post_message(_pin(Address(MAIN, "cache.hits")))
    app.post_message(_pin(Address(MAIN, "config")))
    await settle(pilot)
    for _ in range(6):
        app.evaluate_watches()
        await settle(pilot)
    app.clear_notifications()
    tree.focus()
    await settle(pilot)


def _pin(address: Address) -> Any:
    from tui.messages import WatchPinned

    return WatchPinned(address)


def test_picker_120x40(snap_compare: Any) -> None:
    assert snap_compare(fake_app(), terminal_size=(120, 40), run_before=picker_ready)


def test_picker_filtered_80x24(snap_compare: Any) -> None:
    assert snap_compare(fake_app(), terminal_size=(80, 24), run_before=picker_ready,
                        press=["3", ".", "1"])


def test_process_view_120x40(snap_compare: Any) -> None:
    app = fake_app(FakeSession(), pid=PID)
    assert snap_compare(app, terminal_size=(120, 40), run_before=process_view)


def test_process_view_80x24(snap_compare: Any) -> None:
    app = fake_app(FakeSession(), pid=PID)
    assert snap_compare(app, terminal_size=(80, 24), run_before=process_view)


async def lost_view(pilot: Pilot[int]) -> None:
    """The agent died: banner on top, the last stack kept, console read-only."""
    app = pilot.app
    assert isinstance(app, InspectorApp)
    screen = await attached(pilot)
    for _ in range(4):
        app.sample_metrics()
        await settle(pilot)
    session = app.session
    assert isinstance(session, FakeSession)
    session.dead = "the connection to the agent was lost"
    await query(pilot, screen, "len(orders)")
    app.clear_notifications()
    screen.query_one(StackTree).focus()
    await settle(pilot)


def test_process_view_lost_80x24(snap_compare: Any) -> None:
    app = fake_app(FakeSession(), pid=PID)
    assert snap_compare(app, terminal_size=(80, 24), run_before=lost_view)



def _tab(keys: tuple[str, ...]) -> Any:
    async def run_before(pilot: Pilot[int]) -> None:
        await process_view(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
        app = pilot.app
        for field in app.screen.query(Input):
            field.cursor_blink = False
        await settle(pilot)
    return run_before


TABS = {
    "modules": ("m",),
    "objects": ("o", "n", "n"),  # two censuses: the second shows what grew
    "tasks": ("t",),
    "console": ("e",),  # focus in the console: the footer keeps esc, Quit and Help
}


@pytest.mark.parametrize("tab", sorted(TABS))
@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_every_tab(snap_compare: Any, tab: str, size: tuple[int, int]) -> None:
    """Each tab with realistic numbers (a five-digit pid, fifteen-digit idents,
    four-digit line numbers, long paths and type names): a number cut at the
    edge would show in the picture."""
    app = fake_app(FakeSession(), pid=PID)
    assert snap_compare(app, terminal_size=size, run_before=_tab(TABS[tab]))
