"""The native injector against real targets: one thread stops, never the
process; a client killed at any instant harms nothing; signals, stops,
concurrent clients and exiting threads; gdb that cannot restore registers.

The targets check their own health (tests/targets/heartbeat_target.py): a
thread that got back a wrong system-call result, a changed FPU state or an
exception reports it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import inspector
from inspector._inject import native, ptrace
from inspector.errors import AttachError
from tests.pythons import SYSTEM_PYTHON
from tests.targets.process import TargetProcess

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HEARTBEAT = REPO / "tests" / "targets" / "heartbeat_target.py"
KILL_CLIENT = REPO / "tests" / "targets" / "kill_client.py"
SHIM_SOURCE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/ptrace.h>
#include <sys/types.h>
/* A kernel that refuses every extended-state write it is given (as an
   AMX host refuses gdb 13's short one): PTRACE_SETREGSET NT_X86_XSTATE fails
   with EFAULT. */
long ptrace(enum __ptrace_request request, ...) {
    static long (*real)(enum __ptrace_request, pid_t, void *, void *);
    va_list ap;
    va_start(ap, request);
    pid_t pid = va_arg(ap, pid_t);
    void *addr = va_arg(ap, void *);
    void *data = va_arg(ap, void *);
    va_end(ap);
    if (!real)
        real = (long (*)(enum __ptrace_request, pid_t, void *, void *))dlsym(RTLD_NEXT, "ptrace");
    if (request == PTRACE_SETREGSET && (long)addr == 0x202) {
        errno = EFAULT;
        return -1;
    }
    return real(request, pid, addr, data);
}
"""


class Heartbeat(TargetProcess):
    def __init__(self, python: str, mode: str) -> None:
        super().__init__(python, [str(HEARTBEAT), mode], control=True)
        self.churns = mode == "churn"

    def health(self) -> dict:
        return self.command("health")

    def steady_threads(self) -> int:
        """The thread count without the churn: least of a few samples (a
        busy machine may keep a churn thread in every sample: hence the
        agent threads are also checked by name)."""
        counts = []
        for _ in range(20):
            counts.append(self.os_thread_count())
            time.sleep(0.005)
        return min(counts)

    def agent_threads(self) -> list[int]:
        """Threads named by an agent (the loader names its thread)."""
        found = []
        for tid in os.listdir("/proc/%d/task" % self.pid):
            try:
                with open("/proc/%d/task/%s/comm" % (self.pid, tid)) as f:
                    if f.read().startswith("inspector"):
                        found.append(int(tid))
            except OSError:
                continue
        return found

    def tracers(self) -> set[int]:
        found = set()
        for tid in os.listdir("/proc/%d/task" % self.pid):
            try:
                with open("/proc/%d/task/%s/status" % (self.pid, tid)) as f:
                    for line in f:
                        if line.startswith("TracerPid:") and int(line.split()[1]):
                            found.add(int(line.split()[1]))
            except OSError:
                continue
        return found


@pytest.fixture
def heartbeat(needs_ptrace):
    started: list[Heartbeat] = []

    def start(python: str, mode: str) -> Heartbeat:
        target = Heartbeat(python, mode)
        started.append(target)
        time.sleep(0.2)  # every thread in its loop
        return target

    yield start
    for target in started:
        target.kill()


def _assert_unharmed(target: Heartbeat, before: dict, threads: int, fds: int) -> None:
    assert target.alive(), target.stderr_text()
    assert target.proc_state() in ("S", "R")
    assert target.tracers() == set()
    deadline = time.monotonic() + 10
    while (target.agent_threads() or (not target.churns and
                                      target.steady_threads() != threads)) and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    assert target.agent_threads() == []
    if not target.churns:  # (a churning target's count is never steady under load)
        assert target.steady_threads() == threads
    deadline = time.monotonic() + 5
    while target.fd_count() != fds and time.monotonic() < deadline:
        time.sleep(0.05)
    assert target.fd_count() == fds
    after = target.health()
    assert after["errors"] == []
    # every loop kept beating
    assert all(after["beats"][name] > count for name, count in before["beats"].items())
    assert target.stderr_text() == ""


