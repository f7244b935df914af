"""The agent's code, compiled for a target that runs another Python version.

A target whose interpreter reads this interpreter's bytecode (the same magic
number) gets the client's code objects (`_bundle.compiled_payloads`). Any
other target would compile our sources itself, holding its GIL about 10 ms
per attach (heartbeat gaps of 15 ms measured in its other threads). Instead,
the client runs the target's own interpreter once, as a separate process, to
compile the same sources, and keeps the result in its cache directory.

Who is trusted with what:

- The compiler is the target's executable, run as the target's user and
  group (no supplementary groups), with an empty environment, ``-I -S`` (no
  site, no user paths), from ``/``; our sources on stdin, the code on stdout.
  It can do nothing the target's own user cannot do.
- What it prints goes only into processes of that same user running that
  same file: the cache key names the uid and the executable's device, inode,
  size and mtime. The client never unmarshals it (marshal is not safe
  against crafted input): it is framed as lengths and bytes and checked for
  form only. The target unmarshals it after checking that its own magic
  number is the one the compiler reported, as for the client's code.
- Only where the target sees our filesystem (same mount namespace and root
  directory), and only an executable named python3.X (an embedding program,
  such as uwsgi, is not a compiler) that is the file /proc/PID/exe points at
  (same device and inode), and only if nobody but root and the target's user
  can change that file, its libpython or any directory above them. Anything
  else, or any failure: the target compiles the sources, as before.
"""

from __future__ import annotations

import marshal
import os
import re
import struct
import sys
import time

from . import _bootcache, _bundle, _fs, _log
from ._diagnose import _status_fields
from ._inject.base import Target

log = _log.getLogger(__name__)

FORMAT = b"inspector-bytecode 1\n"
MAX_OUTPUT = 32 << 20
TIMEOUT = 5.0  # seconds, at most; never more than a third of what the attach has left
_EXE_NAME = re.compile(r"python3\.\d+[a-z]*$|python3$")

# Runs in the target's interpreter (3.8+): compile every source as the
# target would, and print MAGIC, then (name length, name, code length, code)
# per module. Stdlib builtins only.
COMPILER = r"""
import sys
def main():
    import marshal
    src = marshal.loads(sys.stdin.buffer.read())
    out = [sys.modules["_frozen_importlib_external"].MAGIC_NUMBER,
           bytes([sys.version_info[0], sys.version_info[1]])]
    for name in sorted(src):
        filename, flags, text = src[name]
        code = marshal.dumps(compile(text, filename, "exec", flags, True))
        raw = name.encode("ascii")
        out.append(len(raw).to_bytes(2, "little") + raw + len(code).to_bytes(4, "little"))
        out.append(code)
    sys.stdout.buffer.write(b"".join(out))
main()
"""


class CompilerError(Exception):
    """The target's interpreter could not compile our sources for it."""


def for_target(target: Target, deadline: float) -> _bundle.Bytecode | None:
    """The payloads' code for `target`'s interpreter, or None (the client's
    code if it reads that; else the target compiles the sources)."""
    if target.python_version == sys.version_info[:2]:
        return None  # the client's own code (same version; the target checks the magic)
    try:
        uid, gid = _ids(target.pid)
    except (OSError, ValueError, KeyError, IndexError):  # gone, or no Uid/Gid
        return None
    found = _compiler(target, uid)
    if found is None:
        return None
    exe, st = found
    try:
        key = b"%s%d %d %d %d %d %d\n%s" % (
            FORMAT, uid, gid, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
            _bundle.sources_stamp())
        return _cached(exe, uid, gid, key, target.python_version, deadline)
    except (OSError, CompilerError, ValueError) as e:
        log.debug("no bytecode for process %d from %s: %s", target.pid, exe, e)
        return None


def _compiler(target: Target, uid: int) -> tuple[str, os.stat_result] | None:
    """The target's executable and its stat, if it may compile for the
    target (see the module doc)."""
    pid = target.pid
    if not _fs.same_mount_namespace(pid):
        return None
    try:
        if os.readlink("/proc/%d/root" % pid) != "/":
            return None
        exe = os.readlink("/proc/%d/exe" % pid)
        real = os.stat("/proc/%d/exe" % pid)
        named = os.stat(exe)
    except OSError:
        return None
    if not _EXE_NAME.search(os.path.basename(exe)) or not os.path.isabs(exe):
        return None
    if (real.st_dev, real.st_ino) != (named.st_dev, named.st_ino):
        return None  # replaced or deleted since the target started
    if not all(_only_writable_by(path, uid) for path in {exe, target.python_binary}):
        return None
    return exe, named


