"""A real gevent service (monkey.patch_all(): `_thread`, `time.sleep`,
`select`, `socket` replaced by gevent's Python code).

The agent must start and run on CPython's own primitives: stage 1 runs on the
injector's native thread (no `_thread.start_new_thread`), and the payload's
`_thread`/`time`/`select` are private views holding the original C functions
(recovered from the objects that still refer to the module: gevent keeps
them in `gevent.monkey.saved`). No gevent code may run on our thread: it would
build a hub there (an epoll and an eventfd each time: the fd leak seen in the
field).

gevent is installed from the registry, pinned, into the venv per interpreter
of tests/targets/services.py; where it cannot be installed (no network) the
test is a visible skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import inspector
from tests.targets.process import TargetProcess
from tests.targets.services import services_python

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
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


def _fds(pid: int) -> int:
    return len(os.listdir("/proc/%d/fd" % pid))


def _beats(target: TargetProcess) -> int:
    assert target.proc.stdin is not None
    target.proc.stdin.write(b"beats\n")
    target.proc.stdin.flush()
    return int(target._read_line(10))


def _start_service(python: str) -> TargetProcess:
    target = TargetProcess(services_python(python), ["-c", SERVICE])
    time.sleep(0.3)
    return target


@pytest.fixture
def gevent_service(edge_python, needs_ptrace):
    target = _start_service(edge_python)
    yield target
    target.kill()


@pytest.fixture
def any_gevent_service(python, needs_ptrace):
    """The service on every interpreter (greenlet 3.1, 3.2 and 3.5 among them)."""
    target = _start_service(python)
    yield target
    target.kill()


def test_every_command_on_a_gevent_service(gevent_service):
    target = gevent_service
    pid = target.pid
    fds, threads, beats = _fds(pid), len(os.listdir("/proc/%d/task" % pid)), _beats(target)
    for command in (["eval", "len(orders)"], ["stack"], ["census", "--top", "3"], ["tasks"],
                    ["memory"], ["greenlets"], ["attach"]):
        started = time.monotonic()
        out = subprocess.run([sys.executable, "-m", "inspector", command[0], str(pid),
                              *command[1:], "--timeout", "5"], capture_output=True,
                             text=True, cwd=str(REPO), timeout=60)
        assert out.returncode == 0, (command, out.stderr)
        assert time.monotonic() - started < 5
        if command[0] == "eval":
            assert out.stdout.strip() == "10"
        if command[0] == "greenlets":
            assert "Hub gevent.hub.Hub at" in out.stdout and "worker" in out.stdout
    # The service kept serving its greenlets, and nothing of ours is left:
    # no thread, no epoll/eventfd from a hub built on our thread
    _assert_as_before(target, threads, fds, beats)


def test_greenlets_and_the_hub_of_a_gevent_service(any_gevent_service):
    # Given a gevent service: 3 workers sleeping, a server in accept(), a
    # control greenlet waiting on stdin, the main greenlet in joinall()
    target = any_gevent_service
    pid = target.pid
    fds, threads, beats = _fds(pid), len(os.listdir("/proc/%d/task" % pid)), _beats(target)
    # When we list its greenlets
    out = subprocess.run([sys.executable, "-m", "inspector", "greenlets", str(pid), "--json",
                          "--timeout", "5"], capture_output=True, text=True, cwd=str(REPO),
                         timeout=60)
    assert out.returncode == 0, out.stderr
    value = json.loads(out.stdout)["value"]
    assert value["greenlet"] is True and value["gevent"] is True and value["complete"]
    # Then one hub, on the main thread, with its libev loop
    (hub,) = value["hubs"]
    assert hub["type"] == "gevent.hub.Hub" and hub["thread"] is not None
    assert "loop" in (hub["loop_type"] or ""), hub
    by_function: dict[str | None, list[dict]] = {}
    for g in value["greenlets"]:
        by_function.setdefault(g["function"], []).append(g)
    # the hub is the greenlet running now: its stack is the thread's (Hub.run)
    (hub_greenlet,) = [g for g in value["greenlets"] if g["is_hub"]]
    assert hub_greenlet["state"] == "running" and hub_greenlet["thread"] == hub["thread"]
    assert hub_greenlet["frames_from"] == "thread"
    assert [f["function"] for f in hub_greenlet["frames"]][-1:] == ["run"]
    # each spawned greenlet is suspended, its own function in its stack
    for name, count in (("worker", 3), ("server", 1), ("control", 1)):
        found = by_function.get(name, [])
        assert len(found) == count, (name, sorted(by_function, key=str))
        for g in found:
            assert g["state"] == "suspended" and g["frames_from"] == "gr_frame"
            assert name in [f["function"] for f in g["frames"]], g["frames"]
            assert g["thread"] == hub["thread"] and g["type"].endswith("Greenlet")
    assert any(f["function"] == "sleep" for f in by_function["worker"][0]["frames"])
    # the main greenlet waits in joinall(), under <module>
    (main,) = [g for g in value["greenlets"] if g["is_main"]]
    assert main["state"] == "suspended"
    assert [f["function"] for f in main["frames"]][-1] == "<module>"
    # And the text view shows the hub and the stacks
    text = subprocess.run([sys.executable, "-m", "inspector", "greenlets", str(pid),
                           "--timeout", "5"], capture_output=True, text=True, cwd=str(REPO),
                          timeout=60)
    assert text.returncode == 0, text.stderr
    assert "Hub gevent.hub.Hub at" in text.stdout and "[running]" in text.stdout
    assert text.stdout.count("Greenlet worker at") == 3 and "#1  worker (" in text.stdout
    # And the target is as it was: no thread, no fd of ours, still serving
    _assert_as_before(target, threads, fds, beats)


PLAIN_GREENLETS = r"""
import os, time, greenlet
def child(x):
    greenlet.getcurrent().parent.switch(x)
