"""The agent: one thread in the target serving one client, then gone.

Lifecycle: connect to the client's socket (path from the boot file), check
the server is root or our own user (SO_PEERCRED), send the hello with the
one-time token, then answer requests until the client says "detach", the
connection ends (including the client being SIGKILLed: EOF), a malformed
frame arrives, or nothing arrives for ``idle_timeout`` seconds. Then close
the socket and return; the loader drops our private modules.

The agent uses `_socket`, `_thread` and `posix` (C modules) and its own JSON
codec; it never prints and never lets an exception out (``run`` is called
inside the loader's catch-all, and every request is answered or the session
ends).
"""
from __future__ import annotations

import _socket
import _thread
import time

from . import frames, policy, wire
from .errors import AgentError, DeniedError, QueryError, safe_error_text
from .limits import Limits

# evaluator, census, tasks, greenlets, isolate and resident are imported
# where they are used: every module the agent loads is compiled in the target, so loading
# only what a session needs keeps attaching quick (`inspector stack` never
# compiles the evaluator).

MAX_AGENTS = 4  # concurrent sessions per target; more are refused, not piled up
CONNECT_TIMEOUT = 5.0  # seconds
SEND_TIMEOUT = 30.0  # a client that does not read for this long is gone
GIL_PAUSE = 0.00005  # seconds; a sleep, not sleep(0): see loader.GIL_PAUSE
_OWN_FILENAME = frames.AGENT_FILENAME_PREFIX + ":agent>"  # every agent's, not only ours
_SO_PEERCRED = getattr(_socket, "SO_PEERCRED", 17)
_MSG_PEEK = getattr(_socket, "MSG_PEEK", 2)


# snapshot.py (with limits.py) loads on the first request that renders
# values: `inspector stack` never needs it, and every module loaded at the
# agent's start is GIL held while the target's threads wait (~1 ms here).

def snapshot(value, **options):
    from .snapshot import snapshot as render

    return render(value, **options)


def snapshot_namespace(mapping, **options):
    from .snapshot import snapshot_namespace as render

    return render(mapping, **options)


def navigate(root, path, **options):
    from .snapshot import navigate as walk

    return walk(root, path, **options)


