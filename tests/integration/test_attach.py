"""Attach to real targets on every interpreter, in every state a target can be in.

Each test asserts both the outcome (attached, or refused with exit code 5 and
a message) and that the target is unchanged and alive afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import inspector
from inspector.errors import AttachError, TargetLost

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

# Names a fingerprint may legitimately differ in: nothing.
_UNCHANGED_KEYS = ("threads", "os_threads", "fds", "main_names", "sys_path", "canary",
                   "cache_len", "config", "orders", "hooks", "last_exc",
                   "modules_named_inspector")


def _same_state(before: dict, after: dict) -> None:
    for key in _UNCHANGED_KEYS:
        assert after[key] == before[key], "target changed: %s %r -> %r" % (
            key, before[key], after[key])


def test_stack_and_clean_detach(python, spawn):
    # Given a target whose main thread sleeps and which can describe itself
    target = spawn(python, "sleep", control=True)
    before = target.state()
    threads_before = target.os_thread_count()
    # When we attach, read every stack and detach
    with inspector.attach(target.pid) as session:
        stacks = session.stack()
        names = {s.thread.name for s in stacks}
        main = next(s for s in stacks if s.thread.is_main)
    # Then the stacks are the target's, without the agent's own thread
    assert "control" in names and "MainThread" in names
    assert "inspector-agent" not in names
    assert main.frames[0].function == "main"
    assert main.frames[0].file.endswith("target.py")
    assert "time.sleep" in (main.frames[0].source or "")
    # And after detach the target is exactly as before, and silent
    assert target.wait_threads(threads_before) == threads_before
    _same_state(before, target.state())
    assert target.stderr_text() == ""


@pytest.mark.parametrize("mode", ["busy", "idle", "pause", "asyncio", "threads", "deep"])
def test_attach_in_every_target_state(python, spawn, mode):
    # Given a target whose threads are doing `mode`
    target = spawn(python, mode)
    baseline = target.os_thread_count()
    # When we attach and list its threads
    with inspector.attach(target.pid) as session:
        threads = session.threads()
        stack = session.stack()
    # Then the agent answered, and the agent thread is marked
    assert any(t.is_agent for t in threads)
    assert stack, "no thread stacks"
    if mode == "deep":
        deepest = max(len(s.frames) for s in stack)
        assert deepest >= 200
    # And the target is alive, silent, with its thread count back to baseline
    assert target.wait_threads(baseline) == baseline
    assert target.alive()
    assert target.stderr_text() == ""
    # The pending-call path is the one used when no thread is parked
    if mode == "busy":
        assert session.injection is not None and session.injection.path == "pending"
    else:
        assert session.injection is not None and session.injection.path == "thread"
    # Stage 1 ran as the client's code object in a target of the client's own build
    assert session.agent.extra["stage1"] == (
        "code" if os.path.samefile(python, sys.executable) else "text")


def test_gil_held_in_long_c_call_is_refused_in_bounded_time(python, spawn):
    # Given a thread holding the GIL in a long C call while main waits for it
    target = spawn(python, "gilhog")
    time.sleep(0.3)
    # When we attach with a short timeout
    started = time.monotonic()
    with pytest.raises(AttachError) as err:
        inspector.attach(target.pid, timeout=2.0)
    # Then we are refused quickly, with the reason and a remedy
    assert time.monotonic() - started < 8
    assert "GIL" in err.value.message and "Retry" in err.value.message
    # And the target keeps running (the hog thread still burns CPU), silently
    time.sleep(0.3)
    assert target.alive() and target.proc_state() in ("R", "S")
    assert target.stderr_text() == ""


def test_stopped_process_is_refused_and_left_stopped(python, spawn):
    target = spawn(python, "sleep")
    os.kill(target.pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 5
        while target.proc_state() != "T" and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(AttachError, match="stopped.*kill -CONT"):
            inspector.attach(target.pid)
        assert target.proc_state() == "T"  # we did not resume it behind the user's back
    finally:
        os.kill(target.pid, signal.SIGCONT)
    assert target.alive()


def test_already_traced_process_is_refused(python, spawn):
    target = spawn(python, "sleep")
    tracer = subprocess.Popen(["gdb", "-batch", "-nx", "-p", str(target.pid), "-ex",
                               "shell sleep 20"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open("/proc/%d/status" % target.pid) as f:
                if "TracerPid:\t0" not in f.read():
                    break
            time.sleep(0.05)
        with pytest.raises(AttachError, match="already being traced by pid %d" % tracer.pid):
            inspector.attach(target.pid)
    finally:
        tracer.terminate()
        tracer.wait(10)
    assert target.alive()


def test_target_dying_mid_session_is_target_lost(edge_python, spawn):
    target = spawn(edge_python, "sleep")
    session = inspector.attach(target.pid)
    target.proc.kill()
    target.proc.wait()
    with pytest.raises(TargetLost, match="exited"):
        session.threads()


def test_two_sessions_at_once(edge_python, spawn):
    target = spawn(edge_python, "idle")
    baseline = target.os_thread_count()
    with inspector.attach(target.pid) as first, inspector.attach(target.pid) as second:
        assert first.agent.agent_thread != second.agent.agent_thread
        assert first.threads() and second.threads()
        assert target.os_thread_count() == baseline + 2
    assert target.wait_threads(baseline) == baseline


def test_idle_timeout_ends_the_agent(edge_python, spawn):
    target = spawn(edge_python, "idle")
    baseline = target.os_thread_count()
    session = inspector.attach(target.pid, idle_timeout=1.0)
    assert session.ping()["requests"] >= 1
    assert target.wait_threads(baseline, timeout=5) == baseline
    with pytest.raises(TargetLost):
        session.threads()


def test_pyrasite_backend(python, spawn, needs_working_gdb):
    # Given the compatibility backend (pyrasite-ng's gdb recipe)
    target = spawn(python, "sleep", control=True)
    before = target.state()
    baseline = target.os_thread_count()
    with inspector.attach(target.pid, injector="pyrasite") as session:
        stacks = session.stack()
    assert any(s.thread.is_main for s in stacks)
    assert session.injection is not None and session.injection.backend == "pyrasite"
    assert target.wait_threads(baseline) == baseline
    after = target.state()
    # pyrasite's own sys.path inserts are undone by our stage 1
    assert after["sys_path"] == before["sys_path"]
    assert after["fds"] == before["fds"]
    assert target.stderr_text() == ""


def test_client_sigkill_ends_the_agent(edge_python, spawn):
    # Given a client process attached to the target
    target = spawn(edge_python, "idle")
    baseline = target.os_thread_count()
    client = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time, inspector\n"
         "s = inspector.attach(int(sys.argv[1]))\n"
         "print('attached', flush=True)\n"
         "time.sleep(120)\n", str(target.pid)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdout is not None and client.stdout.readline().strip() == "attached"
        assert target.os_thread_count() == baseline + 1
        # When the client is killed without a chance to detach
        client.kill()
        client.wait()
        # Then the agent notices EOF and is gone within 2 seconds
        assert target.wait_threads(baseline, timeout=2.0) == baseline
    finally:
        client.kill()
        client.wait()
        if client.stdout is not None:
            client.stdout.close()
    assert target.alive() and target.stderr_text() == ""


@pytest.mark.parametrize("garbage", [b"\xff\xff\xff\xff", b"\x00\x00\x00\x05{bad}",
                                     b"\x00\x00\x00\x02[]"])
def test_malformed_frame_ends_the_session_cleanly(edge_python, spawn, garbage):
    target = spawn(edge_python, "idle")
    baseline = target.os_thread_count()
    session = inspector.attach(target.pid)
    session._conn.sock.sendall(garbage)
    assert target.wait_threads(baseline, timeout=3) == baseline
    assert target.alive() and target.stderr_text() == ""
    with pytest.raises(TargetLost):
        session.threads()


def test_frame_id_names_one_call_while_the_stack_moves(edge_python, needs_gdb):
    # Given a busy worker thread whose frame #N keeps changing function
    from tests.targets.process import TargetProcess

    target = TargetProcess.example(edge_python, "threaded_service.py")
    try:
        with inspector.attach(target.pid) as session:
            run = next(f for f in session.stack("worker-1")[0].frames if f.function == "run")
            assert run.frame_id is not None
            # When we keep addressing that call by its frame_id
            for _ in range(50):
                names = [k["text"] for k, _v in session.locals(
                    "worker-1", frame_id=run.frame_id).node["items"]]
                # Then it is always Worker.run's frame (self, job), whatever runs above it
                assert "self" in names and "job" in names
                assert session.eval("len(orders)", "worker-1", frame_id=run.frame_id) \
                    .to_python() == 200
            # And a call that is not on the stack is reported as returned
            with pytest.raises(inspector.FrameGone, match="'worker-1'"):
                session.locals("worker-1", frame_id=run.frame_id + 1)
    finally:
        target.kill()
