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
THREAD_NAME = "inspector-resid"  # the serving thread's OS name: clients probe for it
STOP_GRACE = 10.0  # seconds an in-flight request may take to finish after a shutdown
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

        name_thread(THREAD_NAME)
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
        """End every open session. First only their reading side: a request
        in flight (another client's query while someone detaches) still gets
        its answer, and the session then ends at its next read. After
        STOP_GRACE, whatever is left is cut."""
        for how, grace in ((_socket.SHUT_RD, STOP_GRACE), (_socket.SHUT_RDWR, 1.0)):
            with self.lock:
                conns = list(self.active.values())
            for conn in conns:
                try:
                    conn.shutdown(how)
                except BaseException:
                    pass
            deadline = time.monotonic() + grace
            while self.active and time.monotonic() < deadline:
                time.sleep(0.01)


def name_thread(name):
    """Set this thread's OS name (/proc/self/task/TID/comm); best effort."""
    try:
        import posix

        get_native_id = getattr(_thread, "get_native_id", None)  # 3.8+
        if get_native_id is None:
            return
        fd = posix.open("/proc/self/task/%d/comm" % get_native_id(),
                        posix.O_WRONLY | posix.O_CLOEXEC)
        try:
            posix.write(fd, name[:15].encode("ascii"))
        finally:
            posix.close(fd)
    except BaseException:
        pass
