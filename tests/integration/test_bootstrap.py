"""The real bootstrap (stage 1 -> loader -> agent) on every interpreter, without gdb.

A child interpreter started with ``-I -S -W error`` executes the stage-1 text
in its ``__main__`` exactly as ``PyRun_SimpleString`` would; the test is the
client. This proves the payload is stdlib-only, warning-free, binds nothing
in ``__main__`` and leaves no thread behind - on every CPython found.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import time

import pytest

from inspector._bundle import BootParams, render_boot_file, render_stage1
from inspector._channel import BOOT_NAME, Listener
from inspector.session import Session

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

CHILD = r'''
import sys
PATCH = sys.argv[1] == "patch"
if sys.argv[1] == "marshal":
    # marshal replaced by Python code: stage 1 must not call it
    import types
    def boom(*a, **k):
        raise RuntimeError("patched function called")
    fake = types.ModuleType("marshal")
    fake.loads = fake.dumps = boom
    sys.modules["marshal"] = fake
    del types, fake, boom
if PATCH:
    # A target that monkeypatched the modules agents usually rely on.
    import builtins, json, socket, threading
    def boom(*a, **k):
        raise RuntimeError("patched function called")
    json.dumps = json.loads = boom
    socket.socket = boom
    threading.Thread = boom
    builtins.print = boom
    builtins.open = boom
    del boom
sys.stdout.write("ready\n"); sys.stdout.flush()
STAGE1 = sys.stdin.readline()
BEFORE = sorted(globals())
exec(STAGE1, globals())          # what PyRun_SimpleString does
for line in sys.stdin:
    import os
    sys.stdout.write(repr((sorted(k for k in globals() if k not in ("line", "os")),
                           len(os.listdir("/proc/self/task")), list(sys.path),
                           sorted(m for m in sys.modules if "inspector" in m))) + "\n")
    sys.stdout.flush()
'''


class Child:
    def __init__(self, python: str, patch: bool | str = False) -> None:
        mode = patch if isinstance(patch, str) else "patch" if patch else "plain"
        self.proc = subprocess.Popen(
            [python, "-I", "-S", "-W", "error", "-c", CHILD, mode],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline() == "ready\n"
        self.pid = self.proc.pid

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line)
        self.proc.stdin.flush()

    def state(self) -> tuple:
        self.send("state\n")
        assert self.proc.stdout is not None
        return eval(self.proc.stdout.readline())  # our own child's repr of plain data

    def finish(self) -> str:
        assert self.proc.stdin is not None and self.proc.stderr is not None
        self.proc.stdin.close()
        self.proc.wait(10)
        try:
            return self.proc.stderr.read()
        finally:
            self.proc.stderr.close()
            if self.proc.stdout is not None:
                self.proc.stdout.close()


def _inject(child: Child, deadline_in: float = 10.0, write_boot: bool = True) -> Listener:
    listener = Listener(child.pid, os.geteuid())
    params = BootParams(token=listener.token, socket_path=listener.socket_path,
                        boot_path=listener.boot_path, deadline=time.monotonic() + deadline_in,
                        package="_inspector_agent_test", idle_timeout=30,
                        client_uid=os.geteuid())
    if write_boot:
        listener.write_file(BOOT_NAME, render_boot_file(params))
    stage1 = render_stage1(params)
    assert "\n" not in stage1.rstrip("\n")  # one statement, one line
    child.send(stage1)
    return listener


def _wait_threads(child: Child, n: int) -> tuple:
    deadline = time.monotonic() + 5
    state = child.state()
    while state[1] != n and time.monotonic() < deadline:
        time.sleep(0.05)
        state = child.state()
    return state


def _magic(python: str) -> bytes:
    out = subprocess.run([python, "-I", "-c", "import importlib.util, sys; "
                          "sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())"],
                         capture_output=True, text=True, check=True)
    return bytes.fromhex(out.stdout)


@pytest.mark.parametrize("patch", [False, True, "marshal"],
                         ids=["plain", "monkeypatched", "marshal-replaced"])
def test_bootstrap_runs_agent_and_leaves_nothing(python, patch):
    child = Child(python, patch=patch)
    try:
        listener = _inject(child)
        try:
            conn = listener.accept(time.monotonic() + 10)
        finally:
            listener.close()
        from inspector._inject import InjectionReport, Target

        target = Target(pid=child.pid, uid=os.geteuid(), python_version=(3, 0),
                        python_binary="", exe=python, cmdline="child")
        session = Session(conn, target, InjectionReport("test", "test", child.pid, 0, 0))
        session._welcome()
        # A target that reads our bytecode runs the client's code objects;
        # any other compiles the sources (and so does one whose marshal we
        # cannot trust).
        same = _magic(python) == importlib.util.MAGIC_NUMBER and patch != "marshal"
        assert session.agent.extra["bytecode"] == ("shipped" if same else "source")
        threads = session.threads()
        assert any(t.is_agent for t in threads)
        assert session.ping()["requests"] >= 1
        session.detach()
        names, nthreads, path, modules = _wait_threads(child, 1)
        assert nthreads == 1
        assert "STAGE1" in names and "BEFORE" in names
        assert not [n for n in names if "inspector" in n]
        assert path == [p for p in path]  # unchanged list object contents
        assert modules == []
    finally:
        stderr = child.finish()
    assert stderr == ""  # nothing printed into the target, no warning


def test_late_stage1_does_nothing(python):
    child = Child(python)
    try:
        listener = _inject(child, deadline_in=-1.0)  # the client already gave up
        listener.close()
        names, nthreads, _path, modules = _wait_threads(child, 1)
        assert nthreads == 1 and modules == []
        assert not [n for n in names if "inspector" in n]
    finally:
        stderr = child.finish()
    assert stderr == ""


def test_missing_boot_file_does_nothing(edge_python):
    child = Child(edge_python)
    try:
        listener = _inject(child, write_boot=False)
        listener.close()
        assert _wait_threads(child, 1)[1] == 1
    finally:
        stderr = child.finish()
    assert stderr == ""


def test_boot_file_is_one_time(edge_python):
    child = Child(edge_python)
    try:
        listener = _inject(child)
        try:
            listener.accept(time.monotonic() + 10).close()
            # the boot file (holding the token) was read and deleted by the agent
            assert not os.path.exists(os.path.join(listener.host_dir, BOOT_NAME))
        finally:
            listener.close()
        assert not os.path.exists(listener.host_dir)
    finally:
        child.finish()


def test_stage1_is_json_free_and_binds_nothing():
    params = BootParams(token="t", socket_path="/x", boot_path="/y", deadline=1.0,
                        package="p", idle_timeout=1, client_uid=0)
    text = render_stage1(params)
    namespace: dict = {"__builtins__": __builtins__}
    exec(text, namespace)  # deadline 1.0 has long passed: the thread returns at once
    assert set(namespace) == {"__builtins__"}
    json.dumps(text)
