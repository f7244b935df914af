"""Shared fixtures: interpreters to run targets on, and real target processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from tests.pythons import Interpreter, interpreters, machine_interpreters, oldest_and_newest
from tests.targets.process import TargetProcess

REPO = Path(__file__).resolve().parents[1]

# Tests write their audit records here, not into the operator's real log.
os.environ.setdefault("INSPECTOR_AUDIT_LOG", str(REPO / ".pytest_cache" / "audit.jsonl"))


def _ids(interps: tuple[Interpreter, ...]) -> list[str]:
    return ["py" + i.label for i in interps]


ALL_PYTHONS = interpreters()
EDGE_PYTHONS = oldest_and_newest()


def _require(interp: Interpreter) -> str:
    if interp.path is None:
        pytest.skip(interp.missing_reason)
    return interp.path


@pytest.fixture(params=ALL_PYTHONS, ids=_ids(ALL_PYTHONS))
def python(request: pytest.FixtureRequest) -> str:
    """Every CPython found on the machine (a missing one is a visible skip)."""
    return _require(request.param)


@pytest.fixture(params=EDGE_PYTHONS, ids=_ids(EDGE_PYTHONS))
def edge_python(request: pytest.FixtureRequest) -> str:
    """The oldest and newest supported CPython (for the expensive suites)."""
    return _require(request.param)


@cache
def ptrace_problem() -> str | None:
    """Why this machine lets no process be traced, or None (probed once, with
    the native injector's own ptrace calls on a child of ours)."""
    import threading
    import time

    from inspector._inject import ptrace

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    problem: list[str] = []

    def probe() -> None:  # the tracer is a thread: its exit detaches
        try:
            ptrace.seize(child.pid)
            ptrace.interrupt(child.pid)
            ptrace.wait_stop(child.pid, time.monotonic() + 5)
            ptrace.detach(child.pid)
        except (OSError, ptrace.StopTimeout) as e:
            problem.append("ptrace is not permitted here: %s" % e)

    try:
        worker = threading.Thread(target=probe)
        worker.start()
        worker.join()
        return problem[0] if problem else None
    finally:
        child.kill()
        child.wait()


@cache
def gdb_problem() -> str | None:
    """Why the gdb-based backends cannot be used here, or None."""
    gdb = shutil.which("gdb")
    if gdb is None:
        return "gdb is not installed (the README's test command installs it)"
    from inspector._inject.gdbcheck import gdb_call_problem

    problem = gdb_call_problem(os.path.realpath(gdb))
    return "gdb cannot restore registers on this host: %s" % problem if problem else None


@pytest.fixture
def needs_ptrace() -> None:
    """Attaching is possible (the default, native injector needs no gdb)."""
    problem = ptrace_problem()
    if problem:
        pytest.skip(problem)


@pytest.fixture
def needs_gdb(needs_ptrace: None) -> None:
    """Historical name kept for tests written before the native injector:
    it means only that attaching is possible."""


@pytest.fixture
def needs_working_gdb(needs_ptrace: None) -> None:
    """For tests of the gdb and pyrasite backends themselves. On hosts where
    gdb cannot put registers back (AMX-capable CPUs with gdb 13) those
    backends refuse by design; tests/integration/test_native_injector.py
    checks that refusal everywhere with an LD_PRELOAD'ed ptrace."""
    problem = gdb_problem()
    if problem:
        pytest.skip(problem)


@pytest.fixture
def spawn(needs_ptrace: None) -> Iterator[object]:
    """spawn(python, mode, control=False) -> a started TargetProcess, killed after."""
    started: list[TargetProcess] = []

    def _spawn(python: str, mode: str, **kw: object) -> TargetProcess:
        target = TargetProcess.mode(python, mode, **kw)  # type: ignore[arg-type]
        started.append(target)
        return target

    yield _spawn
    for target in started:
        target.kill()


@pytest.fixture
def targets(needs_ptrace: None) -> Iterator[object]:
    """targets(python, args, control=False, env=None) -> a started
    TargetProcess running `args` (a script and its arguments), killed after."""
    started: list[TargetProcess] = []

    def start(python: str, args: list[str], control: bool = False,
              env: dict[str, str] | None = None) -> TargetProcess:
        target = TargetProcess(python, args, control=control, env=env)
        started.append(target)
        return target

    yield start
    for target in started:
        target.kill()


# --- the version matrix cannot shrink quietly (issue 11) ----------------------------
_MATRIX_SKIPS: set[str] = set()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Remember tests skipped because an interpreter was 'not found'."""
    if report.skipped and "not found on this machine" in str(report.longrepr):
        for interp in ALL_PYTHONS:
            if interp.path is None and ("interpreter %s not" % interp.label) in str(
                    report.longrepr):
                _MATRIX_SKIPS.add(interp.label)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a test was skipped for an interpreter the machine has."""
    lost = sorted(label for label in _MATRIX_SKIPS if label in machine_interpreters())
    if lost and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("FAILED: tests were skipped for interpreter(s) %s, which this "
                                "machine has (see tests/pythons.py)" % ", ".join(lost), red=True)
