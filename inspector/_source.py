"""Source lines for stack frames, read by the client (no file I/O in the target).

A frame's ``co_filename`` is a path as the target sees it: relative to the
target's working directory, and inside its mount namespace. We read it
through ``/proc/PID/cwd`` and ``/proc/PID/root``.
"""

from __future__ import annotations

import os
from functools import lru_cache

MAX_FILE_BYTES = 4 * 1024 * 1024


@lru_cache(maxsize=256)
def _lines(path: str) -> tuple[str, ...]:
    try:
        if os.path.getsize(path) > MAX_FILE_BYTES:
            return ()
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return ()
    return tuple(data.decode("utf-8", "replace").splitlines())


def _candidates(pid: int, filename: str) -> list[str]:
    if filename.startswith("<"):
        return []  # <string>, <frozen importlib._bootstrap>, <inspector-agent:...>
    if os.path.isabs(filename):
        return ["/proc/%d/root%s" % (pid, filename), filename]
    return ["/proc/%d/cwd/%s" % (pid, filename)]


def source_line(pid: int, filename: str, line: int) -> str | None:
    if line <= 0:
        return None
    for path in _candidates(pid, filename):
        lines = _lines(path)
        if len(lines) >= line:
            return lines[line - 1].strip()
    return None