def run(params, refusal, guard=None):
    """Serve the client that injected us; then, if asked, stay resident.

    `guard` is the loader's gcguard.Guard (collections are held off since
    loading began): the session hands them back while it waits for the
    client, and before a resident agent starts waiting for clients.

    Returns the client's socket, still open, when this thread is about to
    end: the loader closes it after it unloaded our modules, so the client's
    end of file means the agent is done (`inspector` then exits without the
    interpreter's teardown and leaves a target back in its state)."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    server = None
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        connect_unix(sock, params["socket_path"])
        if not _server_trusted(sock, params):
            return
        resident_spec = params.get("resident")
        resident_note = None
        if refusal is None and resident_spec:
            from . import resident

            listener, resident_note = resident.open_listener(resident_spec)
            if listener is not None:
                server = resident.ResidentServer(listener, resident_spec, params, Agent)
        agent = Agent(sock, params, server)
        try:
            others = other_agents(agent.ident)
        except policy.SysReplaced:
            others = 0      # no thread list: each operation that needs one says why
        if refusal is None and others >= MAX_AGENTS:
            refusal = ("%d inspector sessions are already attached to this process; detach one "
                       "first" % others)
        resident_path = resident_spec["path"] if server is not None else None
        if agent.handshake(refusal, resident_path, resident_note):
            agent.serve(guard)
    except BaseException:
        pass
    if server is None:
        return sock
    try:
        sock.close()
    except BaseException:
        pass
    try:
        if guard is not None:
            guard.release()
        server.serve_forever()
    except BaseException:
        pass
    return None


def connect_unix(sock, path):
    """connect() to a Unix socket path of any length: a path longer than
    sun_path (108 bytes; a deep TMPDIR) is reached through its directory's
    fd, /proc/self/fd/N/NAME."""
    if len(path.encode("utf-8", "surrogateescape")) < 100:
        sock.connect(path)
        return
    import posix

    head, _, name = path.rpartition("/")
    fd = posix.open(head or "/", posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
    try:
        sock.connect("/proc/self/fd/%d/%s" % (fd, name))
    finally:
        posix.close(fd)


def other_agents(own_ident):
    """How many other inspector sessions this process is serving: threads
    inside an agent's request loop (found by their code). An agent that is
    still loading, saying hello or going away is no session: counting those
    too made six clients that attached at once refuse one another, at times
    all six."""
    return sum(1 for ident, frame in list(policy.sys_function("_current_frames")().items())
               if ident != own_ident and _serving(frame))


def _serving(frame):
    while frame is not None:
        code = frame.f_code
        if code.co_name == "_serve" and code.co_filename == _OWN_FILENAME:
            return True
        frame = frame.f_back
    return False


def _server_trusted(sock, params):
    """The listening side must be root, our own user, or the client we expect."""
    raw = sock.getsockopt(_socket.SOL_SOCKET, _SO_PEERCRED, 12)
    uid = int.from_bytes(raw[4:8], policy.BYTEORDER)
    import posix

    return uid in (0, posix.geteuid(), params.get("client_uid"))


class _Operations:
    """The request handlers (op_*) and what they share: a class of its own
    so that the target compiles the agent in two shorter pieces (each
    compile() holds its GIL; see docs/DESIGN.md, "The boot file")."""

    def _limits(self, request):
        """The request's budgets, clamped to the agent's maxima (limits.py)."""
        try:
            return Limits.from_request(request.get("limits"))
        except TypeError as e:  # unknown budget, wrong type: the client's mistake
            raise QueryError("ValueError", "limits: " + "; ".join(
                a for a in e.args if type(a) is str)) from None

    def _thread(self, request):
        selector = request.get("thread")
        if selector is None:
            return None
        return frames.find_thread(selector, self.ident)

    def _scope(self, request):
        """The namespace a query or inspection runs in."""
        from .evaluator import Scope

        thread = self._thread(request)
        module = request.get("module")
        if thread is not None:
            index = request.get("frame", 0)
            frame = frames.get_frame(thread, index, request.get("frame_id"),
                                     request.get("thread"))
            try:
                return Scope(frame.f_globals, frames.frame_locals(frame), self._helpers())
            finally:
                del frame
        return Scope(_module_dict(module if module is not None else "__main__"), None,
                     self._helpers())

    def _helpers(self):
        agent_ident = self.ident

        def threads():
            return frames.list_threads(agent_ident)

        def frames_of(thread):
            ident = frames.find_thread(thread, agent_ident)
            stack = frames.stacks(agent_ident, ident)
            return stack[0]["frames"] if stack else []

        def modules():
            return sorted(name for name in list(policy.sys_modules()) if type(name) is str)

        return {"threads": threads, "frames": frames_of, "modules": modules}

    # -- operations ---------------------------------------------------------

    def op_ping(self, request):
        return {"uptime": time.monotonic() - self.started, "requests": self.requests}

    def op_threads(self, request):
        return frames.list_threads(self.ident)

    def op_stack(self, request):
        limits = self._limits(request)
        redact = request.get("redact", True) is not False
        with_locals = None
        if request.get("locals"):
            def with_locals(mapping):
                return snapshot_namespace(mapping, limits=limits, redact=redact)
        return frames.stacks(self.ident, self._thread(request), with_locals)

    def op_locals(self, request):
        thread = self._thread(request)
        if thread is None:
            raise QueryError("ValueError", "locals needs a thread")
        frame = frames.get_frame(thread, request.get("frame", 0), request.get("frame_id"),
                                 request.get("thread"))
        try:
            mapping = frames.frame_locals(frame)
        finally:
            del frame
        return snapshot_namespace(mapping, limits=self._limits(request),
                                  redact=request.get("redact", True) is not False)

    def op_globals(self, request):
        mapping = _module_dict(request.get("module") or "__main__")
        return snapshot_namespace(dict(mapping), limits=self._limits(request),
                                  redact=request.get("redact", True) is not False)

    def op_modules(self, request):
        out = []
        for name, module in list(policy.sys_modules().items()):
            if type(name) is not str:
                continue
            entry = {"name": name, "file": None, "version": None}
            namespace = _namespace_of(module)
            if namespace is not None:
                for key, field in (("__file__", "file"), ("__version__", "version")):
                    value = namespace.get(key)
                    if type(value) is str:
                        entry[field] = value[:500]
            out.append(entry)
        out.sort(key=lambda e: e["name"])
        return out

    def op_eval(self, request):
        from .evaluator import EvalOptions, evaluate

        expr = request.get("expr")
        if type(expr) is not str:
            raise QueryError("ValueError", "expr must be a string")
        limits = self._limits(request)
        redact = request.get("redact", True) is not False
        options = EvalOptions(allow_properties=request.get("allow_properties") is True,
                              redact=redact, limits=limits)
        scope = self._scope(request)
        allow_calls = request.get("allow_calls") is True
        if request.get("isolated") is not True:
            if allow_calls:
                raise DeniedError(
                    "calls of target code (methods, properties, repr, len, iteration) are "
                    "refused in-process: they could change or crash the target; add "
                    "--isolated to run the query in a disposable fork")
            return snapshot(evaluate(expr, scope, options), limits=limits, redact=redact)

        from . import isolate

        def job():
            if allow_calls:
                value = isolate.explore_eval(expr, scope)
            else:
                value = evaluate(expr, scope, options)
            return snapshot(value, limits=limits, redact=redact)

        max_rss = request.get("max_isolated_rss")
        if max_rss is not None and (type(max_rss) is not int or max_rss <= 0):
            raise QueryError("ValueError", "max_isolated_rss must be a positive integer")
        return isolate.run(job, timeout=float(limits.max_seconds),
                           max_rss=max_rss or isolate.MAX_RSS_BYTES, allow_calls=allow_calls)

    def op_inspect(self, request):
        """Snapshot of a value addressed by scope (+ optional expr) + path."""
        from .evaluator import EvalOptions, evaluate

        limits = self._limits(request)
        redact = request.get("redact", True) is not False
        scope = self._scope(request)
        expr = request.get("expr")
        if expr is not None:
            if type(expr) is not str:
                raise QueryError("ValueError", "expr must be a string")
            root = evaluate(expr, scope, EvalOptions(redact=redact, limits=limits))
        else:
            root = dict(scope.locals) if scope.locals is not None else dict(scope.globals)
        path = request.get("path") or []
        if type(path) is not list:
            raise QueryError("ValueError", "path must be a list of steps")
        value = navigate(root, path, redact=redact, limits=limits)
        return snapshot(value, limits=limits, redact=redact, offset=request.get("offset", 0))

    # -- census, asyncio tasks, memory (payloads/census.py, payloads/tasks.py) --

    def op_census(self, request):
        """Objects by type: {"top": N (0 = all), "sort": "count"|"size", "limits": {...}}."""
        from . import census

        return census.census(request.get("top", 20), request.get("limits"),
                             request.get("sort", "count"))

    def op_tasks(self, request):
        """asyncio loops and tasks, read without calling into any loop."""
        from . import tasks

        return tasks.list_tasks(self.ident)

    def op_greenlets(self, request):
        """Greenlets with their state and stacks, and gevent's hubs (greenlets.py)."""
        from . import greenlets

        return greenlets.list_greenlets(self.ident, request.get("limits"))

    def op_memory(self, request):
        """gc state, and tracemalloc's top sites if the target is already tracing."""
        from . import census

        summary = census.memory_summary(request.get("tracemalloc_top", census.TRACEMALLOC_TOP))
        guard = self.guard
        if guard is not None and guard.off and type(summary.get("gc")) is dict:
            summary["gc"]["enabled"] = True    # the target's setting, not our hold
        return summary


