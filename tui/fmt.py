"""Small pure formatting helpers shared by the screens and widgets."""

from __future__ import annotations

import os
import time

from inspector.models import FrameInfo, ThreadInfo
from inspector.render import human_bytes

__all__ = ["clock_time", "duration", "frame_place", "human_bytes", "short_path", "thread_flags"]


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
    if not thread.python_thread and not thread.is_agent:
        flags.append("foreign")
    return " ".join(flags)
