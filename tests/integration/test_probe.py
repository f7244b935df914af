"""`inspector probe` and the resident agent, against real targets."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_cli import run_cli
from tests.targets.process import TargetProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("check, code, status", [
    ("ok=len(orders) == 10", 0, "OK"),
    ("failing=len(orders) > 100", 2, "CRITICAL"),
    ("refused=open('/etc/passwd')", 3, "UNKNOWN"),
    ("raises=orders[99]", 3, "UNKNOWN"),
])
def test_probe_exit_codes(edge_python, spawn, check, code, status):
    target = spawn(edge_python, "sleep")
    out = run_cli("probe", str(target.pid), "--check", check, "--json")
    assert out.returncode == code, out.stderr
    doc = json.loads(out.stdout)
    assert doc["ok"] is True
    value = doc["value"]
    assert value["status"] == status and value["checks"][0]["status"] == status
    assert target.alive()


def test_probe_thresholds_from_file(edge_python, spawn, tmp_path):
    target = spawn(edge_python, "sleep")
    checks = tmp_path / "checks.toml"
    checks.write_text('[[check]]\nname = "orders"\nexpr = "len(orders)"\nwarn = 5\ncrit = 50\n')
    out = run_cli("probe", str(target.pid), "--file", str(checks))
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stdout.startswith("INSPECTOR WARNING - orders WARNING (10 >= 5)")


def test_probe_module_option_and_checks_file_module(edge_python, spawn, tmp_path):
    # `sep` is os.sep, not a name in __main__: only --module os finds it
    target = spawn(edge_python, "sleep")
    out = run_cli("probe", str(target.pid), "--module", "os", "--check", "sep=sep == '/'",
                  "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["value"]["checks"][0]["status"] == "OK"
    out = run_cli("probe", str(target.pid), "--check", "sep=sep == '/'", "--json")
    assert out.returncode == 3 and "NameError" in out.stdout
    out = run_cli("probe", str(target.pid), "--module", "no_such_mod", "--check", "x=1 == 1",
                  "--json")
    assert out.returncode == 3
    assert "no module 'no_such_mod' is loaded" in json.loads(out.stdout)["value"]["checks"][0][
        "message"]
    # A checks file's `module =` per check, next to a --check in __main__
    checks = tmp_path / "checks.toml"
    checks.write_text('[[check]]\nname = "sep"\nexpr = "sep == \'/\'"\nmodule = "os"\n')
    out = run_cli("probe", str(target.pid), "--file", str(checks), "--check",
                  "orders=len(orders) == 10")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("INSPECTOR OK - 2 checks OK")
    # --module with no --check is a usage error (UNKNOWN), naming the file's key
    out = run_cli("probe", str(target.pid), "--module", "os", "--file", str(checks))
    assert out.returncode == 3 and "module = \"os\"" in out.stderr


def test_probe_unreachable_target_is_unknown():
    out = run_cli("probe", "999999999", "--check", "x=1 == 1", "--prometheus")
    assert out.returncode == 3
    families = {f.name: f for f in text_string_to_metric_families(out.stdout)}
    assert families["inspector_probe_success"].samples[0].value == 0.0


def test_probe_bad_usage_is_unknown_not_critical():
    assert run_cli("probe", "1").returncode == 3
    assert run_cli("probe", "abc", "--check", "a=1").returncode == 3


def test_example_checks_file_against_the_example_service(needs_gdb):
    target = TargetProcess.example(os.sys.executable, "threaded_service.py")
    try:
        time.sleep(0.5)
        out = run_cli("probe", str(target.pid), "--file", str(EXAMPLES / "checks.toml"),
                      "--prometheus")
        assert out.returncode == 0, out.stdout + out.stderr
        families = {f.name: f for f in text_string_to_metric_families(out.stdout)}
        checks = {s.labels["check"] for s in families["inspector_check_status"].samples}
        assert checks == {"queue_depth", "workers_alive", "cache_hit_ratio", "timeout_sane"}
        assert all(s.value == 0 for s in families["inspector_check_status"].samples)
    finally:
        target.kill()


def test_resident_agent_reused_then_gone_after_idle_timeout(edge_python, spawn, tmp_path):
    # Given a target and a first probe that leaves a resident agent
    target = spawn(edge_python, "sleep")
    baseline = target.os_thread_count()
    first = run_cli("attach", str(target.pid), "--keep", "--idle-timeout", "6", "--json")
    assert first.returncode == 0, first.stderr
    info = json.loads(first.stdout)["value"]
    assert info["resident"] and info["reused"] is False
    assert target.os_thread_count() == baseline + 1
    ps = json.loads(run_cli("ps", "--json").stdout)["value"]
    assert next(r for r in ps if r["pid"] == target.pid)["agent"] == "resident"
    # When two more probes run - with no gdb on PATH, so they cannot inject
    no_gdb = {"PATH": str(tmp_path)}
    for _ in range(2):
        out = run_cli("probe", str(target.pid), "--check", "n=len(orders)", "--json",
                      env=no_gdb)
        assert out.returncode == 0, out.stdout + out.stderr
        assert json.loads(out.stdout)["value"]["reused_agent"] is True
    # Then still one agent thread, and it leaves after the idle timeout
    assert target.os_thread_count() == baseline + 1
    assert target.wait_threads(baseline, timeout=14) == baseline
    assert not os.path.exists(info["resident"])
    assert target.alive() and target.stderr_text() == ""


def test_detach_stops_the_resident_agent(edge_python, spawn):
    target = spawn(edge_python, "idle")
    baseline = target.os_thread_count()
    assert run_cli("attach", str(target.pid), "--keep").returncode == 0
    out = run_cli("detach", str(target.pid))
    assert out.returncode == 0, out.stderr
    assert target.wait_threads(baseline, timeout=3) == baseline
    again = run_cli("detach", str(target.pid))
    assert again.returncode == 0 and "no resident agent: nothing to stop" in again.stdout
