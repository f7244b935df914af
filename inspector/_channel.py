"""The authenticated channel between the client and the injected agent.

The client makes a fresh private directory (0700) in a temp directory the
target can reach (see open_temp_base), listens on a Unix socket in it and
writes the one-time boot file (0600) holding the token. The agent deletes the
boot file when it reads it; the client removes the rest when the agent
connects or the attach fails, and directories of clients that were killed
are swept by the next client. When root attaches to another user's process, the
directory and its files are handed to the target's uid so the agent can use
them; nobody else can. The agent connects back and sends the token; we also
check SO_PEERCRED (pid and uid are the target's). After the first good
handshake the listening socket and the directory are removed, so the token
cannot be used again.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import socket
import struct
import time

# hmac.compare_digest is this C function; `import hmac` would load _hashlib
# (OpenSSL, ~5 ms) for nothing on every command (docs/DESIGN.md, "Round 5: the cold path").
from _operator import _compare_digest as compare_digest

from payloads import wire

from . import _fs, _log
from ._diagnose import process_start
from ._record import NamedTuple, mutable_record
from .errors import AttachError, ProtocolError, TargetLost

TYPE_CHECKING = False  # typing's constant without importing typing (mypy reads it as True)
if TYPE_CHECKING:
    from typing import Any

log = _log.getLogger(__name__)

SOCKET_NAME = "agent.sock"
BOOT_NAME = "boot"
HANDSHAKE_TIMEOUT = 5.0  # seconds for the hello frame once connected
_UCRED = struct.Struct("3i")


class PeerCred(NamedTuple):
    pid: int
    uid: int
    gid: int


def peer_credentials(sock: socket.socket) -> PeerCred:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return PeerCred(pid, uid, gid)


@mutable_record
class TempBase:
    """Where a client's private directories go: a directory fd we opened and
    checked, the path a human can read in messages, and the path of the same
    directory as the target sees it."""

    fd: int
    shown: str
    inner: str

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


def open_temp_base(pid: int) -> TempBase:
    """The temp directory the target can reach, opened so nobody can redirect us.

    Same mount namespace: our TMPDIR (the operator's choice). Another one
    (a container, systemd PrivateTmp, `unshare -m` with its own /tmp): the
    target's /tmp, reached through /proc/PID/root with openat2
    RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS, so a symlink planted by the target's
    side (its /tmp pointing at a host directory) is refused, never followed.
    """
    if _fs.same_mount_namespace(pid):
        base = _fs.temp_dir()
        try:
            return TempBase(os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), base, base)
        except OSError as e:
            raise AttachError("cannot open the temp directory %s: %s"
                              % (base, _remedy(e, base))) from None
    shown = "/tmp of process %d (its own mount namespace)" % pid
    try:
        root = os.open("/proc/%d/root" % pid, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise AttachError("cannot reach the root directory of process %d: %s"
                          % (pid, e.strerror)) from None
    try:
        fd = _fs.openat2(root, "/tmp", os.O_RDONLY | os.O_DIRECTORY,
                         _fs.RESOLVE_IN_ROOT | _fs.RESOLVE_NO_SYMLINKS
                         | _fs.RESOLVE_NO_MAGICLINKS)
    except OSError as e:
        why = ("it is a symlink (refused: it could lead out of the target's root)"
               if e.errno == errno.ELOOP else e.strerror)
        raise AttachError("cannot use the %s: %s; give the target a plain /tmp directory"
                          % (shown, why)) from None
    finally:
        os.close(root)
    return TempBase(fd, shown, "/tmp")


_DIR_PREFIX = "inspector-"
_DIR_RE = re.compile(r"^inspector-(\d+)\.(\d+)\.[0-9a-f]{8}$")
_OWN_FILES = (SOCKET_NAME, BOOT_NAME, "stage1.py")


def _private_dir_name() -> str:
    """inspector-<our pid>.<our start time>.<random>: a later run can tell a
    directory whose client is dead (SIGKILLed) and sweep it."""
    return "%s%d.%d.%s" % (_DIR_PREFIX, os.getpid(), process_start(os.getpid()) or 0,
                           os.urandom(4).hex())


def sweep_stale(base: TempBase) -> int:
    """Remove the private directories of clients that died (SIGKILL) in `base`.

    Only names we make (pid and start time of a client no longer alive),
    opened with O_NOFOLLOW | O_DIRECTORY, and in them only the names we
    create, unlinked relative to that fd: a planted symlink or a stranger's
    directory is never followed, and nothing else is removed."""
    removed = 0
    try:
        names = os.listdir(base.fd)
    except OSError:
        return 0
    for name in names:
        if not name.startswith(_DIR_PREFIX):
            continue  # (a shared /tmp may hold thousands of names)
        match = _DIR_RE.match(name)
        if not match or process_start(int(match.group(1))) == int(match.group(2)):
            continue
        try:
            dfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                          dir_fd=base.fd)
        except OSError:
            continue
        try:
            st = os.fstat(dfd)
            if st.st_uid not in (os.geteuid(), 0) and os.geteuid() != 0:
                continue
            for own in _OWN_FILES:
                with contextlib.suppress(OSError):
                    _fs.unlink_in(dfd, own)
            _rmdir_if_same(base.fd, name, st)
            removed += 1
        finally:
            os.close(dfd)
    return removed


def _rmdir_if_same(base_fd: int, name: str, st: os.stat_result) -> None:
    """rmdir `name` only if it is still the directory `st` describes."""
    with contextlib.suppress(OSError):
        now = os.stat(name, dir_fd=base_fd, follow_symlinks=False)
        if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
            os.rmdir(name, dir_fd=base_fd)


class Listener:
    """A private directory + listening socket + boot file for one injection.

    Every step is relative to file descriptors: the base directory (see
    open_temp_base), then our own directory (mkdirat, reopened O_NOFOLLOW and
    checked: ours, 0700), files in it created O_EXCL | O_NOFOLLOW and handed
    to the target's user with fchownat(AT_SYMLINK_NOFOLLOW). The socket is
    bound through /proc/self/fd/N, so no path component is resolved twice.
    """

    def __init__(self, pid: int, target_uid: int) -> None:
        self.pid = pid
        self.target_uid = target_uid
        self.token = os.urandom(32).hex()  # what secrets.token_hex does, minus its imports
        self.dir_fd = -1
        self._dir_stat: os.stat_result | None = None
        self._files: list[str] = []
        self.base = open_temp_base(pid)
        sweep_stale(self.base)
        self.name = _private_dir_name()
        self.host_dir = os.path.join(self.base.shown if self.base.shown == self.base.inner
                                     else "/proc/%d/root/tmp" % pid, self.name)
        self.target_dir = os.path.join(self.base.inner, self.name)
        try:
            os.mkdir(self.name, 0o700, dir_fd=self.base.fd)
            self.dir_fd = os.open(self.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                                  | os.O_CLOEXEC, dir_fd=self.base.fd)
            self._dir_stat = os.fstat(self.dir_fd)
            _fs.check_private_dir(self.dir_fd, os.geteuid(), self.target_dir)
        except OSError as e:
            self.close()
            raise AttachError("cannot create a private directory in %s: %s"
                              % (self.base.shown, _remedy(e, self.base.shown))) from None
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.bind(_fs.fd_path(self.dir_fd, SOCKET_NAME))
            self.sock.listen(4)
            self._files.append(SOCKET_NAME)
        except OSError as e:
            self.close()
            raise AttachError("cannot listen on a Unix socket in %s: %s"
                              % (self.target_dir, e.strerror)) from None

    @property
    def socket_path(self) -> str:
        return os.path.join(self.target_dir, SOCKET_NAME)

    @property
    def boot_path(self) -> str:
        return self.target_path(BOOT_NAME)

    def target_path(self, name: str) -> str:
        return os.path.join(self.target_dir, name)

    def write_file(self, name: str, data: bytes) -> None:
        """Create a 0600 file in the private directory (FileDrop protocol)."""
        if "/" in name or name in ("", ".", ".."):
            raise ValueError("a plain file name is needed, not %r" % name)
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=self.dir_fd)
        self._files.append(name)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except OSError as e:
            raise AttachError("cannot write %s (%d KB): %s"
                              % (self.target_path(name), len(data) // 1024 + 1,
                                 _remedy(e, self.base.shown))) from None
        finally:
            os.close(fd)
        self._hand_over(name)

    def _hand_over(self, *names: str) -> None:
        """Give the directory to the target's user when root attaches to it."""
        if os.geteuid() != 0 or self.target_uid == 0:
            return
        for name in (SOCKET_NAME, *names):
            with contextlib.suppress(FileNotFoundError):
                os.chown(name, self.target_uid, -1, dir_fd=self.dir_fd, follow_symlinks=False)
        os.fchown(self.dir_fd, self.target_uid, -1)

    def unread(self, name: str = BOOT_NAME) -> bool:
        """Is `name` still there (the agent deletes its boot file when it reads it)?"""
        if self.dir_fd < 0:
            return False
        try:
            os.stat(name, dir_fd=self.dir_fd, follow_symlinks=False)
        except OSError:
            return False
        return True

    def accept(self, deadline: float) -> Connection:
        """Wait for the agent until `deadline` (time.monotonic()); verify it."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.sock.settimeout(remaining)
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                raise TimeoutError from None
            try:
                hello = self._verify(conn, deadline)
            except (OSError, EOFError, wire.ProtocolError, _Rejected) as e:
                log.warning("rejected a connection on the agent socket: %s", e)
                conn.close()
                continue
            self.close()  # one-time: nobody can connect with this token again
            return Connection(conn, hello)

    def _verify(self, conn: socket.socket, deadline: float) -> dict[str, Any]:
        cred = peer_credentials(conn)
        if cred.pid != self.pid:
            raise _Rejected("peer pid %d is not the target %d" % (cred.pid, self.pid))
        if cred.uid != self.target_uid:
            raise _Rejected("peer uid %d is not the target's uid %d" % (cred.uid, self.target_uid))
        hello = read_frame(conn, min(deadline, time.monotonic() + HANDSHAKE_TIMEOUT),
                           limit=64 * 1024)
        if hello.get("kind") != "hello":
            raise _Rejected("first frame is not a hello")
        token = hello.get("token")
        if not isinstance(token, str) or not compare_digest(token, self.token):
            raise _Rejected("bad token")
        return hello

    def close(self) -> None:
        """Remove what we created (by name, relative to our directory's fd),
        then the directory itself if it is still ours. Idempotent."""
        with contextlib.suppress(OSError, AttributeError):
            self.sock.close()
        if self.base.fd < 0:
            return
        if self.dir_fd >= 0:
            for name in (*self._files, SOCKET_NAME, BOOT_NAME):
                with contextlib.suppress(OSError):
                    _fs.unlink_in(self.dir_fd, name)
            if self._dir_stat is not None:
                _rmdir_if_same(self.base.fd, self.name, self._dir_stat)
            with contextlib.suppress(OSError):
                os.close(self.dir_fd)
            self.dir_fd = -1
        self.base.close()


class _Rejected(Exception):
    pass


def _remedy(error: OSError, base: str) -> str:
    """The error, lower-case cause first, and what to do about it."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return ("no space left on the device of %s; free space there, or point TMPDIR at "
                "a directory with space (the target's user must be able to reach it)" % base)
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ("%s; make %s writable, or point TMPDIR at another directory"
                % (error.strerror, base))
    return "%s; check %s (or point TMPDIR at another directory)" % (error.strerror, base)


def _no_constants(name: str) -> Any:
    raise ValueError("%s is not allowed on the wire" % name)


def decode_body(body: bytes) -> dict[str, Any]:
    """wire.decode_body's contract with the C json decoder: replies can be MBs
    (a 10,000-item snapshot) and the pure-Python codec the agent must use is
    20x slower. Same rules: one object, no NaN/Infinity, bounded nesting
    (json's recursion guard), ProtocolError on anything else."""
    try:
        message = json.loads(body.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise wire.ProtocolError("malformed frame: %s" % e) from None
    if type(message) is not dict:
        raise wire.ProtocolError("a frame must hold a JSON object")
    return message


def read_frame(sock: socket.socket, deadline: float, limit: int = wire.MAX_FRAME
               ) -> dict[str, Any]:
    """One frame, whole by `deadline` (time.monotonic()) and at most `limit`
    bytes (32 MB by default): one deadline for the reply, not per read."""
    header = wire.recv_exact(sock, wire.HEADER_SIZE, deadline, time.monotonic)
    length = wire.frame_length(header, limit)
    return decode_body(wire.recv_exact(sock, length, deadline, time.monotonic))


class Connection:
    """One verified connection to an agent: framed request/response."""

    def __init__(self, sock: socket.socket, hello: dict[str, Any]) -> None:
        self.sock = sock
        self.hello = hello
        self._next_id = 0

    def call(self, op: str, timeout: float, **args: object) -> dict[str, Any]:
        """Send one request and return the matching reply (raises TargetLost)."""
        self._next_id += 1
        request = {"id": self._next_id, "op": op, **args}
        deadline = time.monotonic() + timeout  # for the whole exchange
        try:
            self.sock.settimeout(timeout)
            self.sock.sendall(wire.encode_frame(request, wire.MAX_REQUEST_FRAME))
            reply = read_frame(self.sock, deadline)
        except wire.ProtocolError as e:
            self.close()
            raise ProtocolError("the agent sent a malformed frame: %s" % e) from None
        except TimeoutError:
            self.close()
            raise TargetLost(
                "the agent did not answer within %.1f s; the session is closed" % timeout
            ) from None
        except (EOFError, OSError):
            self.close()
            raise TargetLost("the connection to the agent was lost") from None
        if reply.get("id") != self._next_id:
            self.close()
            raise ProtocolError("the agent answered request %r, expected %d"
                                % (reply.get("id"), self._next_id))
        return reply

    def send_message(self, message: dict[str, Any]) -> None:
        self.sock.sendall(wire.encode_frame(message))

    def send_only(self, op: str) -> None:
        with contextlib.suppress(OSError, wire.ProtocolError):
            self.sock.settimeout(1.0)
            self._next_id += 1
            self.sock.sendall(wire.encode_frame({"id": self._next_id, "op": op}))

    def wait_closed(self, timeout: float) -> bool:
        """Wait (at most `timeout` s) for the agent to close its end, which
        it does as its thread's last act after a detach (payloads/agent.run);
        True if it did. Whatever else arrives is dropped (at most 64 KB)."""
        deadline = time.monotonic() + timeout
        budget = 64 * 1024
        with contextlib.suppress(OSError):
            while budget > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.sock.settimeout(left)
                chunk = self.sock.recv(min(budget, 4096))
                if not chunk:
                    return True
                budget -= len(chunk)
        return False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
