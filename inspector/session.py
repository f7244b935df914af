"""attach() and Session: the public API over one agent connection.

    with inspector.attach(pid) as s:
        for t in s.threads(): ...
        s.eval("len(cache._data)").to_python()

Every call has a timeout; every query is written to the audit log; every
failure is one of the typed errors in `inspector.errors`.
"""

from __future__ import annotations

import os
import sys
import time
from types import TracebackType

from payloads import wire

from . import _build, _log, _preflight, _resident, _source
from ._bundle import BootParams, render_boot_file, render_stage1, stage1_code
from ._channel import BOOT_NAME, Connection, Listener
from ._diagnose import agent_blocked, describe_busy_threads, process_alive
from ._inject import InjectionReport, Target, make_injector
from ._text import term_safe
from .audit import AuditLog
from .errors import AttachError, InspectorError, TargetLost, UsageError, from_reply
from .models import AgentInfo, FrameInfo, ModuleInfo, ThreadInfo, ThreadStack, Value

TYPE_CHECKING = False  # typing's constant without importing typing (mypy reads it as True)
if TYPE_CHECKING:
    from typing import Any

    from .diagnostics import Census, Greenlets, MemorySummary, TaskInfo

log = _log.getLogger(__name__)

DEFAULT_ATTACH_TIMEOUT = 10.0  # seconds until the agent must have said hello
DEFAULT_IDLE_TIMEOUT = 600.0  # the agent leaves after this long without a request
DEFAULT_CALL_TIMEOUT = 30.0  # per request; above the evaluator's own wall budget
DEFAULT_CENSUS_SECONDS = 10.0  # payloads/census.py MAX_SECONDS
MAX_CENSUS_SECONDS = 120.0  # payloads/census.py MAX_SECONDS_CAP
SHUTDOWN_WAIT = 2.0  # seconds `shutdown()` waits for the resident agent's files to go
DETACH_WAIT = 0.25  # seconds detach() waits for the agent to close its end (its thread is done)
RESIDENT_AGENT_FILE = "<inspector-agent:resident>"  # payloads/resident.py's code


def attach(
    pid: int,
    *,
    injector: str = "native",
    timeout: float = DEFAULT_ATTACH_TIMEOUT,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    redact: bool = True,
    keep: bool = False,
    reuse: bool = True,
    audit: AuditLog | None = None,
) -> Session:
    """Return a Session with the agent in process `pid`.

    If a resident agent already serves the process (and `reuse`), connect to
    it: no injection, no freeze. Otherwise inject one; with `keep=True` it stays
    resident after this session, until `idle_timeout` passes without a request
    or `Session.shutdown()`. Raises AttachError (cause and remedy) if it cannot.
    """
    if not isinstance(pid, int) or isinstance(pid, bool):
        raise UsageError("pid must be an integer, not %r" % (pid,))
    target = _preflight.check(pid)
    if reuse:
        spec = _resident.find(pid, target.uid)
        if spec is not None:
            try:
                conn = _resident.connect(spec, timeout=min(timeout, 5.0))
            except AttachError as e:
                log.info("not using the resident agent: %s", e.message)
            else:
                return Session(conn, target, None, redact=redact, audit=audit)
    return _inject(target, injector=injector, timeout=timeout, idle_timeout=idle_timeout,
                   redact=redact, keep=keep, audit=audit)


def connect_resident(pid: int, *, timeout: float = 5.0, redact: bool = True) -> Session:
    """A Session with the resident agent of `pid`; AttachError if there is none."""
    target = _preflight.check(pid)
    spec = _resident.find(pid, target.uid)
    if spec is None:
        if _resident.live_resident(pid):
            raise AttachError("process %d has a resident agent, but not one this client can "
                              "reach (another user started it); run as that user" % pid)
        raise AttachError("process %d has no resident agent; start one with "
                          "`inspector attach %d --keep`" % (pid, pid))
    return Session(_resident.connect(spec, timeout=timeout), target, None, redact=redact)