def _kill_client(pid: int, *args: str) -> dict:
    out = subprocess.run([sys.executable, str(KILL_CLIENT), str(pid), *args],
                         capture_output=True, text=True, timeout=600, cwd=str(REPO),
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout.splitlines()[-1]))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["idle", "busy"])
def test_client_killed_after_every_ptrace_request(edge_python, heartbeat, mode):
    # Given a target whose threads check their own health
    target = heartbeat(edge_python, mode)
    before, threads, fds = target.health(), target.steady_threads(), target.fd_count()
    # When a client is SIGKILLed right after its 1st, 2nd ... ptrace request
    # (the kernel then detaches with whatever registers are set at that moment)
    report = _kill_client(target.pid, "sweep")
    # Then at every step the thread found its way back, nothing stayed traced
    assert report["trials"] == report["requests"] > 10
    assert report["problems"] == []
    _assert_unharmed(target, before, threads, fds)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["idle", "busy"])
def test_client_killed_at_random_instants(heartbeat, mode):
    python = sys.executable if not os.path.exists(SYSTEM_PYTHON) else str(SYSTEM_PYTHON)
    target = heartbeat(python, mode)
    before, threads, fds = target.health(), target.steady_threads(), target.fd_count()
    report = _kill_client(target.pid, "random", "60")
    assert report["trials"] == 60 and report["problems"] == []
    _assert_unharmed(target, before, threads, fds)


def test_only_the_borrowed_thread_ever_stops(edge_python, heartbeat, monkeypatch):
    # Given a target with several threads
    target = heartbeat(edge_python, "idle")
    others_seen: list[dict[int, str]] = []
    real_resume = ptrace.resume_to_syscall

    def resume(tid: int, sig: int = 0) -> None:
        # While the borrowed thread is held, look at every other thread
        states = {}
        for t in os.listdir("/proc/%d/task" % target.pid):
            if int(t) != tid:
                with open("/proc/%d/task/%s/stat" % (target.pid, t)) as f:
                    states[int(t)] = f.read().rsplit(")", 1)[1].split()[0]
        others_seen.append(states)
        real_resume(tid, sig)

    monkeypatch.setattr(ptrace, "resume_to_syscall", resume)
    with inspector.attach(target.pid) as session:
        assert session.injection is not None and session.injection.path == "thread"
        assert session.injection.backend == "native"
    # Then no other thread was ever in a stop while we held ours
    assert len(others_seen) >= 2
    assert all(state not in ("t", "T") for seen in others_seen for state in seen.values())


def _stage1_form(python: str) -> str:
    """How the routine runs stage 1 in a target of `python`: as the client's
    code object only where the target runs this very interpreter file."""
    return "code" if os.path.samefile(python, sys.executable) else "text"


def test_busy_target_uses_a_pending_call_and_stays_healthy(python, heartbeat):
    target = heartbeat(python, "busy")
    before, threads, fds = target.health(), target.steady_threads(), target.fd_count()
    for _ in range(3):
        with inspector.attach(target.pid) as session:
            assert session.eval("1 + 1").to_python() == 2
            assert session.agent.extra["stage1"] == _stage1_form(python)
    _assert_unharmed(target, before, threads, fds)


def test_idle_target_runs_stage1_as_code_of_its_own_build(python, heartbeat):
    # Given an idle target (a parked thread is borrowed)
    target = heartbeat(python, "idle")
    before, threads, fds = target.health(), target.steady_threads(), target.fd_count()
    with inspector.attach(target.pid) as session:
        # Then stage 1 ran as our code object only in a target of our own build
        assert session.injection is not None and session.injection.path == "thread"
        assert session.agent.extra["stage1"] == _stage1_form(python)
        assert session.agent.extra["bytecode"] == "shipped"
        assert any(t.is_agent for t in session.threads())
    _assert_unharmed(target, before, threads, fds)


