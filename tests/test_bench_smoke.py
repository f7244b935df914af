"""Smoke run of the benchmarks: `bench/run.py --quick --only freeze` works end
to end (targets start, every tool runs, tables and JSON come out). It checks
the plumbing, never the numbers: speed is measured by bench/, not asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.integration]


def test_bench_quick_freeze(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--only", "freeze",
         "--out", str(out)],
        capture_output=True, text=True, timeout=110, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "### 1. Target freeze" in proc.stdout
    assert "### Goals" in proc.stdout
    doc = json.loads(out.read_text())
    section = doc["sections"]["freeze"]
    assert section["data"]["target_alive"] is True
    ours = section["data"]["results"]["ours"]  # the default (native) injector
    assert ours and all(r["ok"] for r in ours), ours
    assert all(r["gap_ms"] > 0 for r in ours)
    assert all(r["stopped_ms"] is not None and r["borrowed_tid"] for r in ours), ours
    # ours is read on a heartbeat it did not borrow, and it is one of the target's heartbeats
    for r in ours:
        assert r["heartbeat_tid"] in r["heartbeat_tids"], r
        assert r["heartbeat_tid"] != r["borrowed_tid"], r
    assert all(g["status"].split()[0] in ("met", "GAP", "n/a") for g in section["goals"])
