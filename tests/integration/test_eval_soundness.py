"""Issue 11 (evaluator half) and issue 14 item 7 against real attached targets.

* Collections during a request: a target that keeps making cyclic garbage
  with ``__del__`` and weakref callbacks; none of them may run on the agent
  thread while it answers queries, and the target's gc switch is left as the
  target set it.
* A target that replaced sys attributes: the agent refuses what needs them,
  with one line naming the attribute, and calls none of them.
* Client-supplied limits cannot reopen the deep-nesting crash.

Each test asserts the refusal (or result) AND an unchanged target.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import inspector
from tests.integration.test_cli import run_cli
from tests.targets.process import TargetProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
TARGETS = Path(__file__).resolve().parents[1] / "targets"
QUERIES = ("[[i, str(i), (i,)] for i in range(2000)][-1]",
           "sorted({i: [i] for i in range(500)}.items())[-1]")


def _finalizer_target(python: str, *args: str) -> TargetProcess:
    return TargetProcess(python, [str(TARGETS / "finalizer_target.py"), *args], control=True)


def test_target_finalizers_never_run_on_the_agent_thread(python, needs_gdb):
    """Given a target making cyclic garbage with __del__ and weakref callbacks,
    when 30 queries run, then none of them ran on the agent's thread, they kept
    running on the target's, and gc is still enabled afterwards."""
    target = _finalizer_target(python)
    try:
        time.sleep(0.3)
        with inspector.attach(target.pid) as session:
            before = target.command("counts")
            for _ in range(15):
                for query in QUERIES:
                    session.eval(query)
            during = target.command("counts")
        time.sleep(0.3)
        after = target.command("counts")
        assert during["foreign"] == before["foreign"], (before, during)
        assert during["total"] > before["total"]          # the target kept collecting
        assert after["gc_enabled"] is True      # switched back on, by the loader, last
        assert target.alive() and target.stderr_text() == ""
    finally:
        target.kill()


def test_a_target_that_disabled_gc_keeps_it_disabled(edge_python, needs_gdb):
    target = _finalizer_target(edge_python, "--gc-off")
    try:
        assert target.command("counts")["gc_enabled"] is False
        with inspector.attach(target.pid) as session:
            session.eval(QUERIES[0])
            assert target.command("counts")["gc_enabled"] is False
        assert target.command("counts")["gc_enabled"] is False
    finally:
        target.kill()


def test_replaced_sys_attributes_are_never_called(python, needs_gdb):
    """Given a target that replaced sys._current_frames (and more) with Python
    functions, `stack` is refused naming it, queries of module globals still
    work, and none of the replacements ran."""
    target = TargetProcess(python, [str(TARGETS / "sys_patched_target.py")], control=True)
    try:
        before = target.command("state")
        out = run_cli("stack", str(target.pid))
        assert out.returncode == 3, (out.stdout, out.stderr)
        assert "sys._current_frames has been replaced" in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
        out = run_cli("eval", str(target.pid), "the_answer + 1")
        assert out.returncode == 0, out.stderr
        assert "43" in out.stdout
        target.wait_threads(before["threads"])
        assert target.command("calls") == {"calls": []}
        assert target.command("state") == before
        assert target.alive()
    finally:
        target.kill()


def test_raised_client_limits_are_clamped(edge_python, needs_gdb):
    """A client asking for huge nesting budgets still gets the parser-crash
    refusal, and the target lives on."""
    target = TargetProcess(edge_python, [str(TARGETS / "cases_target.py")], control=True)
    try:
        before = target.command("fingerprint")
        raised = {"max_nesting": 10 ** 6, "max_chain": 10 ** 6, "max_ast_depth": 10 ** 6,
                  "max_query_chars": 10 ** 6, "max_call_cost": 10 ** 15}
        with inspector.attach(target.pid) as session:
            with pytest.raises(inspector.BudgetExceeded):
                session.eval("(" * 3000 + "1" + ")" * 3000, limits=raised)
            with pytest.raises(inspector.BudgetExceeded):
                session.eval("haystack.rfind('a' * 4000 + 'b')", limits=raised)
            assert session.eval("len(names)", limits=raised).node["text"] == "3"
        target.wait_threads(before["os_threads"])
        assert target.command("fingerprint") == before
        assert target.alive() and target.stderr_text() == ""
    finally:
        target.kill()
