"""Probe logic without a target: thresholds, statuses, output formats."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from inspector import probe
from inspector.errors import UsageError


def _check(**kw):
    base = {"name": "c", "expr": "x"}
    base.update(kw)
    return probe.make_check(base, where="test")


@pytest.mark.parametrize("kw, value, status", [
    ({}, True, probe.OK),
    ({}, False, probe.CRITICAL),
    ({"fail": "warning"}, False, probe.WARNING),
    ({"warn": 10, "crit": 20}, 5, probe.OK),
    ({"warn": 10, "crit": 20}, 10, probe.WARNING),
    ({"warn": 10, "crit": 20}, 25.5, probe.CRITICAL),
    ({"warn": 0.5, "crit": 0.1, "direction": "below"}, 0.9, probe.OK),
    ({"warn": 0.5, "crit": 0.1, "direction": "below"}, 0.3, probe.WARNING),
    ({"warn": 0.5, "crit": 0.1, "direction": "below"}, 0.05, probe.CRITICAL),
    ({}, "text", probe.UNKNOWN),
    ({}, None, probe.UNKNOWN),
    ({}, float("nan"), probe.UNKNOWN),
])
def test_judge(kw, value, status):
    assert probe.judge(_check(**kw), value).status == status


@pytest.mark.parametrize("raw", [
    {"name": "bad name", "expr": "x"},
    {"name": "c"},
    {"name": "c", "expr": "x", "warn": "10"},
    {"name": "c", "expr": "x", "direction": "sideways"},
    {"name": "c", "expr": "x", "colour": "red"},
])
def test_bad_check_definitions(raw):
    with pytest.raises(UsageError):
        probe.make_check(raw, where="test")


def test_parse_check_arg():
    check = probe.parse_check_arg("queue=len(q.queue) == 0")
    assert (check.name, check.expr) == ("queue", "len(q.queue) == 0")
    with pytest.raises(UsageError):
        probe.parse_check_arg("no-equals-sign")


def test_parse_check_arg_module():
    assert probe.parse_check_arg("q=x").module is None
    assert probe.parse_check_arg("q=len(state.jobs)", "app.state").module == "app.state"
    with pytest.raises(UsageError, match="module of check 'q' must be a module name"):
        probe.parse_check_arg("q=x", " ")
    with pytest.raises(UsageError, match="module of check 'c'"):
        probe.make_check({"name": "c", "expr": "x", "module": 3}, where="test")


def _result(*pairs):
    results = tuple(probe.judge(_check(name=n, warn=10, crit=20), v) for n, v in pairs)
    return probe.ProbeResult(pid=42, results=results, duration=0.25)


def test_worst_status_wins_by_severity():
    assert _result(("a", 1), ("b", 12)).status == probe.WARNING
    assert _result(("a", 1), ("b", 25), ("c", "x")).status == probe.CRITICAL
    assert _result(("a", 12), ("c", "x")).status == probe.UNKNOWN
    assert probe.ProbeResult(pid=1, results=(), duration=0, error="boom").status == probe.UNKNOWN


def test_prometheus_output_parses_with_the_real_parser():
    text = probe.render_prometheus(_result(("queue", 12), ("alive", True), ("odd", "x")))
    families = {f.name: f for f in text_string_to_metric_families(text)}
    values = {s.labels["check"]: s.value for s in families["inspector_check_value"].samples}
    assert values == {"queue": 12.0, "alive": 1.0}
    status = {s.labels["check"]: s.value for s in families["inspector_check_status"].samples}
    assert status == {"queue": 1.0, "alive": 0.0, "odd": 3.0}
    assert families["inspector_probe_success"].samples[0].value == 0.0
    assert families["inspector_probe_duration_seconds"].samples[0].value == 0.25


def test_plugin_output_has_status_and_perfdata():
    line = probe.render_plugin(_result(("queue", 25)))
    assert line.startswith("INSPECTOR CRITICAL - queue CRITICAL (25 >= 20)")
    assert "| queue=25;10;20 duration=0.250s" in line
