"""A real gevent service (monkey.patch_all(): `_thread`, `time.sleep`,
`select`, `socket` replaced by gevent's Python code).

The agent must start and run on CPython's own primitives: stage 1 runs on the
injector's native thread (no `_thread.start_new_thread`), and the payload's
`_thread`/`time`/`select` are private views holding the original C functions
(recovered from the objects that still refer to the module: gevent keeps
them in `gevent.monkey.saved`). No gevent code may run on our thread: it would
build a hub there (an epoll and an eventfd each time: the fd leak seen in the
field).

gevent is installed from the registry, pinned, into a venv per interpreter
under .pytest_cache; where it cannot be installed (no network) the test is a
visible skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.targets.process import TargetProcess

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PINS = {(3, 8): "gevent==24.2.1", "default": "gevent==26.9.0"}
SERVICE = r"""
from gevent import monkey
monkey.patch_all()
import gevent, os, socket
from gevent.socket import wait_read
beats = [0]
orders = list(range(10))
def worker():
    while True:
        gevent.sleep(0.01)
        beats[0] += 1
def server():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    while True:
        conn, _ = s.accept()
        conn.close()
def control():  # "beats" on stdin -> the count on stdout, cooperatively
    while True:
        wait_read(0)
        if os.read(0, 100).strip() == b"beats":
            os.write(1, b"%d\n" % beats[0])
greenlets = [gevent.spawn(worker) for _ in range(3)]
greenlets += [gevent.spawn(server), gevent.spawn(control)]
print("ready %d" % os.getpid(), flush=True)
gevent.joinall(greenlets)
"""


def _version(python: str) -> tuple[int, int]:
    out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                         capture_output=True, text=True, check=True)
    major, minor = out.stdout.split()
    return int(major), int(minor)


def _gevent_python(python: str) -> str:
    version = _version(python)
    pin = PINS.get(version, PINS["default"])
    venv = REPO / ".pytest_cache" / "targets" / ("gevent-%d.%d" % version)
    marker = venv / ("installed-" + pin)
    if not marker.exists():
        subprocess.run([python, "-m", "venv", "--clear", str(venv)], check=True,
                       capture_output=True)
        out = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                              "--disable-pip-version-check", pin],
                             capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            pytest.skip("could not install %s for Python %d.%d: %s"
                        % (pin, *version, out.stderr.strip().splitlines()[-1:]))
        marker.touch()
    return str(venv / "bin" / "python")


def _fds(pid: int) -> int:
    return len(os.listdir("/proc/%d/fd" % pid))


def _beats(target: TargetProcess) -> int:
    assert target.proc.stdin is not None
    target.proc.stdin.write(b"beats\n")
    target.proc.stdin.flush()
    return int(target._read_line(10))


@pytest.fixture
def gevent_service(edge_python, needs_ptrace):
    python = _gevent_python(edge_python)
    target = TargetProcess(python, ["-c", SERVICE])
    time.sleep(0.3)
    yield target
    target.kill()


def test_every_command_on_a_gevent_service(gevent_service):
    target = gevent_service
    pid = target.pid
    fds, threads, beats = _fds(pid), len(os.listdir("/proc/%d/task" % pid)), _beats(target)
    for command in (["eval", "len(orders)"], ["stack"], ["census", "--top", "3"], ["tasks"],
                    ["memory"], ["attach"]):
        started = time.monotonic()
        out = subprocess.run([sys.executable, "-m", "inspector", command[0], str(pid),
                              *command[1:], "--timeout", "5"], capture_output=True,
                             text=True, cwd=str(REPO), timeout=60)
        assert out.returncode == 0, (command, out.stderr)
        assert time.monotonic() - started < 5
        if command[0] == "eval":
            assert out.stdout.strip() == "10"
    # The service kept serving its greenlets, and nothing of ours is left:
    # no thread, no epoll/eventfd from a hub built on our thread
    deadline = time.monotonic() + 5
    while len(os.listdir("/proc/%d/task" % pid)) != threads and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(os.listdir("/proc/%d/task" % pid)) == threads
    assert _fds(pid) == fds
    assert _beats(target) > beats
    assert target.alive() and target.stderr_text() == ""
