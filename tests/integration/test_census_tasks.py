"""Object census, asyncio tasks, memory summary and dumps against real targets.

Targets: examples/leaky_service.py (leaks LeakedRecord at ~100/s),
examples/asyncio_server.py (ticker, client, slow_job, handle tasks) and
tests/targets/census_target.py (hostile objects, a million records, a heartbeat).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

import inspector
from inspector.census import census_diff
from inspector.dump import dump_to_json, load_dump

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[2]
CENSUS_TARGET = str(REPO / "tests" / "targets" / "census_target.py")


def run_cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "inspector", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=str(REPO))


def test_census_diff_finds_the_leak(edge_python, targets):
    # Given a service that leaks ~100 LeakedRecord objects per second
    target = targets(edge_python, [str(REPO / "examples" / "leaky_service.py")])
    # When two censuses are taken 2 s apart in one session
    with inspector.attach(target.pid) as session:
        before = session.census(0)
        time.sleep(2.0)
        after = session.census(0)
    deltas = census_diff(before, after, top=5)
    # Then LeakedRecord is among the top growers, by about 200
    assert before.complete and after.complete and before.has_all_types
    leak = next((d for d in deltas if d.type == "__main__.LeakedRecord"), None)
    assert leak is not None, deltas
    assert 100 <= leak.count_delta <= 400, leak
    assert leak.size_delta > 0
    # And a short-lived type (Session objects are created and dropped) does not grow
    assert all(d.type != "__main__.Session" or d.count_delta < 10 for d in deltas)
    assert target.alive() and target.stderr_text() == ""


def test_census_diff_cli(edge_python, targets):
    target = targets(edge_python, [str(REPO / "examples" / "leaky_service.py")])
    out = run_cli("census", str(target.pid), "--diff-after", "1.5", "--top", "5", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["ok"] is True and doc["value"]["interval"] >= 1.5
    growth = {g["type"]: g for g in doc["value"]["growth"]}
    assert growth["__main__.LeakedRecord"]["count_delta"] >= 75
    text = run_cli("census", str(target.pid), "--diff-after", "1", "--top", "5")
    assert text.returncode == 0, text.stderr
    assert "Growth over" in text.stdout and "__main__.LeakedRecord" in text.stdout


def test_asyncio_tasks_of_the_example(edge_python, targets):
    # Given the asyncio example (a server, a client, a ticker and a slow job)
    target = targets(edge_python, [str(REPO / "examples" / "asyncio_server.py")])
    time.sleep(0.3)
    # When we list its tasks
    with inspector.attach(target.pid) as session:
        tasks = session.tasks()
        main_thread = next(t for t in session.threads() if t.is_main)
    by_coro = {t.coroutine: t for t in tasks}
    # Then every coroutine of the example is there, pending, with its await chain
    for name in ("main", "ticker", "client", "slow_job", "handle", "Server.serve_forever"):
        assert name in by_coro, sorted(by_coro)
        assert by_coro[name].state == "pending"
    ticker = by_coro["ticker"]
    assert [link.name for link in ticker.chain[:2]] == ["ticker", "sleep"]
    assert ticker.chain[0].file.endswith("asyncio_server.py") and ticker.chain[0].line > 0
    assert ticker.chain[-1].kind == "awaitable"
    handle = by_coro["handle"]
    assert [link.name for link in handle.chain[:2]] == ["handle", "StreamReader.readline"]
    # main waits (through gather) on the three background tasks
    waited = {t.coroutine for t in tasks if t.id in by_coro["main"].awaiting}
    assert {"ticker", "client", "slow_job"} <= waited
    # and the loop runs on the main thread
    loop = ticker.loop
    assert loop is not None and loop.thread == main_thread.ident and loop.running
    assert target.alive() and target.stderr_text() == ""


def test_tasks_cli_draws_a_tree(edge_python, targets):
    target = targets(edge_python, [str(REPO / "examples" / "asyncio_server.py")])
    out = run_cli("tasks", str(target.pid))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Event loop ")
    for needle in ("(T) ", " ticker ", " client ", " slow_job ", "└── "):
        assert needle in out.stdout, out.stdout
    doc = json.loads(run_cli("tasks", str(target.pid), "--json").stdout)
    assert doc["ok"] is True
    assert any(t["chain"][0]["name"] == "ticker" for t in doc["value"])


def test_memory_summary_and_nothing_imported(edge_python, spawn):
    # Given a target that never imported gc, tracemalloc or asyncio
    target = spawn(edge_python, "sleep", control=True)
    before = target.state()
    # When we ask for the memory summary, a census and the tasks
    with inspector.attach(target.pid) as session:
        memory = session.memory()
        session.census(3)
        tasks = session.tasks()
        loaded = session.eval("[m for m in modules() if m in ('gc', 'tracemalloc', "
                              "'asyncio', '_tracemalloc')]").to_python()
    # Then the summary has the collector's state and the process's numbers
    assert memory.gc_enabled is True
    assert len(memory.generations) == 3 and len(memory.gc_thresholds) == 3
    assert memory.generations[0].threshold == memory.gc_thresholds[0] > 0
    assert memory.garbage == 0
    assert memory.tracemalloc is None  # never imported: not started, not imported
    assert memory.process is not None and memory.process.rss > 0
    assert memory.process.num_threads >= 2
    # And nothing was imported into the target
    assert tasks == [] and loaded == []
    after = target.state()
    assert after["canary"] == [] and after["main_names"] == before["main_names"]


def test_tracemalloc_top_sites_when_the_target_traces(edge_python, targets):
    target = targets(edge_python, [CENSUS_TARGET, "--hostile", "0", "--tracemalloc"])
    with inspector.attach(target.pid) as session:
        memory = session.memory(tracemalloc_top=5)
    tm = memory.tracemalloc
    assert tm is not None and tm.tracing is True
    assert tm.current and tm.peak and tm.peak >= tm.current
    assert 0 < len(tm.top) <= 5
    assert any(site.file.endswith("census_target.py") for site in tm.top), tm.top


def test_hostile_objects_are_counted_without_running_them(python, targets):
    # Given objects whose __sizeof__/__repr__/__eq__/__hash__/__getattr__/__del__
    # and metaclass hooks all record into a canary list
    target = targets(python, [CENSUS_TARGET, "--hostile", "500"], control=True)
    assert target.state()["canary"] == []
    # When a census runs
    with inspector.attach(target.pid) as session:
        census = session.census(0)
    # Then they are counted, under their real name, and none of their code ran
    row = census.by_type().get("__main__.Hostile")
    assert row is not None and row.count == 500
    assert row.size > 500  # object.__sizeof__, not the hostile __sizeof__ (1)
    assert target.state()["canary"] == []


@pytest.mark.slow
def test_census_of_a_million_objects_keeps_the_target_running(edge_python, targets):
    # Given a target holding a million objects and a thread beating every 1 ms
    target = targets(edge_python, [CENSUS_TARGET, "--objects", "1000000"], control=True)
    time.sleep(0.3)
    with inspector.attach(target.pid) as session:
        target.command("reset")
        # When a census walks them
        census = session.census(5)
        state = target.state()
    # Then it finishes within its budget, and the heartbeat kept going meanwhile
    assert census.complete and census.total_objects >= 1_000_000
    assert census.entries[0].type == "__main__.Record" and census.entries[0].count == 1_000_000
    assert census.duration < 10.0
    assert state["beats"] >= 20, state
    assert state["max_gap"] < 1.0, state  # coarse: no stall of the whole walk
    print("\n%s: census of %d objects took %.3f s; gc.get_objects %.1f ms; longest hold "
          "%.1f ms; heartbeat %d beats, longest gap %.1f ms" % (
              edge_python, census.total_objects, census.duration, census.list_pause * 1e3,
              census.max_hold * 1e3, state["beats"], state["max_gap"] * 1e3))


def test_dump_round_trips_through_show(edge_python, targets, tmp_path):
    # Given an asyncio service with a secret-looking local in a frame
    target = targets(edge_python, [str(REPO / "examples" / "asyncio_server.py")])
    secret_target = targets(edge_python, [CENSUS_TARGET, "--hostile", "3"])
    path = tmp_path / "dump.json"
    # When we dump it (with locals and a census) and render the file offline
    out = run_cli("dump", str(target.pid), "--locals", "--census", "5")
    assert out.returncode == 0, out.stderr
    path.write_text(out.stdout)
    shown = run_cli("show", str(path))
    # Then the file is one JSON document with a format version ...
    doc = json.loads(out.stdout)
    assert doc["format"] == "inspector-dump" and doc["version"] == 1
    assert doc["target"]["pid"] == target.pid and doc["errors"] == {}
    # ... that reads back into the same data
    assert dump_to_json(load_dump(out.stdout)) == doc
    # ... and renders threads, tasks, memory and the census without the target
    assert shown.returncode == 0, shown.stderr
    for needle in ("Dump of process %d" % target.pid, "== Threads ==", '"MainThread"',
                   "== asyncio tasks ==", " ticker ", "== Memory ==", "Garbage collector",
                   "== Object census ==", "objects tracked by the GC"):
        assert needle in shown.stdout, needle
    # And locals are redacted by default
    secret = run_cli("dump", str(secret_target.pid), "--locals", "-o", str(tmp_path / "s.json"))
    assert secret.returncode == 0, secret.stderr
    text = (tmp_path / "s.json").read_text()
    assert "api_token" in text and "tok-SECRET-VALUE" not in text
    assert "<redacted>" in run_cli("show", str(tmp_path / "s.json")).stdout


@pytest.mark.parametrize("content, needle", [
    ("not json at all", "is not JSON"),
    ('{"format": "something-else"}', "is not an inspector dump"),
    ('{"format": "inspector-dump", "version": 99}', "newer inspector"),
    ('{"format": "inspector-dump", "version": 1, "created": 5}', "malformed"),
])
def test_show_refuses_a_malformed_file_in_one_line(tmp_path, content, needle):
    path = tmp_path / "bad.json"
    path.write_text(content)
    out = run_cli("show", str(path))
    assert out.returncode == 2
    assert needle in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr


def test_census_of_a_missing_process_is_exit_5():
    out = run_cli("census", "999999999", "--json")
    assert out.returncode == 5
    assert json.loads(out.stdout)["ok"] is False