def _inject(target: Target, *, injector: str, timeout: float, idle_timeout: float,
            redact: bool, keep: bool, audit: AuditLog | None) -> Session:
    pid = target.pid
    deadline = time.monotonic() + timeout  # --timeout bounds the whole attach
    backend = make_injector(injector, deadline)
    resident = None
    claim = None
    if keep:
        # Atomic: one client claims residency; the others reach its agent,
        # or are told to retry, and never touch its files.
        got = _resident.claim(pid, target.uid)
        if isinstance(got, Connection):
            return Session(got, target, None, redact=redact, audit=audit)
        claim = got
        if _resident.live_resident(pid):
            claim.abort()
            raise AttachError("process %d already has a resident agent that this client cannot "
                              "reach (another user started it, or its files are gone); stop it "
                              "with `inspector detach %d` as that user, or wait for its idle "
                              "timeout" % (pid, pid))
        resident = claim.boot_spec()
    try:
        session = _start_agent(target, backend, timeout=timeout, deadline=deadline,
                               idle_timeout=idle_timeout, redact=redact, keep=keep, audit=audit,
                               resident=resident)
    except BaseException:
        if claim is not None:
            claim.abort()
        raise
    if claim is not None:
        claim.release()
    return session


def _start_agent(target: Target, backend: Any, *, timeout: float, deadline: float,
                 idle_timeout: float,
                 redact: bool, keep: bool, audit: AuditLog | None,
                 resident: dict[str, str] | None) -> Session:
    pid = target.pid
    listener = Listener(pid, target.uid)
    try:
        params = BootParams(
            token=listener.token,
            socket_path=listener.socket_path,
            boot_path=listener.boot_path,
            deadline=deadline,
            package="_inspector_agent_" + os.urandom(6).hex(),
            idle_timeout=idle_timeout,
            client_uid=os.geteuid(),
            resident=resident,
        )
        if target.python_version == sys.version_info[:2]:
            bytecode = None  # for_target's first answer (our own code), without its import
        else:
            from . import _bytecode
            bytecode = _bytecode.for_target(target, deadline)
        same = bytecode is None and _build.same_build(target.pid, target.python_binary)
        listener.write_file(BOOT_NAME, render_boot_file(params, bytecode, with_sources=not same))
        own_thread = getattr(backend, "own_thread", False)
        stage1 = render_stage1(params, own_thread=own_thread)
        report = backend.inject(target, stage1, listener, deadline,
                                stage1_code=stage1_code(params) if own_thread and same else None)
        log.debug("injected: %s", report)
        try:
            conn = listener.accept(deadline)
        except TimeoutError:
            unread = listener.boot_path if listener.unread(BOOT_NAME) else None
            raise AttachError(_no_agent_message(target, report, timeout, unread)) from None
    finally:
        listener.close()
    session = Session(conn, target, report, redact=redact, audit=audit)
    # Whose interpreter compiled the code objects the agent ran, if it ran them
    session.agent.extra["compiler"] = bytecode.compiler if bytecode is not None else "client"
    try:
        session._welcome()
    except BaseException:
        conn.close()
        raise
    if keep and session.resident is None:
        reason = conn.hello.get("resident_error") or "unknown reason"
        session.detach()
        raise AttachError("the agent could not stay resident in process %d: %s"
                          % (pid, reason))
    return session


def _no_agent_message(target: Target, report: InjectionReport, timeout: float,
                      unread_boot: str | None = None) -> str:
    pid = target.pid
    if not process_alive(pid):
        return "process %d exited before the agent started" % pid
    blocked = agent_blocked(pid)  # stopped, out of file descriptors or address space
    if blocked:
        return blocked
    unread = ("; its boot file %s was still unread (so the agent never started: if the "
              "target cannot reach that path - another mount namespace, no permission on the "
              "directory - or replaced builtins.exec, that is the cause; the file is removed)"
              % unread_boot
              if unread_boot else "")
    busy = describe_busy_threads(pid)
    if report.path == "pending":
        why = ("the main thread did not reach a safe point (a bytecode boundary) within "
               "%g s" % timeout)
    else:
        why = "the agent thread could not take the GIL within %g s" % timeout
    hint = (" %s: it may be holding the GIL in a long C call." % busy) if busy else ""
    return ("%s%s.%s Retry later or with a longer --timeout; the queued loader does nothing "
            "if it runs late" % (why, unread, hint))


