"""A resident agent: stays after its first session and serves later clients.

``inspector attach PID --keep`` asks for it, so that a probe every few seconds
does not stop the target each time. The client prepared a private directory
(0700, owned by the target's user) holding a key file (0600); the agent
listens on a socket in that directory. A later client must be root or the
target's user (SO_PEERCRED) and prove it can read the key file by sending
the key in its hello; it checks in turn that the listener's pid is the
target's. Each client is served on its own short-lived thread (at most
MAX_SESSIONS at once). The agent leaves — socket and key file removed,
threads gone — on a "shutdown" request, or when no session is open and
nothing arrived for ``idle_timeout`` seconds.
"""
from __future__ import annotations

import _socket
import _thread
import time

from . import policy, wire

MAX_SESSIONS = 4
HELLO_TIMEOUT = 5.0  # seconds for a connecting client to send its hello
POLL = 0.5  # seconds between checks of the stop flag and the idle clock
_SO_PEERCRED = getattr(_socket, "SO_PEERCRED", 17)


def same_secret(a, b):
    """Constant-time comparison of two str secrets (no `hmac` import)."""
    if type(a) is not str or type(b) is not str:
        return False
    x, y = a.encode("utf-8"), b.encode("utf-8")
    if len(x) != len(y):
        return False
    acc = 0
    for p, q in zip(x, y):
        acc |= p ^ q
    return acc == 0


def peer_uid(sock):
    raw = sock.getsockopt(_socket.SOL_SOCKET, _SO_PEERCRED, 12)
    return int.from_bytes(raw[4:8], policy.BYTEORDER)


def open_listener(spec):
    """Bind the resident socket; (socket, None) or (None, why not)."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.bind(spec["path"])
        sock.listen(MAX_SESSIONS)
        return sock, None
    except OSError as e:
        sock.close()
        return None, "cannot listen on %s: %s" % (spec["path"], e.strerror or "error")


class ResidentServer:
    def __init__(self, listener, spec, params, make_agent):
        self.listener = listener
        self.spec = spec
        self.params = params
        self.make_agent = make_agent
        self.idle_timeout = float(params.get("idle_timeout") or 600.0)
        self.last_activity = time.monotonic()
        self.stop = False
        self.active = {}  # ident -> connection, for shutdown
        self.lock = _thread.allocate_lock()
        self.sessions_served = 0

    def touch(self):
        self.last_activity = time.monotonic()

    def serve_forever(self):
        import posix

        try:
            while not self.stop:
                idle = time.monotonic() - self.last_activity
                if not self.active and idle >= self.idle_timeout:
                    break
                self.listener.settimeout(POLL)
                try:
                    # _socket.socket has only _accept() -> (fd, address); the
                    # `socket` module's accept() wraps it (and we avoid `socket`).
                    fd, _ = self.listener._accept()
                except OSError:
                    continue
                self._start_session(_socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd))
        finally:
            for path in (self.spec["path"], self.spec["key_path"]):
                try:
                    posix.unlink(path)
                except BaseException:
                    pass
            try:
                self.listener.close()
            except BaseException:
                pass
            self._end_sessions()

    def _start_session(self, conn):
        with self.lock:
            full = len(self.active) >= MAX_SESSIONS
        if full:
            conn.close()
            return
        try:
            _thread.start_new_thread(self._session, (conn,))
        except BaseException:
            conn.close()

    def _session(self, conn):
        ident = _thread.get_ident()
        with self.lock:
            self.active[ident] = conn
        try:
            agent = self.make_agent(conn, self.params, self)
            if self._authenticate(conn, agent):
                self.sessions_served += 1
                self.touch()
                agent.serve()
        except BaseException:
            pass
        finally:
            with self.lock:
                self.active.pop(ident, None)
            try:
                conn.close()
            except BaseException:
                pass
            self.touch()

    def _authenticate(self, conn, agent):
        import posix

        if peer_uid(conn) not in (0, posix.geteuid()):
            return False
        conn.settimeout(HELLO_TIMEOUT)
        length = wire.frame_length(wire.recv_exact(conn, wire.HEADER_SIZE), 64 * 1024)
        hello = wire.decode_body(wire.recv_exact(conn, length))
        if hello.get("kind") != "hello" or hello.get("proto") != wire.PROTOCOL_VERSION:
            return False
        if not same_secret(hello.get("key"), self.spec["key"]):
            return False
        agent.send(agent.hello_message(None, resident=self.spec["path"]))
        return True

    def _end_sessions(self):
        """Close every open session and wait (briefly) for its thread to go."""
        with self.lock:
            conns = list(self.active.values())
        for conn in conns:
            try:
                conn.shutdown(_socket.SHUT_RDWR)
            except BaseException:
                pass
        deadline = time.monotonic() + 5.0
        while self.active and time.monotonic() < deadline:
            time.sleep(0.01)
