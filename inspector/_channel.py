"""The authenticated channel between the client and the injected agent.

The client makes a fresh private directory (0700) in the target's /tmp,
listens on a Unix socket in it and writes the one-time boot file (0600)
holding the token. When root attaches to another user's process, the
directory and its files are handed to the target's uid so the agent can use
them; nobody else can. The agent connects back and sends the token; we also
check SO_PEERCRED (pid and uid are the target's). After the first good
handshake the listening socket and the directory are removed, so the token
cannot be used again.
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import json
import logging
import os
import shutil
import socket
import struct
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from payloads import wire

from .errors import AttachError, ProtocolError, TargetLost

log = logging.getLogger(__name__)

SOCKET_NAME = "agent.sock"
BOOT_NAME = "boot"
HANDSHAKE_TIMEOUT = 5.0  # seconds for the hello frame once connected
_UCRED = struct.Struct("3i")


@dataclass(frozen=True)
class PeerCred:
    pid: int
    uid: int
    gid: int


def peer_credentials(sock: socket.socket) -> PeerCred:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return PeerCred(pid, uid, gid)


def _tmp_dirs(pid: int) -> tuple[str, str]:
    """(path as we see it, path as the target sees it) for a temp base dir.

    A target in another mount namespace (a container) has its own /tmp; we
    reach it through /proc/PID/root and tell the agent the inner path.
    """
    try:
        ours = os.stat("/")
        theirs = os.stat("/proc/%d/root" % pid)
        if (ours.st_dev, ours.st_ino) != (theirs.st_dev, theirs.st_ino):
            return "/proc/%d/root/tmp" % pid, "/tmp"
    except OSError:
        pass
    base = tempfile.gettempdir()
    return base, base


class Listener:
    """A private directory + listening socket + boot file for one injection."""

    def __init__(self, pid: int, target_uid: int) -> None:
        self.pid = pid
        self.target_uid = target_uid
        self.token = os.urandom(32).hex()  # what secrets.token_hex does, minus its imports
        host_base, target_base = _tmp_dirs(pid)
        try:
            self.host_dir = tempfile.mkdtemp(prefix="inspector-", dir=host_base)
        except OSError as e:
            raise AttachError("cannot create a private directory in %s: %s"
                              % (host_base, _remedy(e, host_base))) from None
        name = os.path.basename(self.host_dir)
        self.target_dir = os.path.join(target_base, name)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.bind(os.path.join(self.host_dir, SOCKET_NAME))
            self.sock.listen(4)
        except OSError as e:
            self.close()
            raise AttachError("cannot listen on a Unix socket in %s: %s" % (self.host_dir, e)) \
                from None

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
        path = os.path.join(self.host_dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except OSError as e:
            raise AttachError("cannot write %s (%d KB): %s"
                              % (path, len(data) // 1024 + 1,
                                 _remedy(e, os.path.dirname(self.host_dir)))) from None
        finally:
            os.close(fd)
        self._hand_over(path)

    def _hand_over(self, *paths: str) -> None:
        """Give the directory to the target's user when root attaches to it."""
        if os.geteuid() != 0 or self.target_uid == 0:
            return
        for path in (self.host_dir, os.path.join(self.host_dir, SOCKET_NAME), *paths):
            with contextlib.suppress(FileNotFoundError):
                os.lchown(path, self.target_uid, -1)

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
            except (OSError, wire.ProtocolError, _Rejected) as e:
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
        conn.settimeout(max(0.1, min(HANDSHAKE_TIMEOUT, deadline - time.monotonic())))
        hello = read_frame(conn, limit=64 * 1024)
        if hello.get("kind") != "hello":
            raise _Rejected("first frame is not a hello")
        token = hello.get("token")
        if not isinstance(token, str) or not hmac.compare_digest(token, self.token):
            raise _Rejected("bad token")
        return hello

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        shutil.rmtree(self.host_dir, ignore_errors=True)


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


def read_frame(sock: socket.socket, limit: int = wire.MAX_FRAME) -> dict[str, Any]:
    length = wire.frame_length(wire.recv_exact(sock, wire.HEADER_SIZE), limit)
    return decode_body(wire.recv_exact(sock, length))


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
        try:
            self.sock.settimeout(timeout)
            self.sock.sendall(wire.encode_frame(request, wire.MAX_REQUEST_FRAME))
            reply = read_frame(self.sock)
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

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
