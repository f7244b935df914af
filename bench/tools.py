"""How each tool is invoked: ours (API and CLI) and the anchors.

Every tool answers `missing()` (None when it can run here, else the reason)
and `run(pid)` -> ToolRun. The anchors run exactly as an operator types them:

- ``py-spy dump --pid PID`` (py-spy pauses the target while it reads memory;
  nothing is injected);
- ``pystack remote PID`` (stops the target with ptrace while it reads);
- pyrasite alone: ``pyrasite.inject(pid, noop.py)`` - its gdb recipe
  (``gdb -p PID -batch`` with full symbol loading, then
  ``PyGILState_Ensure``/``PyRun_SimpleString``/``PyGILState_Release``) on a
  file holding one assignment: the price of pyrasite's injection itself.

Ours: `OursApi` is ``inspector.attach(pid, injector=...)`` + ``stack()`` +
detach in this process (so the injector's stop can be timed: the session's
`InjectionReport` and `InjectionClock`); "ours" is the default (native)
injector, gdb and pyrasite are extra rows that say why when this machine
refuses them. `ours_cli` is the ``inspector`` command in a fresh process.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import inspector  # imported up front so the first timed run does not pay for it

BIN_DIR = Path(sys.executable).parent

# Every attach that failed during the run (the bench retries once and goes
# on; run.py reports them: a failed attach on a healthy target is a finding).
ATTACH_FAILURES: list[str] = []


def attach(pid: int, **kwargs: Any) -> inspector.Session:
    """inspector.attach, retried once after a failure that is recorded."""
    try:
        return inspector.attach(pid, **kwargs)
    except inspector.AttachError as e:
        ATTACH_FAILURES.append("pid %d: %s" % (pid, e.message))
        _resume_if_stopped(pid)
        time.sleep(0.5)
        return inspector.attach(pid, **kwargs)


def _resume_if_stopped(pid: int) -> None:
    """The bench's own targets only: SIGCONT one that a failed attach left stopped."""
    try:
        with open("/proc/%d/status" % pid) as f:
            stopped = any(line.startswith("State:\tT") for line in f)
    except OSError:
        return
    if stopped:
        ATTACH_FAILURES.append("pid %d was left stopped; the bench resumed it" % pid)
        os.kill(pid, signal.SIGCONT)
NOOP_PAYLOAD = Path(__file__).with_name("noop_payload.py")


def find_exe(name: str) -> str | None:
    local = BIN_DIR / name
    if local.exists():
        return str(local)
    return shutil.which(name)


@dataclass
class ToolRun:
    ok: bool
    wall_ms: float
    output: str = ""
    error: str = ""
    # ours: how long the target was stopped (native: the one borrowed thread,
    # from the interrupt stop to the detach; gdb: every thread)
    stopped_ms: float | None = None
    injected_at: float | None = None  # ours: time.monotonic() when the injector detached
    phases: dict[str, float] = field(default_factory=dict)  # ours: ms per phase
    borrowed_tid: int | None = None  # ours: the thread the injector made its calls on
    path: str = ""  # ours: "thread", "pending" or "gil" (InjectionReport.path)


class Tool:
    name = ""
    ours = False

    def missing(self) -> str | None:
        return None

    def run(self, pid: int) -> ToolRun:
        raise NotImplementedError


class ExternalTool(Tool):
    """A command line run in a fresh process; `{pid}` in argv is replaced."""

    def __init__(self, name: str, exe: str, args: list[str], *, ours: bool = False,
                 timeout: float = 60.0) -> None:
        self.name = name
        self.exe = exe
        self.args = args
        self.ours = ours
        self.timeout = timeout

    def missing(self) -> str | None:
        if find_exe(self.exe) is None:
            return "%s is not installed (pip install -e '.[bench]')" % self.exe
        return None

    def argv(self, pid: int) -> list[str]:
        exe = find_exe(self.exe)
        assert exe is not None
        return [exe] + [a.format(pid=pid) for a in self.args]

    def run(self, pid: int) -> ToolRun:
        argv = self.argv(pid)
        started = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout,
                              stdin=subprocess.DEVNULL)
        wall = (time.monotonic() - started) * 1000.0
        ok = proc.returncode == 0 and bool(proc.stdout.strip())
        return ToolRun(ok, wall, proc.stdout, "" if ok else (proc.stderr.strip()[-300:]
                                                             or "exit %d" % proc.returncode))


def py_spy_dump() -> ExternalTool:
    return ExternalTool("py-spy dump", "py-spy", ["dump", "--pid", "{pid}"])


def pystack_remote() -> ExternalTool:
    return ExternalTool("pystack remote", "pystack", ["remote", "{pid}"])


def ours_cli(*extra: str, name: str = "inspector stack") -> ExternalTool:
    return ExternalTool(name, "inspector", ["stack", "{pid}", *extra], ours=True)