def test_threads_that_exit_between_choice_and_seize(edge_python, heartbeat, monkeypatch):
    # Given a target whose threads come and go all the time
    target = heartbeat(edge_python, "churn")
    before, threads, fds = target.health(), target.steady_threads(), target.fd_count()
    # And a first choice that is gone before it can be seized
    gone = subprocess.Popen(["true"])
    gone.wait()
    real_parked = native._parked_soon
    calls = []

    def parked(pid: int, tried: set[int]) -> list[native.Candidate]:
        calls.append(1)
        if len(calls) == 1:
            return [native.Candidate(gone.pid, 202, 0)]
        return real_parked(pid, tried)

    monkeypatch.setattr(native, "_parked_soon", parked)
    with inspector.attach(target.pid) as session:
        assert session.eval("1").to_python() == 1
    assert len(calls) >= 2
    monkeypatch.undo()
    # When we attach again and again while threads start and end
    for _ in range(10):
        with inspector.attach(target.pid) as session:
            session.ping()
    _assert_unharmed(target, before, threads, fds)


def test_concurrent_attaches_take_turns(edge_python, heartbeat):
    target = heartbeat(edge_python, "idle")
    before, threads, fds = target.health(), target.steady_threads(), target.fd_count()
    procs = [subprocess.Popen([sys.executable, "-m", "inspector", "stack", str(target.pid)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=str(REPO))
             for _ in range(6)]
    results = [(p.wait(60), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    for p in procs:
        p.stdout.close()  # type: ignore[union-attr]
        p.stderr.close()  # type: ignore[union-attr]
    # Each one attached, or was told the true reason (another inspector is
    # attaching; the agent's limit of concurrent sessions) - never a wrong one
    for code, err in results:
        assert "not permitted" not in err
        assert code == 0 or (code == 5 and ("another inspector" in err or
                                            "sessions are already attached" in err)), err
    assert sum(code == 0 for code, _ in results) >= 2
    _assert_unharmed(target, before, threads, fds)


def test_only_serving_sessions_count_against_the_limit(heartbeat):
    # Given four sessions held open (the agent's limit)
    target = heartbeat(sys.executable, "idle")
    before, threads, fds = target.health(), target.steady_threads(), target.fd_count()
    held = [inspector.attach(target.pid, reuse=False) for _ in range(4)]
    try:
        # Then a fifth is refused with the true reason
        with pytest.raises(AttachError, match="4 inspector sessions are already attached"):
            inspector.attach(target.pid, reuse=False)
    finally:
        held.pop().detach()
    # And once one detached, another is served (the refused agent never counted)
    with inspector.attach(target.pid, reuse=False) as session:
        assert session.ping()["requests"] >= 1
    for session in held:
        session.detach()
    _assert_unharmed(target, before, threads, fds)


def test_a_stopped_process_stays_stopped(edge_python, heartbeat):
    target = heartbeat(edge_python, "idle")
    os.kill(target.pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 5
        while target.proc_state() != "T" and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(AttachError) as err:
            inspector.attach(target.pid, timeout=2)
        assert "stopped" in err.value.message
        time.sleep(0.2)
        assert target.proc_state() == "T" and target.tracers() == set()
    finally:
        os.kill(target.pid, signal.SIGCONT)
    time.sleep(0.3)
    assert target.health()["errors"] == []


@pytest.fixture(scope="module")
def xstate_shim(tmp_path_factory: pytest.TempPathFactory) -> str:
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler to build the LD_PRELOAD shim")
    out = tmp_path_factory.mktemp("shim")
    (out / "shim.c").write_text(SHIM_SOURCE)
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(out / "shim.so"),
                    str(out / "shim.c"), "-ldl"], check=True)
    return str(out / "shim.so")


def test_a_kernel_that_refuses_the_extended_state_is_refused_cleanly(edge_python, heartbeat,
                                                                      xstate_shim):
    """The failing-gdb path of AMX hosts, reproduced on any host: an
    LD_PRELOAD'ed ptrace refuses every extended-state write, for gdb and for
    the native injector alike."""
    target = heartbeat(edge_python, "idle")
    before, threads, fds = target.health(), target.steady_threads(), target.fd_count()
    env = dict(os.environ, LD_PRELOAD=xstate_shim)
    for backend in ("gdb", "pyrasite"):
        if shutil.which("gdb") is None:
            break
        out = subprocess.run([sys.executable, "-m", "inspector", "stack", str(target.pid),
                              "--injector", backend], capture_output=True, text=True,
                             cwd=str(REPO), env=env, timeout=60)
        # gdb was tried on a throwaway process of ours, never on the target
        assert out.returncode == 5, out.stderr
        assert "cannot restore a thread's registers" in out.stderr
        assert "use the default injector" in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
    # The native injector writes the saved state straight back first: refused
    # by the kernel, it changes nothing and says so
    out = subprocess.run([sys.executable, "-m", "inspector", "stack", str(target.pid)],
                         capture_output=True, text=True, cwd=str(REPO), env=env, timeout=60)
    assert out.returncode == 5
    assert "extended register state" in out.stderr and "nothing was changed" in out.stderr
    _assert_unharmed(target, before, threads, fds)
    # And without the shim the default injector attaches
    out = subprocess.run([sys.executable, "-m", "inspector", "stack", str(target.pid)],
                         capture_output=True, text=True, cwd=str(REPO), timeout=60)
    assert out.returncode == 0, out.stderr


_CLI_COMMANDS = (["stack"], ["eval", "1 + 1"], ["census", "--top", "3"], ["tasks"], ["memory"],
                 ["attach"])


def test_every_command_attaches_without_gdb(python, spawn, tmp_path):
    target = spawn(python, "sleep")
    baseline = target.os_thread_count()
    env = dict(os.environ, PATH=str(tmp_path))  # no gdb to be found
    for command in _CLI_COMMANDS:
        out = subprocess.run([sys.executable, "-m", "inspector", command[0], str(target.pid),
                              *command[1:]], capture_output=True, text=True, cwd=str(REPO),
                             env=env, timeout=60)
        assert out.returncode == 0, (command, out.stderr)
    dump = tmp_path / "dump.json"
    out = subprocess.run([sys.executable, "-m", "inspector", "dump", str(target.pid), "-o",
                          str(dump)], capture_output=True, text=True, cwd=str(REPO), env=env,
                         timeout=60)
    assert out.returncode == 0 and dump.exists(), out.stderr
    assert target.wait_threads(baseline) == baseline
    assert target.alive() and target.stderr_text() == ""


def test_tracer_thread_exit_detaches(heartbeat):
    """The injector's tracer is a thread of ours: Linux detaches whatever a
    tracer thread still traced when it ends (our last resort on timeouts)."""
    target = heartbeat(sys.executable, "idle")
    tid = native.parked_threads(target.pid)[0].tid

    def seize_and_leave() -> None:
        ptrace.seize(tid)
        ptrace.interrupt(tid)
        ptrace.wait_stop(tid, time.monotonic() + 5)

    worker = threading.Thread(target=seize_and_leave)
    worker.start()
    worker.join()
    deadline = time.monotonic() + 5
    while target.tracers() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert target.tracers() == set()
    time.sleep(0.2)
    assert target.health()["errors"] == []


@pytest.mark.parametrize("hangs_in", ["the test call", "the attach"])
def test_a_hanging_gdb_is_bounded_by_the_timeout(edge_python, heartbeat, tmp_path, hangs_in):
    """--timeout bounds the whole command, whatever gdb does."""
    real_gdb = shutil.which("gdb")
    if hangs_in == "the attach":
        from tests.conftest import gdb_problem

        problem = gdb_problem()
        if real_gdb is None or problem:
            pytest.skip("needs a gdb that passes the throwaway test call: %s" % problem)
    target = heartbeat(edge_python, "idle")
    before, threads, fds = target.health(), target.steady_threads(), target.fd_count()
    fake = tmp_path / "gdb"
    if hangs_in == "the test call":
        fake.write_text("#!/bin/sh\nexec sleep 60\n")
    else:  # answers the throwaway test call, then hangs in MI mode
        fake.write_text('#!/bin/sh\ncase "$*" in *-batch*) exec %s "$@";; esac\n'
                        "exec sleep 60\n" % real_gdb)
    fake.chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (tmp_path, os.environ.get("PATH", "")))
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "inspector", "stack", str(target.pid),
                          "--injector", "gdb", "--timeout", "3"], capture_output=True,
                         text=True, cwd=str(REPO), env=env, timeout=60)
    elapsed = time.monotonic() - started
    assert out.returncode == 5, out.stderr
    assert elapsed < 6, elapsed
    assert len(out.stderr.strip().splitlines()) == 1
    if hangs_in == "the test call":
        assert "did not finish a test call" in out.stderr
    else:
        assert "gdb stopped answering" in out.stderr and "state D" not in out.stderr
    _assert_unharmed(target, before, threads, fds)
