"""The TUI's pure helpers: addresses, children and paging, watches, process rows."""

from __future__ import annotations

import pytest

from inspector.models import FrameInfo
from tui import values
from tui.fmt import duration, short_path
from tui.values import MAIN, Address, FrameGoneError, Scope, find_frame
from tui.watching import Watch, compact_number
from tui.widgets.process_table import filter_processes, sort_processes
from tui.widgets.watch_list import watch_summary

from .fakes import PID, PROCESSES, node_of

pytestmark = pytest.mark.tui


def test_address_spells_paths_and_scopes_give_call_arguments():
    frame = Scope(thread=7, frame=1, label="worker-1 · Worker.run")
    address = Address(frame, "self").child(("attr", "jobs")).child(("item", 3))
    assert address.text == "self.jobs[#3]"
    assert address.path_list() == [["attr", "jobs"], ["item", 3]]
    assert frame.call_args() == {"thread": 7, "frame": 1}
    assert MAIN.call_args() == {}
    assert Address(MAIN, "len(x)", (("item", 0),)).text == "(len(x))[#0]"


def _frames(*names: str) -> tuple[FrameInfo, ...]:
    return tuple(FrameInfo(i, n, n, "/srv/app.py", 10 + i, 1) for i, n in enumerate(names))


def test_a_frame_scope_follows_its_function_as_the_stack_moves():
    when_read = _frames("Worker.handle", "Worker.run", "Thread._bootstrap")
    scope = Scope.of_frame(7, when_read[1], len(when_read), "worker-1 · Worker.run")
    assert scope.depth == 1 and find_frame(when_read, scope) == 1
    deeper = _frames("Condition.wait", "Queue.get", "Worker.run", "Thread._bootstrap")
    assert find_frame(deeper, scope) == 2  # same function, same depth from the bottom
    with pytest.raises(FrameGoneError, match="Worker.run has returned"):
        find_frame(_frames("main", "<module>"), scope)


def test_children_of_each_container_kind_carry_the_step_that_reaches_them():
    mapping = values.children(node_of({"a": 1, "b": [1, 2]}))
    assert [(c.name, c.step) for c in mapping] == [("a", ("item", 0)), ("b", ("item", 1))]
    seq = values.children(node_of([5, 6]), offset=100)
    assert [(c.name, c.step) for c in seq] == [("[100]", ("item", 100)), ("[101]", ("item", 101))]
    assert values.has_children(node_of([1])) and not values.has_children(node_of([]))
    assert not values.has_children(node_of(3))


def test_paging_says_how_many_are_shown_and_refuses_an_agent_that_ignores_offset():
    first = node_of(list(range(120000)))
    assert values.remaining(first, 0) == (100, 120000)
    assert values.more_label(1000, 120000) == "1,000 of 120,000 items — more…"
    page = node_of(list(range(120000)), offset=100)
    assert values.page_offset(page, 100) == 100
    ignored = node_of(list(range(120000)))  # no "offset" echoed: the first items again
    assert values.page_offset(ignored, 100) is None
    assert values.remaining(node_of([1, 2]), 0) is None


def test_numeric_watch_keeps_history_and_min_max_others_keep_change_time():
    watch = Watch(1, Address(MAIN, "cache.hits"))
    for at, n in ((1.0, 5), (2.0, 9), (3.0, 7)):
        watch.record(node_of(n), at)
    assert watch.is_number and list(watch.history) == [5, 9, 7]
    assert (watch.minimum, watch.maximum) == (5, 9)
    assert watch_summary(watch).startswith("7  (5–9)")
    text = Watch(2, Address(MAIN, "config.host"))
    text.record(node_of("a"), 1.0)
    text.record(node_of("a"), 2.0)
    assert text.changed_at == 1.0
    text.record(node_of("b"), 3.0)
    assert text.changed_at == 3.0 and not text.is_number
    text.record_error("denied", "refused", 4.0)
    assert text.error_kind == "denied" and watch_summary(text).startswith("⊘ refused")
    assert compact_number(2_500_000) == "2.5M" and compact_number(42) == "42"


def test_process_rows_filter_on_every_word_and_sort_busiest_first():
    assert [p.pid for p in filter_processes(PROCESSES, "python 3.11")] == [PID]
    assert [p.pid for p in filter_processes(PROCESSES, "5150")] == [5150]
    assert [p.pid for p in sort_processes(PROCESSES, "cpu")][:2] == [5150, PID]
    assert [p.pid for p in sort_processes(PROCESSES, "pid")] == [777, 1234, 5150, PID]
    assert [p.pid for p in sort_processes(PROCESSES, "pid", reverse=True)][0] == PID


def test_formatting():
    assert duration(42) == "42s" and duration(3723) == "1h 02m" and duration(200000) == "2d 07h"
    assert short_path("/usr/lib/python3.11/threading.py") == "threading.py"
    assert short_path("/srv/pkg/__init__.py") == "pkg/__init__.py"


def test_fitting_never_cuts_a_number():
    from rich.text import Text

    from tui.fmt import clip_left, fit, safe_cut

    assert str(fit(Text("threading.py:1045"), 15)) == "threading.py:…"
    assert str(fit(Text("native 19271 · daemon"), 11)) == "native …"
    assert str(fit(Text("host=127.0.0.1, port=8080"), 12)) == "host=…"
    assert str(fit(Text("short"), 10)) == "short"
    assert safe_cut("1,024 items", 3) == 0 and safe_cut("ab 12", 3) == 3
    assert clip_left("/usr/lib/python3.11/threading.py", 14) == "…/threading.py"


def test_session_state_transitions():
    from tests.tui.fakes import FakeSession
    from tui.state import Phase, SessionState

    s = SessionState().attach(42)
    assert s.attaching == 42 and s.live is None and s.lost is None
    assert s.attach_ended().phase is Phase.IDLE  # a failed first attach: the picker
    session = FakeSession()
    live = s.attached(session)
    assert live.live is session and live.last_pid == session.pid
    lost = live.lose("target exited")
    assert lost.live is None and lost.lost == "target exited" and lost.can_reattach
    again = lost.attach(session.pid)
    assert again.attaching == session.pid and again.lost == "target exited"
    assert again.attach_ended().phase is Phase.LOST  # a failed re-attach: still lost
    leaving = live.leave()
    assert leaving.phase is Phase.DETACHING and leaving.live is None
    assert leaving.left().phase is Phase.IDLE and leaving.left().last_pid == session.pid