class Session:
    """A live connection to the agent in one target process."""

    def __init__(self, conn: Connection, target: Target, injection: InjectionReport | None, *,
                 redact: bool = True, audit: AuditLog | None = None,
                 call_timeout: float = DEFAULT_CALL_TIMEOUT) -> None:
        self._conn = conn
        self.target = target
        self.injection = injection
        self.redact = redact
        self.call_timeout = call_timeout
        self.audit = audit if audit is not None else AuditLog(target.pid, target.cmdline)
        hello = conn.hello
        self.agent = AgentInfo(
            pid=int(hello.get("pid", target.pid)),
            python=tuple(hello.get("python", ())),
            agent_thread=int(hello.get("agent_thread", 0)),
            agent_native_id=hello.get("agent_native_id"),
            extra={"bytecode": hello.get("bytecode"), "stage1": hello.get("stage1")},
        )
        self.resident: str | None = hello.get("resident")  # its socket path, if resident
        self.agent_idle_timeout = float(hello.get("idle_timeout") or 0.0)
        self.closed = False

    @property
    def pid(self) -> int:
        return self.target.pid

    def _welcome(self) -> None:
        hello = self._conn.hello
        if hello.get("refused"):
            raise AttachError("the agent refused to run in process %d: %s"
                              % (self.pid, hello["refused"]))
        if hello.get("proto") != wire.PROTOCOL_VERSION:
            raise AttachError("the agent speaks protocol %r, this client %d; use matching "
                              "versions" % (hello.get("proto"), wire.PROTOCOL_VERSION))
        self._conn.send_message({"kind": "welcome"})

    # -- plumbing -----------------------------------------------------------

    def _call(self, op: str, audit_query: dict[str, Any] | None = None,
              timeout: float | None = None, **args: Any) -> Any:
        if self.closed:
            raise TargetLost("this session is detached; attach again")
        args = {k: v for k, v in args.items() if v is not None}
        try:
            reply = self._conn.call(op, timeout or self.call_timeout, **args)
        except TargetLost as e:
            self.closed = True
            if audit_query is not None:
                self.audit.record(op, audit_query, "lost", e.message)
            if not process_alive(self.pid):
                raise TargetLost("target process %d exited; the session is over"
                                 % self.pid) from None
            # A stopping resident agent removes its socket first, then ends its sessions.
            if self.resident is not None and _resident.find(self.pid, self.target.uid) is None:
                raise TargetLost("the resident agent of process %d was stopped (`inspector "
                                 "detach`, or its idle timeout) during this request; the "
                                 "process is alive: attach again" % self.pid) from None
            raise
        if reply.get("ok"):
            if audit_query is not None:
                self.audit.record(op, audit_query, "ok")
            return reply.get("value")
        error = reply.get("error") or {}
        kind, message = str(error.get("kind", "internal")), str(error.get("message", ""))
        if audit_query is not None:
            self.audit.record(op, audit_query, kind, message)
        raise from_reply(kind, message)

    def _redact(self, redact: bool | None) -> bool:
        return self.redact if redact is None else redact

    # -- the questions --------------------------------------------------------

    def ping(self) -> dict[str, Any]:
        return dict(self._call("ping"))

    def threads(self) -> list[ThreadInfo]:
        return [_thread_info(t, self.pid) for t in self._call("threads", {})]

    def stack(self, thread: int | str | None = None, *, locals: bool = False,
              redact: bool | None = None) -> list[ThreadStack]:
        """Every thread's stack (without the agent's), or one thread's."""
        query = {"thread": thread, "locals": locals, "redact": self._redact(redact)}
        raw = self._call("stack", query, thread=thread, locals=locals or None,
                         redact=self._redact(redact))
        return [_thread_stack(t, self.pid) for t in raw]

    def locals(self, thread: int | str, frame: int = 0, *, redact: bool | None = None,
               frame_id: int | None = None) -> Value:
        """A frame's locals; `frame_id` (FrameInfo.frame_id) names one call
        exactly, and fails with EvalError once that call has returned."""
        query = {"thread": thread, "frame": frame, "frame_id": frame_id,
                 "redact": self._redact(redact)}
        return Value(self._call("locals", query, thread=thread, frame=frame, frame_id=frame_id,
                                redact=self._redact(redact)))

    def globals(self, module: str = "__main__", *, redact: bool | None = None) -> Value:
        query = {"module": module, "redact": self._redact(redact)}
        return Value(self._call("globals", query, module=module, redact=self._redact(redact)))

    def modules(self) -> list[ModuleInfo]:
        return [ModuleInfo(term_safe(m["name"]),
                           term_safe(m["file"]) if m.get("file") is not None else None,
                           term_safe(m["version"]) if m.get("version") is not None else None)
                for m in self._call("modules", {})]

    def eval(self, expr: str, thread: int | str | None = None, frame: int | None = None, *,
             allow_properties: bool = False, redact: bool | None = None,
             module: str | None = None, limits: dict[str, Any] | None = None,
             isolated: bool = False, allow_calls: bool = False,
             max_isolated_rss: int | None = None, frame_id: int | None = None) -> Value:
        """Evaluate one sandboxed query; raises Denied/BudgetExceeded/EvalError.

        isolated: run it in a disposable fork of the target (the second wall);
        allow_calls (needs isolated): explore mode, where the query may call
        methods, properties, repr(), len() and iterate - in the fork only.
        """
        if not isinstance(expr, str):
            raise UsageError("expr must be a string")
        if frame is not None and thread is None:
            raise UsageError("--frame needs --thread")
        query = {"expr": expr, "thread": thread, "frame": frame, "frame_id": frame_id,
                 "module": module, "allow_properties": allow_properties,
                 "redact": self._redact(redact), "isolated": isolated,
                 "allow_calls": allow_calls}
        return Value(self._call("eval", query, expr=expr, thread=thread, frame=frame,
                                frame_id=frame_id,
                                module=module, allow_properties=allow_properties or None,
                                redact=self._redact(redact), limits=limits,
                                isolated=isolated or None, allow_calls=allow_calls or None,
                                max_isolated_rss=max_isolated_rss))

    def inspect(self, path: list[list[Any]] | None = None, *, expr: str | None = None,
                thread: int | str | None = None, frame: int | None = None,
                module: str | None = None, offset: int = 0,
                redact: bool | None = None, frame_id: int | None = None) -> Value:
        """Snapshot of the value at `path` under a scope (lazy expansion, paging)."""
        query = {"expr": expr, "thread": thread, "frame": frame, "frame_id": frame_id,
                 "module": module, "path": path or [], "offset": offset,
                 "redact": self._redact(redact)}
        return Value(self._call("inspect", query, expr=expr, thread=thread, frame=frame,
                                frame_id=frame_id,
                                module=module, path=path or [], offset=offset,
                                redact=self._redact(redact)))

    # -- object census, asyncio tasks, memory ---------------------------------

    def census(self, top: int = 20, *, sort: str = "count",
               max_seconds: float | None = None) -> Census:
        """Objects the target's garbage collector tracks, by type.

        `top` types by `sort` ("count" or "size"); 0 returns every type (up to
        5000), which `inspector.census.census_diff` needs to tell "absent"
        from "not in the top". The walk yields the GIL regularly and stops
        after `max_seconds` (default 10 s) with `complete=False`.
        """
        if not isinstance(top, int) or isinstance(top, bool) or top < 0:
            raise UsageError("top must be a non-negative integer (0 = every type)")
        if sort not in ("count", "size"):
            raise UsageError("sort must be 'count' or 'size', not %r" % (sort,))
        if max_seconds is not None and not 0 < max_seconds <= MAX_CENSUS_SECONDS:
            raise UsageError("max_seconds must be in (0, %g]" % MAX_CENSUS_SECONDS)
        budget = max_seconds or DEFAULT_CENSUS_SECONDS
        raw = self._call("census", {"top": top, "sort": sort, "max_seconds": max_seconds},
                         timeout=budget + self.call_timeout, top=top, sort=sort,
                         limits={"max_seconds": max_seconds} if max_seconds else None)
        from .diagnostics import parse_census

        return parse_census(raw, time.time())

    def tasks(self) -> list[TaskInfo]:
        """Every asyncio task in the target (empty if it never imported asyncio)."""
        from .diagnostics import parse_tasks

        return parse_tasks(self._call("tasks", {}))

    def greenlets(self, *, max_seconds: float | None = None) -> Greenlets:
        """Every greenlet (state, function, stack) and gevent's hubs, read
        without running target code; `greenlet=False` if the target never
        imported greenlet. The heap walk stops after `max_seconds` (default
        10 s) with `complete=False`."""
        if max_seconds is not None and not 0 < max_seconds <= MAX_CENSUS_SECONDS:
            raise UsageError("max_seconds must be in (0, %g]" % MAX_CENSUS_SECONDS)
        budget = max_seconds or DEFAULT_CENSUS_SECONDS
        limits = {"max_seconds": max_seconds} if max_seconds else None
        raw = self._call("greenlets", {"limits": limits}, timeout=budget + self.call_timeout,
                         limits=limits)
        from .diagnostics import parse_greenlets

        return parse_greenlets(raw, lambda f: _frame_info(f, self.pid))

    def memory(self, *, tracemalloc_top: int = 10, process: bool = True) -> MemorySummary:
        """gc state, tracemalloc's top sites (only if the target is already tracing),
        and, with `process`, RSS/CPU/threads/fds sampled from outside."""
        if not isinstance(tracemalloc_top, int) or not 0 <= tracemalloc_top <= 1000:
            raise UsageError("tracemalloc_top must be an integer in [0, 1000]")
        raw = self._call("memory", {"tracemalloc_top": tracemalloc_top},
                         tracemalloc_top=tracemalloc_top)
        from .diagnostics import parse_memory_summary, process_stats

        return parse_memory_summary(raw, process_stats(self.pid) if process else None)

    def shutdown(self) -> None:
        """Stop a resident agent (every session of it ends, its files go)."""
        if self.resident is None:
            raise UsageError("this session's agent is not resident; use detach()")
        try:
            self._conn.call("shutdown", 5.0)
        finally:
            self.closed = True
            self._conn.close()
        # The agent removes its socket and key within its poll interval
        # (0.5 s): return when it has, so "stopped" is true when we say it.
        deadline = time.monotonic() + SHUTDOWN_WAIT
        while _resident.find(self.pid, self.target.uid) is not None and \
                time.monotonic() < deadline:
            time.sleep(0.02)

    def detach(self) -> None:
        """End this session. A one-shot agent leaves (thread ends, socket
        closes); a resident agent stays for later sessions."""
        if self.closed:
            return
        try:
            self._conn.call("detach", 5.0)
            # The agent closes its end when its thread is done (a one-shot
            # agent after unloading itself): returning after that leaves the
            # target as it was, whatever the caller does next.
            self._conn.wait_closed(DETACH_WAIT)
        except InspectorError:
            pass
        finally:
            self.closed = True
            self._conn.close()

    def close(self) -> None:
        """Same as detach(): end this session (a resident agent stays)."""
        self.detach()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.detach()


