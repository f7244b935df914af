"""Small pure formatting helpers shared by the screens and widgets."""

from __future__ import annotations

import os
import time

from rich.text import Text

from inspector.models import FrameInfo, ThreadInfo
from inspector.render import human_bytes

__all__ = ["clip_left", "clock_time", "duration", "fit", "frame_place", "human_bytes",
           "safe_cut", "short_path", "thread_flags"]

ELLIPSIS = "…"


def _in_number(plain: str, i: int) -> bool:
    """Whether plain[i] belongs to a number: a digit, or a separator between digits."""
    if not 0 <= i < len(plain):
        return False
    c = plain[i]
    if c.isdigit():
        return True
    return (c in ".,_" and 0 < i < len(plain) - 1 and plain[i - 1].isdigit()
            and plain[i + 1].isdigit())


def safe_cut(plain: str, cut: int) -> int:
    """Where to cut `plain` at or before `cut` without splitting a number:
    a wrong number is worse than a missing one."""
    cut = max(0, min(cut, len(plain)))
    if 0 < cut < len(plain) and _in_number(plain, cut - 1) and _in_number(plain, cut):
        while cut > 0 and _in_number(plain, cut - 1):
            cut -= 1
    return cut


def fit(text: Text, width: int) -> Text:
    """`text` in at most `width` cells: cut at the end with an ellipsis, never
    in the middle of a number."""
    if width <= 0 or text.cell_len <= width:
        return text
    cut = safe_cut(text.plain, width - 1)
    out = text[:cut]
    out.append(ELLIPSIS)
    return out


def clip_left(path: str, width: int) -> str:
    """A path in `width` cells, cut from the left (the file name is what matters)."""
    if len(path) <= width:
        return path
    if width <= 1:
        return ELLIPSIS[:width]
    return ELLIPSIS + path[len(path) - width + 1:]


def duration(seconds: float) -> str:
    """`42s`, `5m 03s`, `2h 07m`, `3d 04h`: two units at most."""
    s = max(0, int(seconds))
    if s < 60:
        return "%ds" % s
    if s < 3600:
        return "%dm %02ds" % divmod(s, 60)
    if s < 86400:
        return "%dh %02dm" % (s // 3600, s % 3600 // 60)
    return "%dd %02dh" % (s // 86400, s % 86400 // 3600)


def clock_time(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def short_path(path: str) -> str:
    """The part of a file name an operator recognises: `threading.py`, `pkg/__init__.py`."""
    if path.startswith("<"):
        return path
    base = os.path.basename(path) or path
    if base == "__init__.py" or base == "__main__.py":
        parent = os.path.basename(os.path.dirname(path))
        return "%s/%s" % (parent, base) if parent else base
    return base


def frame_place(frame: FrameInfo) -> str:
    return "%s:%d" % (short_path(frame.file), frame.line)


def thread_flags(thread: ThreadInfo) -> str:
    flags = []
    if thread.is_agent:
        flags.append("agent")
    if thread.is_main:
        flags.append("main")
    if thread.daemon:
        flags.append("daemon")
    if not thread.python_thread and not thread.is_agent and not thread.is_main:
        flags.append("foreign")
    return " ".join(flags)
