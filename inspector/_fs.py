"""Filesystem steps that a hostile target or local user cannot redirect.

The operator is often root and the paths it touches are often under a
directory someone else can write (the target's /tmp, the target's root in
another mount namespace). Every step here is relative to a directory file
descriptor we opened and checked: ``*at()`` calls, ``O_NOFOLLOW``,
``O_DIRECTORY``; paths inside a target's root are resolved by the kernel with
``openat2(RESOLVE_IN_ROOT)`` so a symlink never leads out of it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import struct
import sys

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
_SYS_OPENAT2 = 437  # the same number on every architecture since Linux 5.6
_OPEN_HOW = struct.Struct("QQQ")  # flags, mode, resolve

_libc: ctypes.CDLL | None = None


class UnsafePath(OSError):
    """A path we refuse to follow (symlink, wrong type, owner or mode)."""


def _syscall() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2); OSError (ENOSYS on kernels before 5.6) on failure."""
    how = ctypes.create_string_buffer(_OPEN_HOW.pack(flags | os.O_CLOEXEC, mode, resolve))
    fd = _syscall().syscall(_SYS_OPENAT2, ctypes.c_int(dirfd), os.fsencode(path), how,
                            ctypes.c_size_t(_OPEN_HOW.size))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return int(fd)


def open_beneath(dirfd: int, path: str, flags: int) -> int:
    """Open `path` below `dirfd`, refusing every symlink on the way.

    openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) where the kernel has it,
    else a walk with O_NOFOLLOW on each component.
    """
    try:
        return openat2(dirfd, path, flags, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS
                       | RESOLVE_NO_MAGICLINKS)
    except OSError as e:
        if e.errno != errno.ENOSYS:
            raise
    parts = [p for p in path.split("/") if p and p != "."]
    if not parts or ".." in parts:
        raise UnsafePath(errno.EXDEV, "path leaves its directory", path)
    current = os.dup(dirfd)
    try:
        for part in parts[:-1]:
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                          dir_fd=current)
            os.close(current)
            current = nxt
        return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=current)
    finally:
        os.close(current)


def open_in_root(root_fd: int, path: str, flags: int) -> int:
    """Open `path` as a process whose root is `root_fd` would: absolute
    paths and `..` stay inside that root, symlinks resolve against it.
    Without openat2, only symlink-free paths are accepted."""
    try:
        return openat2(root_fd, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
    except OSError as e:
        if e.errno != errno.ENOSYS:
            raise
    return open_beneath(root_fd, path.lstrip("/"), flags)


def open_dir(path: str) -> int:
    """A directory fd for a path we trust up to its last component."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)


def check_private_dir(fd: int, uid: int, where: str) -> None:
    """Refuse a directory not owned by `uid` or open to others."""
    st = os.fstat(fd)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o077:
        raise UnsafePath(errno.EPERM, "not a directory owned by uid %d with mode 0700 "
                         "(owner uid %d, mode %o)" % (uid, st.st_uid, st.st_mode & 0o7777),
                         where)


def read_small_file(dirfd: int, name: str, limit: int, owners: tuple[int, ...]) -> bytes:
    """Read a regular file `name` in `dirfd`: no symlink, no FIFO or device
    (O_NONBLOCK, then fstat), owned by one of `owners`, not readable by
    others, at most `limit` bytes."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC,
                 dir_fd=dirfd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePath(errno.EINVAL, "not a regular file", name)
        if st.st_uid not in owners:
            raise UnsafePath(errno.EPERM, "owned by uid %d" % st.st_uid, name)
        if st.st_mode & 0o077:
            raise UnsafePath(errno.EPERM, "readable by others (mode %o)"
                             % (st.st_mode & 0o777), name)
        return read_bounded(fd, limit)
    finally:
        os.close(fd)


def read_bounded(fd: int, limit: int) -> bytes:
    """At most `limit` bytes; UnsafePath (EFBIG) if the file holds more.

    A regular file is read in one read(2) of its size (and one more to see
    its end): the boot cache is ~1 MB, and 64 KB pieces joined cost ~1.5 ms
    of a cold command; /proc files (size 0) and pipes go by 64 KB."""
    chunks: list[bytes] = []
    total = 0
    first = min(limit + 1, max(1 << 16, os.fstat(fd).st_size + 1))
    while True:
        chunk = os.read(fd, min(first if not chunks else 1 << 16, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise UnsafePath(errno.EFBIG, "larger than %d bytes" % limit)


_temp_dir: str | None = None


def temp_dir() -> str:
    """`tempfile.gettempdir()` without importing tempfile (and shutil and
    random under it: ~4 ms of every cold command). The same rule: the first
    of $TMPDIR, $TEMP, $TMP, /tmp, /var/tmp, /usr/tmp and the current
    directory where a new file can be created and written (the probe file is
    removed), found once per process. When tempfile is imported (an
    application may have set `tempfile.tempdir`), its own answer."""
    global _temp_dir
    tempfile = sys.modules.get("tempfile")
    if tempfile is not None:
        answer: str = tempfile.gettempdir()
        return answer
    if _temp_dir is None:
        _temp_dir = _find_temp_dir()
    return _temp_dir


def _find_temp_dir() -> str:
    candidates = [d for d in (os.getenv(n) for n in ("TMPDIR", "TEMP", "TMP")) if d]
    candidates += ["/tmp", "/var/tmp", "/usr/tmp"]
    try:
        candidates.append(os.getcwd())
    except OSError:
        candidates.append(os.curdir)
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    for candidate in candidates:
        path = candidate if candidate == os.curdir else os.path.abspath(candidate)
        for _ in range(100):  # a few names per directory
            probe = os.path.join(path, "tmp" + os.urandom(6).hex())
            try:
                fd = os.open(probe, flags, 0o600)
                try:
                    try:
                        os.write(fd, b"blat")
                    finally:
                        os.close(fd)
                finally:
                    os.unlink(probe)
                return path
            except FileExistsError:
                pass
            except OSError:
                break  # no point trying more names here
    raise FileNotFoundError(errno.ENOENT, "No usable temporary directory found in %s"
                            % candidates)


def replace_file(path: str, data: bytes, mode: int, *, durable: bool = False) -> None:
    """Replace `path` with `data` atomically: a temporary file in the same
    directory (mkstemp: O_EXCL, never following a planted link), `mode`,
    fsynced if `durable`, then renamed over `path`; a reader sees the old
    file or the new one, never half of one. OSError if it cannot."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp",
                               dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def unlink_in(dirfd: int, name: str) -> None:
    """Remove `name` from `dirfd` (never follows it); absent is fine."""
    try:
        os.unlink(name, dir_fd=dirfd)
    except FileNotFoundError:
        pass


def same_mount_namespace(pid: int) -> bool:
    """Does `pid` see the same mounts as we do? (Its root directory may be
    the same and its /tmp still private: systemd PrivateTmp, unshare -m.)"""
    try:
        ours = os.stat("/proc/self/ns/mnt")
        theirs = os.stat("/proc/%d/ns/mnt" % pid)
    except OSError:
        return True  # no /proc/PID/ns access: treat as ours; the agent refuses what it cannot reach
    return (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino)


def fd_path(fd: int, name: str = "") -> str:
    """A path that reaches `name` in the directory `fd` without resolving
    any other component again (for bind/connect, which take no dirfd)."""
    return "/proc/self/fd/%d/%s" % (fd, name) if name else "/proc/self/fd/%d" % fd
