"""Isolated queries (a disposable fork of the target) and explore mode.

Each hostile query runs in explore mode (--isolated --allow-calls) and must
leave the real target unchanged (fingerprint), alive, responsive and without
a leftover child process, on the oldest and newest Python and Debian's python3.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import inspector
from tests.pythons import interpreters
from tests.targets.process import TargetProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
TARGET = Path(__file__).resolve().parents[1] / "targets" / "isolation_target.py"
_PICK = {i.label: i for i in interpreters()}
_PYTHONS = [_PICK[k] for k in ("3.8", "3.13", "system") if k in _PICK]


@pytest.fixture(params=_PYTHONS, ids=["py" + i.label for i in _PYTHONS])
def isolation_target(request, needs_gdb):
    if request.param.path is None:
        pytest.skip(request.param.missing_reason)
    target = TargetProcess(request.param.path, [str(TARGET)], control=True)
    yield target
    target.kill()


def _children(pid: int) -> str:
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        return f.read().strip()


HOSTILE = [
    ("cache.clear()", None),
    ("orders.pop()", None),
    ("next(gen)", None),
    ("gen.send(None)", None),
    ("conn.send(b'written from the child')", "eval"),
    ("__import__('os')._exit(1)", "eval"),
    ("__import__('ctypes').string_at(0)", "eval"),
    ("[0 for _ in iter(int, 1)]", "eval"),
    ("open('/tmp/inspector-isolation-probe', 'w').write('x')", "eval"),
    ("__import__('os').fork()", "eval"),
]


def test_hostile_queries_leave_the_target_unchanged(isolation_target):
    target = isolation_target
    before = target.state()
    with inspector.attach(target.pid) as session:
        for query, error in HOSTILE:
            try:
                value = session.eval(query, isolated=True, allow_calls=True,
                                     limits={"max_seconds": 2})
            except inspector.EvalError:
                assert error == "eval", query
            else:
                assert error is None, (query, value.node)
            assert _children(target.pid) == "", query  # every child reaped
        # the agent and the target still answer after all of that
        assert session.eval("len(cache)").to_python() == 50
    target.wait_threads(before["os_threads"])
    after = target.state()
    assert after == before
    assert not os.path.exists("/tmp/inspector-isolation-probe")
    assert target.alive() and target.stderr_text() == ""


def test_isolated_sandboxed_query_gives_the_same_answer(isolation_target):
    with inspector.attach(isolation_target.pid) as session:
        plain = session.eval("sorted(cache)[:3]").to_python()
        forked = session.eval("sorted(cache)[:3]", isolated=True)
        assert forked.to_python() == plain
        assert "fork_ms" in forked.node["isolated"]
        # the sandbox still applies inside the fork without --allow-calls
        with pytest.raises(inspector.Denied):
            session.eval("cache.clear()", isolated=True)


def test_allow_calls_without_isolation_is_refused(isolation_target):
    before = isolation_target.state()
    with inspector.attach(isolation_target.pid) as session:
        with pytest.raises(inspector.Denied, match="--isolated"):
            session.eval("cache.clear()", allow_calls=True)
    isolation_target.wait_threads(before["os_threads"])
    assert isolation_target.state() == before


def test_rss_limit_refuses_with_the_reason(isolation_target):
    with inspector.attach(isolation_target.pid) as session:
        with pytest.raises(inspector.Denied, match="RSS"):
            session.eval("1", isolated=True, max_isolated_rss=1024)
