"""The whole evaluator case list (legitimate queries + every attack) against a
real attached target, on the oldest and newest supported Python.

Each case must end with the expected outcome (value, or error kind and exit
code), and afterwards the target must be unchanged: canary, every container,
modules, builtins, threads, open files, __main__ names; alive and silent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import inspector
from payloads.snapshot import snapshot
from tests import payload_cases
from tests.integration.test_cli import run_cli
from tests.targets.process import TargetProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
CASES_TARGET = Path(__file__).resolve().parents[1] / "targets" / "cases_target.py"
_KIND = {inspector.Denied: "denied", inspector.BudgetExceeded: "budget",
         inspector.EvalError: "eval", inspector.UsageError: "usage"}


def _outcome(session: inspector.Session, case: tuple) -> dict:
    query, options = case[0], (case[2] if len(case) > 2 else {})
    try:
        value = session.eval(query, allow_properties=options.get("allow_properties", False),
                             redact=options.get("redact", True))
    except tuple(_KIND) as e:
        return {"outcome": _KIND[type(e)], "message": e.message}
    return {"outcome": "ok", "value": payload_cases._plain(value.node),
            "snapshot_kind": value.kind}


def test_every_case_against_a_real_target(edge_python, needs_gdb):
    target = TargetProcess(edge_python, [str(CASES_TARGET)], control=True)
    try:
        before = target.command("fingerprint")
        mismatches = []
        with inspector.attach(target.pid) as session:
            for case in payload_cases.CASES:
                outcome = _outcome(session, case)
                if not payload_cases.matches(case, outcome, snapshot):
                    mismatches.append((case[0][:80], case[1], outcome))
        assert not mismatches, mismatches[:10]
        target.wait_threads(before["os_threads"])  # the agent thread is on its way out
        after = target.command("fingerprint")
        assert after == before
        assert target.alive() and target.stderr_text() == ""
    finally:
        target.kill()


@pytest.mark.parametrize("query, code", [
    ("len(orders) +", 2),
    ("().__class__.__bases__[0].__subclasses__()", 3),
    ("'a' * 10**10", 4),
    ("orders[99]", 1),
    ("len(orders)", 0),
])
def test_cli_exit_codes_for_attacks(edge_python, needs_gdb, query, code):
    target = TargetProcess(edge_python, [str(CASES_TARGET)], control=True)
    try:
        before = target.command("fingerprint")
        out = run_cli("eval", str(target.pid), query)
        assert out.returncode == code, (out.stdout, out.stderr)
        if code:
            assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
        target.wait_threads(before["os_threads"])
        assert target.command("fingerprint") == before
    finally:
        target.kill()