class PyrasiteAlone(Tool):
    """pyrasite's own injection of a file that only assigns a local name."""

    name = "pyrasite alone"

    def missing(self) -> str | None:
        try:
            import pyrasite  # noqa: F401
        except ImportError:
            return "pyrasite is not installed (pip install pyrasite-ng)"
        if shutil.which("gdb") is None:
            return "gdb is not installed"
        return None

    def run(self, pid: int) -> ToolRun:
        import pyrasite

        buf = io.StringIO()
        started = time.monotonic()
        with contextlib.redirect_stdout(buf):
            pyrasite.inject(pid, str(NOOP_PAYLOAD), verbose=True)
        wall = (time.monotonic() - started) * 1000.0
        text = buf.getvalue()
        failed = [line for line in text.splitlines()
                  if "No symbol" in line or "not permitted" in line or "unknown return" in line]
        return ToolRun(not failed, wall, text, failed[0] if failed else "")


class InjectionClock:
    """Records when our injector let the target run again, by wrapping the
    backend that `inspector.session` creates (bench-side only; the library is
    unchanged). For the native backend that is when `inject` returned (it
    returns right after detaching from the borrowed thread); for the gdb
    backend, when its work on the stopped target ended (`_inject_stopped`
    returned; the detach follows within a millisecond or two). Records
    nothing if the library's internals moved."""

    def __init__(self) -> None:
        self.detached_at: float | None = None
        self._saved: Any = None

    def __enter__(self) -> InjectionClock:
        import inspector.session as session_module

        original: Any = getattr(session_module, "make_injector", None)
        if original is None:
            return self
        clock = self

        def make_injector(name: str, *args: Any) -> Any:
            backend = original(name, *args)
            inject = backend.inject
            stopped_work: Any = getattr(backend, "_inject_stopped", None)

            def timed_inject(*args: Any, **kwargs: Any) -> Any:
                report = inject(*args, **kwargs)
                if stopped_work is None:
                    clock.detached_at = time.monotonic()
                return report

            def timed_stopped_work(*args: Any, **kwargs: Any) -> Any:
                result = stopped_work(*args, **kwargs)
                clock.detached_at = time.monotonic()
                return result

            backend.inject = timed_inject
            if stopped_work is not None:
                backend._inject_stopped = timed_stopped_work
            return backend

        self._saved = original
        setattr(session_module, "make_injector", make_injector)  # noqa: B010 (not re-exported)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._saved is not None:
            import inspector.session as session_module

            setattr(session_module, "make_injector", self._saved)  # noqa: B010


def injector_problem(injector: str) -> str | None:
    """Why our `injector` backend cannot run on this machine (one line), or
    None. For gdb and pyrasite this is the library's own preflight (gdb
    installed, and able to restore registers in a throwaway process)."""
    from inspector._inject import make_injector

    try:
        make_injector(injector)
    except inspector.AttachError as e:
        return e.message
    return None


class OursApi(Tool):
    """inspector.attach(pid, injector=...) + stack() + detach, in this process.

    "ours" is the default (native) injector; gdb and pyrasite are extra rows."""

    ours = True

    def __init__(self, injector: str = "native") -> None:
        self.injector = injector
        self.name = "ours" if injector == "native" else "ours (%s backend)" % injector

    def missing(self) -> str | None:
        return injector_problem(self.injector)

    def run(self, pid: int) -> ToolRun:
        started = time.monotonic()
        with InjectionClock() as clock:
            try:
                session = inspector.attach(pid, injector=self.injector, reuse=False)
            except inspector.AttachError as e:
                ATTACH_FAILURES.append("pid %d: %s" % (pid, e.message))
                raise
        attached = time.monotonic()
        try:
            stacks = session.stack()
            answered = time.monotonic()
        finally:
            session.detach()
        done = time.monotonic()
        report = session.injection
        phases = {
            "attach": (attached - started) * 1000.0,
            "stack": (answered - attached) * 1000.0,
            "detach": (done - answered) * 1000.0,
        }
        if report is not None:
            phases["inject_total"] = report.total_ms
            phases["stopped"] = report.stopped_ms
            if clock.detached_at is not None:
                # From the injector's detach to the agent's hello: the agent
                # thread waiting for the GIL, compiling its modules, connecting back.
                phases["agent_start"] = (attached - clock.detached_at) * 1000.0
                phases["before_inject"] = ((clock.detached_at - started) * 1000.0
                                           - report.total_ms)
        return ToolRun(bool(stacks), (done - started) * 1000.0,
                       output="%d threads" % len(stacks),
                       stopped_ms=report.stopped_ms if report else None,
                       injected_at=clock.detached_at, phases=phases,
                       borrowed_tid=report.thread if report else None,
                       path=report.path if report else "")


def python_startup_ms(python: str, code: str, runs: int,
                      env: dict[str, str] | None = None) -> list[float]:
    """Wall times of `python -c code` (fresh process each time)."""
    out = []
    env = dict(os.environ) if env is None else env
    for _ in range(runs):
        started = time.monotonic()
        subprocess.run([python, "-c", code], check=True, env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL)
        out.append((time.monotonic() - started) * 1000.0)
    return out