def never():
    pass
suspended = greenlet.greenlet(child)
suspended.switch(5)
waiting = greenlet.greenlet(never)
finished = greenlet.greenlet(never)
finished.switch()
print("ready %d" % os.getpid(), flush=True)
while True:
    time.sleep(0.1)
"""


def test_plain_greenlets_in_every_state(edge_python, needs_ptrace):
    # Given greenlet without gevent: one suspended in child(), one not started,
    # one finished, and the main greenlet running the main thread
    target = TargetProcess(services_python(edge_python), ["-c", PLAIN_GREENLETS])
    try:
        with inspector.attach(target.pid) as session:
            result = session.greenlets()
    finally:
        target.kill()
    # Then each is listed in its state, with the function it runs or ran
    assert result.greenlet is True and result.gevent is False and result.hubs == ()
    states = sorted((g.state, g.function or "") for g in result.greenlets)
    assert states == [("dead", ""), ("not started", "never"), ("running", ""),
                      ("suspended", "child")], states
    (suspended,) = [g for g in result.greenlets if g.state == "suspended"]
    assert [f.function for f in suspended.frames] == ["child"]
    assert suspended.frames[0].line == 4 and suspended.frames_from == "gr_frame"
    (main,) = [g for g in result.greenlets if g.is_main]
    assert main.state == "running" and main.frames == ()  # no hub: thread unknown


def _assert_as_before(target: TargetProcess, threads: int, fds: int, beats: int) -> None:
    """The service still serves, and nothing of ours is left: no thread, no
    fd (an epoll/eventfd of a hub built on our thread)."""
    pid = target.pid
    deadline = time.monotonic() + 5
    while len(os.listdir("/proc/%d/task" % pid)) != threads and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(os.listdir("/proc/%d/task" % pid)) == threads
    assert _fds(pid) == fds
    assert _beats(target) > beats
    assert target.alive() and target.stderr_text() == ""