class Agent(_Operations):
    def __init__(self, sock, params, server=None):
        self.sock = sock
        self.params = params
        self.server = server  # the ResidentServer when resident, else None
        self.ident = _thread.get_ident()
        self.idle_timeout = float(params.get("idle_timeout") or 600.0)
        self.started = time.monotonic()
        self.requests = 0
        self.guard = None  # the gcguard.Guard of the session being served

    # -- framing ------------------------------------------------------------

    def send(self, message):
        self.sock.settimeout(SEND_TIMEOUT)
        self.sock.sendall(wire.encode_frame(message))

    def receive(self):
        self.sock.settimeout(self.idle_timeout)
        length = wire.frame_length(wire.recv_exact(self.sock, wire.HEADER_SIZE),
                                   wire.MAX_REQUEST_FRAME)
        return wire.decode_body(wire.recv_exact(self.sock, length))

    # -- session ------------------------------------------------------------

    def hello_message(self, refusal, resident=None, resident_note=None):
        import posix

        hello = {
            "kind": "hello",
            "proto": wire.PROTOCOL_VERSION,
            "pid": posix.getpid(),
            "python": policy.python_version(),
            "implementation": "cpython",  # the only runtime the injectors attach to
            "agent_thread": self.ident,
            "agent_native_id": frames._agent_native_id(),
            "resident": resident,
            "idle_timeout": self.idle_timeout,
            "bytecode": self.params.get("bytecode"),  # "shipped" code objects, or "source"
            "stage1": self.params.get("stage1"),  # stage 1 ran as a "code" object or "text"
        }
        if resident_note:
            hello["resident_error"] = resident_note
        if refusal:
            hello["refused"] = refusal
        return hello

    def handshake(self, refusal, resident=None, resident_note=None):
        """Connect-back handshake: prove ourselves with the one-time token."""
        hello = self.hello_message(refusal, resident, resident_note)
        hello["token"] = self.params["token"]
        self.send(hello)
        if refusal:
            return False
        reply = self.receive()
        return reply.get("kind") == "welcome"

    def serve(self, guard=None):
        """Answer requests until the session ends. The target's automatic
        garbage collection is held off this thread while we work and handed
        back only while we wait for the client (gcguard.py). With the
        loader's guard, the loader hands it back as its very last step."""
        from . import gcguard

        own = guard is None
        if own:
            guard = gcguard.Guard()
        self.guard = guard
        guard.hold()
        try:
            self._serve(guard)
        finally:
            if own:
                guard.release()
                # a target thread, not our teardown, should run the
                # collection our hold deferred
                time.sleep(0.005)

    def _wait_for_request(self, guard):
        """Block until the client sends (or goes): collections are on meanwhile.

        Between release() and the blocking C call no tracked object is
        allocated, so a collection that is due starts on a target thread."""
        self.sock.settimeout(self.idle_timeout)
        guard.release()
        try:
            self.sock.recv(1, _MSG_PEEK)
        finally:
            guard.hold()

    def _serve(self, guard):
        while True:
            try:
                self._wait_for_request(guard)
                request = self.receive()
            except (EOFError, OSError, wire.ProtocolError):
                return  # client gone, idle timeout, or garbage: end the session
            self.requests += 1
            if self.server is not None:
                self.server.touch()
            rid = request.get("id")
            op = request.get("op")
            if op == "shutdown" and self.server is not None:
                self.server.stop = True
                op = "detach"
            if op == "detach":
                try:
                    self.send({"id": rid, "ok": True, "value": None})
                except BaseException:
                    pass
                return
            if op == "census" or op == "greenlets":
                # these walk the heap for up to minutes: collections stay on
                guard.release()
            try:
                reply = self.answer(rid, op, request)
            finally:
                guard.hold()
            # Between answering and encoding, a target thread that waits for
            # the GIL gets it (a stack answer and its encoding are ~0.7 and
            # ~0.4 ms of GIL each, in one piece otherwise).
            time.sleep(GIL_PAUSE)
            try:
                self.send(reply)
            except wire.ProtocolError as e:
                self.send({"id": rid, "ok": False,
                           "error": {"kind": "internal", "message": str(e)}})
            except BaseException:
                return

    def answer(self, rid, op, request):
        handler = getattr(self, "op_" + op, None) if type(op) is str and op.isidentifier() \
            else None
        if handler is None:
            return {"id": rid, "ok": False,
                    "error": {"kind": "protocol", "message": "unknown operation %r" % (op,)}}
        try:
            value = handler(request)
        except AgentError as e:
            return {"id": rid, "ok": False, "error": {"kind": e.kind, "message": e.message}}
        except RecursionError:
            return {"id": rid, "ok": False,
                    "error": {"kind": "budget", "message": "nesting too deep for the agent"}}
        except MemoryError:
            return {"id": rid, "ok": False,
                    "error": {"kind": "budget", "message": "out of memory in the target"}}
        except BaseException as e:
            return {"id": rid, "ok": False,
                    "error": {"kind": "internal", "message": safe_error_text(e)}}
        return {"id": rid, "ok": True, "value": value}

    # -- helpers ------------------------------------------------------------


def _namespace_of(module):
    """A module's namespace dict read through the C slot (no properties)."""
    module_type = policy.MODULE
    try:
        mro = type.__dict__["__mro__"].__get__(type(module))
    except Exception:
        return None
    # Identity only: `in`/issubclass could run a metaclass's __eq__.
    if not any(klass is module_type for klass in mro):
        return None
    try:
        namespace = policy.module_namespace(module)
    except Exception:
        return None
    return namespace if type(namespace) is dict else None


def _module_dict(name):
    if type(name) is not str:
        raise QueryError("ValueError", "module must be a string")
    module = policy.module_get(name)
    namespace = _namespace_of(module) if module is not None else None
    if namespace is None:
        raise QueryError("LookupError", "no module %r is loaded in the target" % name)
    return namespace
