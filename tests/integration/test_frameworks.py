"""Framework objects in a live service (examples/framework_objects.py): a
traitlets application, Django and SQLAlchemy instances, Flask and FastAPI
apps, a gunicorn arbiter. `inspector eval` answers their stored values
without running their code; what is not stored is refused (exit 3) and the
service is unchanged.

The frameworks are pinned in the `test` extra, so the target runs on the
test environment's own interpreter (the evaluator itself is tested on every
interpreter elsewhere).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import inspector
from tests.targets.process import TargetProcess

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

ANSWERS = {
    "app.workers": 4,
    "app.kernel.shell.user_ns": {"x": 1, "df_rows": 1200},
    "(order.sku, order.customer_id)": ("A-100", 12),
    "(user.id, user.name)": (1, "ada"),
    "[r.rule for r in flask_app.url_map._rules]": ["/static/<path:filename>",
                                                   "/orders/<int:order_id>"],
    "flask_app.name": "shop",
    "[r.path for r in api.routes][-1]": "/items/{item_id}",
    "arbiter.num_workers": 3,
    "report.total": 7,
}
REFUSED = {
    "app.banner": "traitlets.traitlets.Unicode whose value is not stored yet",
    "deferred.qty": "DeferredAttribute whose value is not stored yet",
    "user.addresses": "InstrumentedAttribute whose value is not stored yet",
    "report.pending": "functools.cached_property whose value is not stored yet",
    "probe.value": "Recorder (reading it would run target code)",
}
# what a refusal could have changed: the getters append to `calls`, the storages
STATE = ("calls, sorted(app._trait_values), sorted(vars(deferred)), sorted(vars(user)), "
         "sorted(vars(report))")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "inspector", *args], capture_output=True,
                          text=True, timeout=60, cwd=str(REPO))


@pytest.fixture(scope="module")
def service():
    from tests.conftest import ptrace_problem

    problem = ptrace_problem()
    if problem:
        pytest.skip(problem)
    target = TargetProcess.example(sys.executable, "framework_objects.py")
    yield target
    target.kill()


def test_the_service_has_every_framework(service):
    assert service.ready_line.endswith("missing="), (
        "the frameworks are pinned in the test extra: %s" % service.ready_line)


def test_stored_values_answer_and_the_rest_is_refused(service):
    with inspector.attach(service.pid) as s:
        before = s.eval(STATE).to_python()
        for query, expected in ANSWERS.items():
            assert s.eval(query).to_python() == expected, query
        for query, reason in REFUSED.items():
            with pytest.raises(inspector.Denied) as info:
                s.eval(query)
            assert reason in info.value.message and info.value.exit_code == 3, query
        # a listing (lazy expansion, the TUI) shows the placeholder instead
        node = s.inspect([["attr", "pending"]], expr="report")
        assert node.kind == "property" and "not stored yet" in node.node["text"]
        after = s.eval(STATE).to_python()
    assert after == before and after[0] == []
    assert "banner" not in after[1]
    assert after[4] == ["rows", "total"]
    assert service.alive()


def test_one_rule_for_the_command_line(service):
    """A read that would run code exits 3 with one line, at the top of the query
    or inside it; a stored framework value exits 0."""
    pid = str(service.pid)
    ok = run_cli("eval", pid, "arbiter.num_workers")
    assert (ok.returncode, ok.stdout.strip()) == (0, "3"), ok.stderr
    for query in ("order.pk", "len(order.pk)", "[order.pk]"):
        out = run_cli("eval", pid, query)
        assert out.returncode == 3, (query, out.stdout, out.stderr)
        assert out.stdout == ""
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "attribute 'pk' of" in lines[0], out.stderr
        assert "it is a property (reading it would run target code)" in lines[0]
        assert "--allow-properties" in lines[0]
    out = run_cli("eval", pid, "report.pending")
    assert out.returncode == 3 and "--isolated --allow-calls" in out.stderr