def _only_writable_by(path: str, uid: int) -> bool:
    """Can nobody but root and `uid` change what runs from `path` (the file
    and every directory above it)? Else a third user could swap the
    interpreter or its libpython between our checks and the exec, and have
    it run as the target's user (root, often)."""
    while True:
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            return False
        if st.st_uid not in (0, uid) or st.st_mode & 0o022:
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


def _ids(pid: int) -> tuple[int, int]:
    """The target's effective uid and gid."""
    status = _status_fields("/proc/%d/status" % pid)
    return int(status["Uid"].split()[1]), int(status["Gid"].split()[1])


_FAILED: set[bytes] = set()  # keys whose compiler failed in this process: not retried


def _cached(exe: str, uid: int, gid: int, key: bytes, version: tuple[int, int],
            deadline: float) -> _bundle.Bytecode | None:
    if key in _FAILED:
        return None
    path = _cache_file(uid, key)
    try:
        raw = _bootcache.load_or_build(path, key, lambda: _compile(exe, uid, gid, version,
                                                                   deadline), store="always")
    except (OSError, CompilerError) as e:
        _FAILED.add(key)
        raise CompilerError(str(e)) from None
    magic, code = raw[:4], raw[4:]
    return _bundle.Bytecode(magic, code, exe)


def _cache_file(uid: int, key: bytes) -> str | None:
    where = _bootcache.private_dir()
    if where is None:
        return None
    dev_ino = key[len(FORMAT):].split(b"\n", 1)[0].split()[2:4]
    return os.path.join(where, "bytecode-%d-%s.bin" % (uid, b"-".join(dev_ino).decode()))


def _compile(exe: str, uid: int, gid: int, version: tuple[int, int], deadline: float) -> bytes:
    """Run the target's interpreter on our sources: MAGIC + marshal'ed code dict."""
    import subprocess  # only on a cache miss: not on every command's import path

    left = deadline - time.monotonic()
    timeout = min(TIMEOUT, left / 3)
    if timeout < 0.2:
        raise CompilerError("no time left to compile")
    sources = marshal.dumps(_bundle.payload_texts(), _bundle.MARSHAL_VERSION)
    switch = {} if (uid, gid) == (os.geteuid(), os.getegid()) else \
        {"user": uid, "group": gid, "extra_groups": []}
    try:
        done = subprocess.run([exe, "-I", "-S", "-c", COMPILER], input=sources,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={}, cwd="/",
                              timeout=timeout, check=False,
                              **switch)  # type: ignore[call-overload]
    except OSError as e:
        raise CompilerError("cannot run %s as uid %d: %s" % (exe, uid, e.strerror)) from None
    except subprocess.SubprocessError as e:  # the timeout
        raise CompilerError("%s: %s" % (exe, e)) from None
    if done.returncode != 0:
        raise CompilerError("%s exited with status %d" % (exe, done.returncode))
    out: bytes = done.stdout
    if len(out) > MAX_OUTPUT:
        raise CompilerError("%s printed %d bytes" % (exe, len(out)))
    magic, blobs = parse_output(out, version)
    code = {"prelude": blobs.pop("prelude"), "loader": blobs.pop("loader"), "modules": blobs}
    return magic + marshal.dumps(code, _bundle.MARSHAL_VERSION)


def parse_output(out: bytes, version: tuple[int, int]) -> tuple[bytes, dict[str, bytes]]:
    """(magic, {name: marshal'ed code}) from the compiler's output, checked
    for form: every source once, nothing else, lengths in bounds."""
    if len(out) < 6 or out[2:4] != b"\r\n":
        raise CompilerError("not a magic number")
    if tuple(out[4:6]) != version:
        raise CompilerError("the compiler is Python %d.%d, the target %d.%d"
                            % (out[4], out[5], *version))
    magic, pos = out[:4], 6
    blobs: dict[str, bytes] = {}
    wanted = set(_bundle.ALL_SOURCES)
    while pos < len(out):
        if pos + 2 > len(out):
            raise CompilerError("truncated output")
        (name_len,) = struct.unpack_from("<H", out, pos)
        name = out[pos + 2:pos + 2 + name_len].decode("ascii", "replace")
        pos += 2 + name_len
        if name not in wanted or name in blobs or pos + 4 > len(out):
            raise CompilerError("unexpected module %r" % name[:40])
        (size,) = struct.unpack_from("<I", out, pos)
        pos += 4
        if pos + size > len(out):
            raise CompilerError("truncated output")
        blobs[name] = out[pos:pos + size]
        pos += size
    if set(blobs) != wanted:
        raise CompilerError("missing modules: %s" % ", ".join(sorted(wanted - set(blobs))))
    return magic, blobs
