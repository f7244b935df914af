"""The client side of `inspector greenlets`: parsing the agent's reply and the
text view (the agent side runs against real gevent services in
tests/integration/test_gevent.py)."""
from __future__ import annotations

from typing import Any

import pytest

from inspector.diagnostics import parse_greenlets
from inspector.models import FrameInfo
from inspector.render import render_greenlets
from payloads import greenlets as payload_greenlets
from payloads.errors import QueryError


def _frame(raw: dict[str, Any]) -> FrameInfo:
    return FrameInfo(index=raw["index"], function=raw["function"], qualname=raw["qualname"],
                     file=raw["file"], line=raw["line"], first_line=0)


def _row(ident: int, function: str | None, state: str, frames: list[str],
         **extra: Any) -> dict[str, Any]:
    row = {"id": ident, "type": "gevent._gevent_cgreenlet.Greenlet", "function": function,
           "state": state, "parent": 1, "is_hub": False, "is_main": False, "thread": 7,
           "thread_name": "MainThread", "frames_cut": False,
           "frames_from": "gr_frame" if frames else None,
           "frames": [{"index": i, "function": f, "qualname": f, "file": "app.py",
                       "line": 10 + i} for i, f in enumerate(frames)]}
    row.update(extra)
    return row


RAW = {
    "greenlet": True, "gevent": True, "total": 4, "complete": True,
    "hubs": [{"id": 1, "type": "gevent.hub.Hub", "thread": 7, "thread_name": "MainThread",
              "loop_type": "gevent.libev.corecext.loop", "pending_callbacks": None}],
    "greenlets": [
        _row(3, "worker", "suspended", ["sleep", "worker"]),
        _row(2, None, "suspended", ["<module>"], type="greenlet.greenlet", is_main=True,
             parent=None),
        _row(1, "Hub.run", "running", ["run"], type="gevent.hub.Hub", is_hub=True,
             parent=2, frames_from="thread"),
        _row(4, "job\x1b[31m", "dead", []),
    ],
}


def test_reply_parses_sorted_hub_first_and_escaped():
    result = parse_greenlets(RAW, _frame)
    assert [g.id for g in result.greenlets] == [1, 2, 3, 4]  # hub, main, then by state
    assert result.greenlets[2].frames[1].function == "worker"
    assert "\x1b" not in (result.greenlets[3].function or "")  # target text is escaped
    assert result.hubs[0].pending_callbacks is None and result.complete


def test_text_view_shows_the_hub_state_and_every_stack():
    text = render_greenlets(parse_greenlets(RAW, _frame))
    lines = text.splitlines()
    assert lines[0].startswith('Hub gevent.hub.Hub at 0x1 on thread "MainThread" (ident 7), '
                               "running: loop gevent.libev.corecext.loop, pending callbacks "
                               "not readable")
    assert "4 greenlets (1 dead, 1 running, 2 suspended)" in lines
    assert any(line.startswith("Greenlet worker at 0x3") and "[suspended]" in line
               for line in lines)
    assert "  #1  worker (app.py:11)" in lines
    assert any(line.startswith("Main greenlet greenlet.greenlet at 0x2") for line in lines)
    incomplete = dict(RAW, complete=False)
    assert "heap walk ran out of time" in render_greenlets(parse_greenlets(incomplete, _frame))


def test_no_greenlet_created_yet():
    empty = {"greenlet": True, "gevent": False, "total": 0, "complete": True, "hubs": [],
             "greenlets": []}
    assert render_greenlets(parse_greenlets(empty, _frame)) == "0 greenlets"


@pytest.mark.parametrize("limits", [{"max_seconds": 0}, {"max_seconds": 500},
                                    {"max_seconds": True}, {"chunk": 100}, [1]])
def test_bad_limits_are_refused(limits):
    with pytest.raises(QueryError):
        payload_greenlets.list_greenlets(None, limits)


def test_without_greenlet_nothing_is_read():
    # this test process never imported greenlet: the answer says so
    result = payload_greenlets.list_greenlets(None, {"max_seconds": 5})
    assert result["greenlet"] is False and result["greenlets"] == []
