"""Naming one call from the command line (inspector/pin.py), without a target:
frame-id parsing, option checks, and the one-line errors."""

from __future__ import annotations

import pytest

from inspector import pin
from inspector.errors import FrameGone, FrameMoved, UsageError
from inspector.models import AgentInfo, FrameInfo, ThreadInfo, ThreadStack


def _frame(index: int, qualname: str, frame_id: int) -> FrameInfo:
    return FrameInfo(index=index, function=qualname.rsplit(".", 1)[-1], qualname=qualname,
                     file="app.py", line=10 + index, first_line=1, frame_id=frame_id)


class FakeSession:
    pid = 4242

    def __init__(self, *frames: FrameInfo, python: tuple[int, ...] = (3, 12, 1)) -> None:
        self.frames = frames
        self.agent = AgentInfo(pid=4242, python=python, agent_thread=3, agent_native_id=4)

    def stack(self, thread: int | str | None = None) -> list[ThreadStack]:
        info = ThreadInfo(ident=1, native_id=2, name="worker", daemon=True, is_main=False,
                          is_agent=False, python_thread=True)
        return [ThreadStack(info, self.frames)]


SESSION = FakeSession(_frame(0, "step", 0x11), _frame(1, "Worker.serve", 0x22))


@pytest.mark.parametrize("text, value", [("0x1f", 31), ("0X1F", 31), ("31", 31)])
def test_parse_frame_id(text, value):
    assert pin.parse_frame_id(text) == value
    assert pin.format_frame_id(value) == "0x1f"


@pytest.mark.parametrize("text", ["", "x", "0x", "-5", "0", "1.5"])
def test_parse_frame_id_refuses(text):
    with pytest.raises(ValueError, match="frame id"):
        pin.parse_frame_id(text)


@pytest.mark.parametrize("frame, frame_id, expected, option", [
    (1, None, None, "--frame"), (None, 5, None, "--frame-id"),
    (None, None, "serve", "--expect-function"),
])
def test_frame_options_need_a_thread(frame, frame_id, expected, option):
    with pytest.raises(UsageError, match="^%s needs --thread$" % option):
        pin.check_options(None, frame, frame_id, expected)
    pin.check_options("worker", frame, frame_id, expected)


def test_pin_by_name_or_qualname_or_id():
    assert pin.pin_frame(SESSION, "worker", 1, function="serve").frame_id == 0x22
    assert pin.pin_frame(SESSION, "worker", 1, function="Worker.serve").frame_id == 0x22
    assert pin.pin_frame(SESSION, "worker", 1, frame_id=0x22).qualname == "Worker.serve"


def test_before_3_11_a_qualified_name_is_compared_by_its_last_part():
    # 3.8-3.10 report co_name as the qualname: "Worker.serve" arrives as "serve"
    old = FakeSession(_frame(0, "step", 0x11), _frame(1, "serve", 0x22), python=(3, 8, 18))
    assert pin.pin_frame(old, "worker", 1, function="Worker.serve").frame_id == 0x22
    with pytest.raises(FrameMoved, match=r"not Worker.serve \(Worker.serve is frame 1 now\)"):
        pin.pin_frame(old, "worker", 0, function="Worker.serve")
    new = FakeSession(_frame(0, "step", 0x11), _frame(1, "serve", 0x22))
    with pytest.raises(FrameMoved, match=r"\(Worker.serve is not on its stack now\)"):
        pin.pin_frame(new, "worker", 1, function="Worker.serve")


def test_moved_names_the_function_now_at_n():
    with pytest.raises(FrameMoved) as e:
        pin.pin_frame(SESSION, "worker", 0, function="serve")
    assert e.value.exit_code == 7 and e.value.kind == "frame_moved"
    assert e.value.message == (
        "frame 0 of thread 'worker' runs step (app.py:10) now, not serve (serve is frame 1 "
        "now): read the stack again (`inspector stack 4242 --thread 'worker' --ids`) and "
        "pass --frame-id")
    with pytest.raises(FrameMoved, match=r"runs step \(app.py:10\) now, not the call 0x22 "
                                         r"\(that call is frame 1 now\)"):
        pin.pin_frame(SESSION, "worker", 0, frame_id=0x22)
    with pytest.raises(FrameMoved, match=r"not the call 0x99 \(that call has returned\)"):
        pin.pin_frame(SESSION, "worker", 0, frame_id=0x99)
    with pytest.raises(FrameMoved, match=r"not gone \(gone is not on its stack now\)"):
        pin.pin_frame(SESSION, "worker", 1, function="gone")
    with pytest.raises(FrameMoved, match=r"thread 'worker' has no frame 7 now \(expected serve "
                                         r"there\); its 2 frames are 0 step, 1 Worker.serve:"):
        pin.pin_frame(SESSION, "worker", 7, function="serve")


def test_returned_is_frame_gone_exit_7():
    error = pin.returned(4242, 0x22, 140, "serve")
    assert isinstance(error, FrameGone) and error.exit_code == 7
    assert error.message.startswith("the call of serve with frame id 0x22 has returned: it is "
                                    "no longer on the stack of thread 140;")
    assert "`inspector stack 4242 --thread 140 --ids`" in error.message


def test_a_missing_call_is_named_on_its_thread_or_has_returned():
    assert isinstance(pin.explain_gone(SESSION, 0x22, "MainThread", None), UsageError)
    assert "is a call on thread 'worker' (ident 1), not on thread 'MainThread': pass " \
           "--thread 1" in pin.explain_gone(SESSION, 0x22, "MainThread", None).message
    gone = pin.explain_gone(SESSION, 0x99, "worker", "serve")
    assert isinstance(gone, FrameGone) and "the call of serve with frame id 0x99 has " \
        "returned" in gone.message