def _frame_info(raw: dict[str, Any], pid: int) -> FrameInfo:
    locals_node = raw.get("locals")
    # Names and source lines are display text from the target: control and
    # format characters escaped (term_safe), here once for CLI, TUI and API.
    source = _source.source_line(pid, str(raw["file"]), int(raw.get("line") or 0))
    return FrameInfo(
        index=int(raw["index"]),
        function=term_safe(raw["function"]),
        qualname=term_safe(raw.get("qualname") or raw["function"]),
        file=term_safe(raw["file"]),
        line=int(raw.get("line") or 0),
        first_line=int(raw.get("first_line") or 0),
        source=term_safe(source) if source is not None else None,
        locals=Value(locals_node) if locals_node is not None else None,
        frame_id=raw.get("frame_id") if isinstance(raw.get("frame_id"), int) else None,
    )


def _thread_info(raw: dict[str, Any], pid: int) -> ThreadInfo:
    top = raw.get("top")
    native_id = raw.get("native_id")
    name = raw.get("name")
    is_main = bool(raw.get("is_main"))
    if is_main and native_id is None:
        native_id = pid  # Linux: the main thread's id is the process id
    if raw.get("is_agent") and top and str(top.get("file", "")) == RESIDENT_AGENT_FILE:
        name = "inspector-agent (resident)"  # its listener, beside the session's thread
    return ThreadInfo(
        ident=int(raw["ident"]),
        native_id=native_id,
        name=term_safe(name) if name is not None else None,
        daemon=raw.get("daemon"),
        is_main=is_main or (native_id == pid),
        is_agent=bool(raw.get("is_agent")),
        python_thread=bool(raw.get("python_thread")),
        top=_frame_info(top, pid) if top else None,
    )


def _thread_stack(raw: dict[str, Any], pid: int) -> ThreadStack:
    return ThreadStack(
        thread=_thread_info(raw, pid),
        frames=tuple(_frame_info(f, pid) for f in raw.get("frames", [])),
        frames_cut=bool(raw.get("frames_cut")),
    )
