"""A file cache of the boot file's fixed part, beside our package's .pyc files.

Everything in the boot file but the parameters depends only on our payload
sources and this interpreter: the sources cut into chunks, and the code
objects compiled from them (`_bundle.compiled_payloads`). Building that takes
20 ms of every cold `inspector` command; reading it back takes well under
1 ms. The file lives where Python keeps our .pyc files (the `__pycache__` of
`payloads`, or under PYTHONPYCACHEPREFIX) and follows their rules: it is not
written when the interpreter may not write bytecode, and it is only trusted
as much as a .pyc is: a regular file owned by root or by us that nobody else
can write. Its header names the interpreter's magic number and every source
file's size and modification time; any difference and it is rebuilt.
"""

from __future__ import annotations

import importlib.util
import os
import stat
import sys
from collections.abc import Callable, Iterable

from . import _fs
from ._diagnose import _status_fields

FORMAT = b"inspector-boot-cache 1\n"
MAX_BYTES = 16 << 20


def cache_path(package_dir: str) -> str | None:
    """Where the cache of `package_dir`'s payloads goes (None: nowhere)."""
    tag = sys.implementation.cache_tag
    if tag is None:
        return None
    try:
        pyc = importlib.util.cache_from_source(os.path.join(package_dir, "__init__.py"))
    except (NotImplementedError, ValueError):
        return None
    return os.path.join(os.path.dirname(pyc), "inspector-boot.%s.marshal" % tag)


def stamp(paths: Iterable[str]) -> bytes:
    """What the cache depends on: the magic number, each file's size and mtime."""
    parts = [FORMAT, importlib.util.MAGIC_NUMBER.hex().encode()]
    for path in paths:
        st = os.stat(path)
        parts.append(b"%s %d %d" % (os.path.basename(path).encode(), st.st_size,
                                    st.st_mtime_ns))
    return b"\n".join(parts) + b"\n\n"


def private_dir() -> str | None:
    """The client's private cache directory, $XDG_CACHE_HOME/inspector
    (created 0700; refused unless ours alone), or None."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(base, "inspector")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        fd = _fs.open_dir(path)  # O_NOFOLLOW: a link there is refused
        try:
            _fs.check_private_dir(fd, os.geteuid(), path)
        finally:
            os.close(fd)
    except OSError:
        return None  # not ours alone: no cache
    return path


def load_or_build(path: str | None, key: bytes, build: Callable[[], bytes],
                  store: str = "as-bytecode") -> bytes:
    """The cached bytes for `key`, or build() (then stored: "as-bytecode",
    if the interpreter may write .pyc files; "always", in a private cache)."""
    if path is not None:
        cached = _read(path)
        if cached is not None and cached.startswith(key):
            return cached[len(key):]
    data = build()
    if path is not None and store == "always":
        _write(path, key + data, 0o600)
    elif path is not None and not sys.dont_write_bytecode:
        _write(path, key + data, 0o644)
    return data


def _read(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid not in (0, os.geteuid()) or \
                st.st_mode & 0o022:
            return None  # not as trustworthy as our .pyc files: ignored
        return _fs.read_bounded(fd, MAX_BYTES)
    except OSError:  # (read_bounded's refusal of a larger file is one)
        return None
    finally:
        os.close(fd)


def _write(path: str, data: bytes, mode: int) -> None:
    """Atomically, as importlib writes a .pyc; silently not at all if the
    place is not ours to write."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)  # as importlib does for a .pyc
        # (the umask narrows `mode`, as for a file os.open creates)
        umask = int(_status_fields("/proc/self/status").get("Umask", "0077"), 8)
        _fs.replace_file(path, data, mode & ~umask)
    except (OSError, ValueError):
        pass
