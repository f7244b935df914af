"""Source lines for stack frames, read by the client (no file I/O in the target).

A frame's ``co_filename`` is whatever the target says (``compile(src,
"/etc/shadow", "exec")`` names any file), and the client is often root. So a
file is read only:

- inside the target's root: ``/proc/PID/root`` opened as a directory and the
  name resolved by the kernel with ``openat2(RESOLVE_IN_ROOT)``, so absolute
  symlinks and ``..`` stay inside it (relative names from ``/proc/PID/cwd``
  the same way); never the host path;
- if it is a regular file (opened ``O_PATH`` first: a FIFO or a device is
  never opened for reading), of at most MAX_FILE_BYTES;
- if the target's own credentials (its effective uid, gid and groups, from
  /proc/PID/status) may read it: a target cannot show the operator a file
  it could not read itself.
"""

from __future__ import annotations

import errno
import os
import stat
from functools import lru_cache

from . import _fs

MAX_FILE_BYTES = 4 * 1024 * 1024


def _credentials(pid: int) -> tuple[int, frozenset[int]] | None:
    """(effective uid, every gid) of the target, or None."""
    uid = gid = None
    groups: set[int] = set()
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                key, _, value = line.partition(":")
                fields = value.split()
                if key == "Uid" and len(fields) > 1:
                    uid = int(fields[1])
                elif key == "Gid" and len(fields) > 1:
                    gid = int(fields[1])
                elif key == "Groups":
                    groups.update(int(g) for g in fields)
    except (OSError, ValueError):
        return None
    if uid is None or gid is None:
        return None
    groups.add(gid)
    return uid, frozenset(groups)


def target_may_read(st: os.stat_result, uid: int, gids: frozenset[int]) -> bool:
    """The classic permission check for reading, as the target's user."""
    if uid == 0:
        return True
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IRUSR)
    if st.st_gid in gids:
        return bool(st.st_mode & stat.S_IRGRP)
    return bool(st.st_mode & stat.S_IROTH)


def read_target_file(pid: int, filename: str, limit: int = MAX_FILE_BYTES) -> bytes | None:
    """The bytes of the target's file `filename`, or None if it may not be read."""
    creds = _credentials(pid)
    if creds is None or "\0" in filename:
        return None
    base = "/proc/%d/root" % pid if os.path.isabs(filename) else "/proc/%d/cwd" % pid
    try:
        root = os.open(base, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if os.path.isabs(filename):
            handle = _fs.open_in_root(root, filename, os.O_PATH)
        else:
            handle = _open_relative(root, filename)
    except OSError:
        return None
    finally:
        os.close(root)
    try:
        st = os.fstat(handle)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit \
                or not target_may_read(st, *creds):
            return None
        fd = os.open(_fs.fd_path(handle), os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY
                     | os.O_CLOEXEC)
        try:
            return _fs.read_bounded(fd, limit)
        finally:
            os.close(fd)
    except OSError:
        return None
    finally:
        os.close(handle)


def _open_relative(cwd_fd: int, filename: str) -> int:
    """Open a cwd-relative name beneath the cwd: a `..` or a symlink that
    leaves it is refused (the kernel checks, with openat2 RESOLVE_BENEATH)."""
    try:
        return _fs.openat2(cwd_fd, filename, os.O_PATH,
                           _fs.RESOLVE_BENEATH | _fs.RESOLVE_NO_MAGICLINKS)
    except OSError as e:
        if e.errno != errno.ENOSYS:
            raise
    return _fs.open_beneath(cwd_fd, filename, os.O_PATH)


@lru_cache(maxsize=256)
def _lines(pid: int, filename: str) -> tuple[str, ...]:
    data = read_target_file(pid, filename)
    if data is None:
        return ()
    return tuple(data.decode("utf-8", "replace").splitlines())


def source_line(pid: int, filename: str, line: int) -> str | None:
    if line <= 0 or filename.startswith("<"):
        return None  # <string>, <frozen importlib._bootstrap>, <inspector-agent:...>
    lines = _lines(pid, filename)
    if len(lines) >= line:
        return lines[line - 1].strip()
    return None
