"""Naming one running call from the command line, race-free.

A busy thread's frame #N is another function a moment after `inspector
stack` listed it. The agent already addresses one call exactly by its
`FrameInfo.frame_id` (the frame's and its code object's ids); this module
gives the CLI the two ways to use it:

- `--frame-id ID` (shown by `inspector stack --ids`): that very call, or
  `FrameGone` (exit 7) once it has returned;
- `--frame N --expect-function NAME` (or `--frame N --frame-id ID`): read
  the thread's stack, check that frame #N runs NAME (is that call), else
  `FrameMoved` (exit 7) naming the function now at N; then query that call
  by its frame_id, so it cannot move in between.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .errors import FrameGone, FrameMoved, InspectorError, UsageError
from .models import FrameInfo

if TYPE_CHECKING:
    from .api import SessionAPI

MAX_LISTED = 8  # frames named in a FrameMoved message


def parse_frame_id(text: str) -> int:
    """A frame id as `stack --ids` prints it (hex, 0x...) or as `--json`
    gives it (decimal)."""
    try:
        value = int(text, 0) if text[:2].lower() == "0x" else int(text)
    except ValueError:
        raise ValueError("a frame id is a number as `inspector stack --ids` prints it "
                         "(0x...), not %r" % text) from None
    if value <= 0:
        raise ValueError("a frame id is positive")
    return value


def format_frame_id(frame_id: int) -> str:
    return "0x%x" % frame_id


QUALNAMES_SINCE = (3, 11)  # code.co_qualname: older targets report the bare name


def matches(frame: FrameInfo, expected: str, qualnames: bool = True) -> bool:
    """`expected` is the function's name or its qualified name
    (`handle`, `Worker.handle`). A target older than 3.11 knows no
    qualified names, so there only the last part of one is compared."""
    if expected in (frame.function, frame.qualname):
        return True
    return not qualnames and expected.rsplit(".", 1)[-1] == frame.function


def describe(frame: FrameInfo) -> str:
    return "%s (%s:%d)" % (frame.qualname, frame.file, frame.line)


def pin_frame(session: SessionAPI, thread: int | str, index: int, *,
              function: str | None = None, frame_id: int | None = None) -> FrameInfo:
    """Frame #index of `thread`, if it runs `function` and/or is the call
    `frame_id`; else FrameMoved naming what runs there now."""
    stacks = session.stack(thread)
    frames = stacks[0].frames if stacks else ()
    frame = frames[index] if 0 <= index < len(frames) else None
    qualnames = tuple(session.agent.python[:2]) >= QUALNAMES_SINCE
    if frame is not None and (function is None or matches(frame, function, qualnames)) and (
            frame_id is None or frame.frame_id == frame_id):
        return frame
    label = _thread_label(thread)
    expected = function or "the call %s" % format_frame_id(frame_id or 0)
    remedy = ("read the stack again (`inspector stack %d --thread %s --ids`) and pass "
              "--frame-id" % (session.pid, label))
    if frame is None:
        listed = ", ".join("%d %s" % (f.index, f.qualname) for f in frames[:MAX_LISTED])
        raise FrameMoved("thread %s has no frame %d now (expected %s there); its %d frames "
                         "are %s%s: %s" % (label, index, expected, len(frames), listed,
                                           " ..." if len(frames) > MAX_LISTED else "",
                                           remedy))
    raise FrameMoved("frame %d of thread %s runs %s now, not %s%s: %s"
                     % (index, label, describe(frame), expected,
                        _where_now(frames, function, frame_id, qualnames), remedy))


def _where_now(frames: Sequence[FrameInfo], function: str | None, frame_id: int | None,
               qualnames: bool) -> str:
    if frame_id is not None:
        moved = [f.index for f in frames if f.frame_id == frame_id]
        return (" (that call is frame %d now)" % moved[0] if moved
                else " (that call has returned)")
    assert function is not None
    where = [str(f.index) for f in frames if matches(f, function, qualnames)]
    return (" (%s is frame %s now)" % (function, ", ".join(where)) if where
            else " (%s is not on its stack now)" % function)


def explain_gone(session: SessionAPI, frame_id: int, thread: int | str,
                 function: str | None) -> InspectorError:
    """The agent found no call `frame_id` on `thread`: a usage error if it
    runs on another thread (named), else FrameGone (it has returned)."""
    try:
        stacks = session.stack()
    except InspectorError:
        stacks = []
    for st in stacks:
        if any(f.frame_id == frame_id for f in st.frames):
            other = st.thread.name if st.thread.name is not None else str(st.thread.ident)
            return UsageError("frame id %s is a call on thread %r (ident %d), not on thread "
                              "%s: pass --thread %s" % (format_frame_id(frame_id), other,
                                                        st.thread.ident,
                                                        _thread_label(thread),
                                                        st.thread.ident))
    return returned(session.pid, frame_id, thread, function)


def returned(pid: int, frame_id: int, thread: int | str, function: str | None) -> FrameGone:
    """The error for a call that returned before the query ran."""
    which = "the call of %s" % function if function else "the call"
    label = _thread_label(thread)
    return FrameGone("%s with frame id %s has returned: it is no longer on the stack of "
                     "thread %s; read the stack again (`inspector stack %d --thread %s --ids`)"
                     % (which, format_frame_id(frame_id), label, pid, label))


def check_options(thread: int | str | None, frame: int | None, frame_id: int | None,
                  expected: str | None) -> None:
    if thread is None and (frame is not None or frame_id is not None or expected):
        option = ("--frame" if frame is not None else "--frame-id" if frame_id is not None
                  else "--expect-function")
        raise UsageError("%s needs --thread" % option)


def _thread_label(thread: int | str) -> str:
    return repr(thread) if isinstance(thread, str) else str(thread)
