"""Real services on every interpreter: uvloop event loops (their state is C,
out of static reach), tracemalloc started at startup (`-X tracemalloc`,
`PYTHONTRACEMALLOC`: neither tracemalloc nor _tracemalloc is in the target's
sys.modules) and `inspector greenlets` on a target without greenlet.

uvloop comes pinned from the registry, in the venv per interpreter of
tests/targets/services.py (a visible skip where it cannot be installed).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import inspector
from tests.targets.services import services_python

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[2]
UVLOOP_TARGET = str(REPO / "tests" / "targets" / "uvloop_target.py")

# Never imports tracemalloc: tracing is the interpreter's, from its startup.
HOARDER = r"""
import os, time
def hoard():
    return [bytearray(2000) for _ in range(2000)]
kept = hoard()
print("ready %d" % os.getpid(), flush=True)
while True:
    time.sleep(0.1)
"""


def test_uvloop_loops_run_on_their_threads(python, targets):
    # Given uvloop loops serving on the main thread and on "uv-worker"
    target = targets(services_python(python), [UVLOOP_TARGET])
    fields = dict(part.split("=") for part in target.ready_line.split()[2:])
    main_ident, worker_ident = int(fields["main"]), int(fields["worker"])
    # When we list the tasks
    with inspector.attach(target.pid) as session:
        tasks = session.tasks()
    # Then each loop is running, on the thread that runs it, with its tasks
    by_name = {t.name: t for t in tasks}
    for prefix, ident, thread_name in (("main", main_ident, "MainThread"),
                                       ("worker", worker_ident, "uv-worker")):
        named = [by_name.get("%s-waiter-%d" % (prefix, i)) for i in range(3)]
        assert all(t is not None for t in named), sorted(map(str, by_name))
        loops = {t.loop for t in named if t is not None}
        assert len(loops) == 1, loops
        (loop,) = loops
        assert loop is not None and loop.type == "uvloop.Loop"
        assert loop.running is True and loop.closed is False
        assert loop.thread == ident and loop.thread_name == thread_name
        assert loop.thread_found_by == "stack"
        for t in named:
            assert t is not None and t.state == "pending"
            assert [link.name for link in t.chain[:2]] == ["waiter", "sleep"]
        # the loop's own task runs serve() (under uvloop.run's wrapper)
        own = [t for t in tasks if t.loop == loop and t not in named]
        assert any("serve" in [link.name for link in t.chain] for t in own), own
    # And the CLI says so in words
    out = subprocess.run([sys.executable, "-m", "inspector", "tasks", str(target.pid)],
                         capture_output=True, text=True, cwd=str(REPO), timeout=60)
    assert out.returncode == 0, out.stderr
    assert 'on thread "uv-worker" (ident %d), running: 4 tasks' % worker_ident in out.stdout
    assert 'on thread "MainThread" (ident %d), running: 4 tasks' % main_ident in out.stdout
    assert target.alive() and target.stderr_text() == ""


@pytest.mark.parametrize("how", ["-X tracemalloc", "PYTHONTRACEMALLOC=1"])
def test_tracemalloc_started_at_startup(python, targets, how):
    # Given a target tracing since startup, which never imported tracemalloc
    if how.startswith("-X"):
        target = targets(python, ["-X", "tracemalloc", "-c", HOARDER])
    else:
        target = targets(python, ["-c", HOARDER], env={"PYTHONTRACEMALLOC": "1"})
    # When we ask for the memory summary
    with inspector.attach(target.pid) as session:
        memory = session.memory(tracemalloc_top=5, process=False)
        loaded = session.eval("[m for m in modules() if 'tracemalloc' in m]").to_python()
    # Then tracemalloc's numbers and top sites are there, hoard() first
    tm = memory.tracemalloc
    assert tm is not None and tm.tracing is True and tm.imported is False, tm
    assert tm.current and tm.peak and tm.peak >= tm.current and tm.traceback_limit == 1
    assert 0 < len(tm.top) <= 5 and (tm.sites or 0) >= len(tm.top)
    top = tm.top[0]
    assert top.file == "<string>" and top.line == 4 and top.size >= 4_000_000, tm.top
    assert not any(site.file.startswith("<inspector-agent") for site in tm.top)
    # And neither tracemalloc nor _tracemalloc was imported into the target
    assert loaded == []
    assert target.alive() and target.stderr_text() == ""


def test_greenlets_of_a_target_without_greenlet(edge_python, spawn):
    # Given a target that never imported greenlet
    target = spawn(edge_python, "sleep", control=True)
    # When we ask for its greenlets
    out = subprocess.run([sys.executable, "-m", "inspector", "greenlets", str(target.pid)],
                         capture_output=True, text=True, cwd=str(REPO), timeout=60)
    # Then one line says so, exit 0 (like `tasks` without asyncio)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "no greenlets in process %d (it never imported greenlet)\n" % target.pid
    with inspector.attach(target.pid) as session:
        result = session.greenlets()
        loaded = session.eval("[m for m in modules() if 'greenlet' in m or 'gevent' in m]")
    assert result.greenlet is False and result.greenlets == () and result.hubs == ()
    assert loaded.to_python() == []
    assert target.state()["canary"] == []
