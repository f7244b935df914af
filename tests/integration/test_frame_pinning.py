"""`eval --frame-id` / `--expect-function` and `stack --ids` against a busy
thread (issue 15 item 7): the query runs in the call the operator named, or
fails with exit 7 naming what runs there now / saying that the call returned."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.integration.test_cli import run_cli
from tests.targets.process import TargetProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
SCRIPT = Path(__file__).resolve().parents[1] / "targets" / "busy_frames_target.py"
ID_RE = re.compile(r"#(\d+) +(\S+) \(.*\)  id=(0x[0-9a-f]+)$")


@pytest.fixture
def busy(edge_python, needs_ptrace):
    target = TargetProcess(edge_python, [str(SCRIPT)])
    yield target
    target.kill()


def _frame_ids(pid: int, thread: str) -> dict[str, tuple[int, str]]:
    """qualname -> (index, id) from `stack --ids`, as an operator copies them."""
    out = run_cli("stack", str(pid), "--thread", thread, "--ids")
    assert out.returncode == 0, out.stderr
    found = {}
    for line in out.stdout.splitlines():
        m = ID_RE.search(line)
        if m:
            found[m.group(2)] = (int(m.group(1)), m.group(3))
    return found


def test_stack_ids_are_opt_in_and_name_the_call_eval_runs_in(busy):
    plain = run_cli("stack", str(busy.pid), "--thread", "worker")
    assert plain.returncode == 0 and "id=0x" not in plain.stdout
    ids = _frame_ids(busy.pid, "worker")
    index, serve_id = ids["serve"]
    assert index in (1, 2)
    # Whatever runs at frame 0 meanwhile, the id names serve()'s call
    for _ in range(3):
        out = run_cli("eval", str(busy.pid), "--thread", "worker", "--frame-id", serve_id,
                      "served[0]", "--json")
        assert out.returncode == 0, out.stderr
        assert isinstance(json.loads(out.stdout)["value"]["value"], int)
    # The JSON stack carries the same id, in decimal: both spellings work
    doc = json.loads(run_cli("stack", str(busy.pid), "--thread", "worker", "--json").stdout)
    decimal = next(f["frame_id"] for f in doc["value"][0]["frames"]
                   if f["function"] == "serve")
    assert "0x%x" % decimal == serve_id
    out = run_cli("eval", str(busy.pid), "--thread", "worker", "--frame-id", str(decimal),
                  "served[0] >= 0")
    assert out.returncode == 0 and out.stdout.strip() == "True", out.stderr


def test_expect_function_names_what_runs_at_frame_n(busy):
    # serve() is never frame 0 of the worker: run_steps or a step runs there
    out = run_cli("eval", str(busy.pid), "--thread", "worker", "--frame", "0",
                  "--expect-function", "serve", "served")
    assert out.returncode == 7, out.stdout + out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert re.search(r"frame 0 of thread 'worker' runs (run_steps|step_a|step_b) \(.*\) now, "
                     r"not serve \(serve is frame [12] now\)", out.stderr), out.stderr
    assert ("`inspector stack %d --thread 'worker' --ids`" % busy.pid) in out.stderr
    # The main thread waits in phase_one(): frame 0 is that call, checked and pinned
    ok = run_cli("eval", str(busy.pid), "--thread", "MainThread", "--frame", "0",
                 "--expect-function", "phase_one", "marker")
    assert ok.returncode == 0 and ok.stdout.strip() == "first", ok.stderr
    doc = json.loads(run_cli("eval", str(busy.pid), "--thread", "worker", "--frame", "9",
                             "--expect-function", "serve", "1", "--json").stdout)
    assert doc["ok"] is False and doc["error"]["kind"] == "frame_moved"
    assert "has no frame 9 now" in doc["error"]["message"]


def test_a_frame_id_of_another_thread_names_that_thread(busy):
    _, serve_id = _frame_ids(busy.pid, "worker")["serve"]
    out = run_cli("eval", str(busy.pid), "--thread", "MainThread", "--frame-id", serve_id,
                  "served")
    assert out.returncode == 2, out.stdout + out.stderr
    assert re.search(r"frame id %s is a call on thread 'worker' \(ident (\d+)\), not on thread "
                     r"'MainThread': pass --thread \1$" % serve_id, out.stderr.strip()), out.stderr


def test_a_returned_call_is_exit_7_and_named(busy):
    ids = _frame_ids(busy.pid, "MainThread")
    index, phase_one = ids["phase_one"]
    assert busy.proc.stdin is not None
    busy.proc.stdin.write(b"go\n")
    busy.proc.stdin.flush()
    assert busy._read_line(10) == "phase two"
    deadline = time.monotonic() + 10
    while "phase_two" not in _frame_ids(busy.pid, "MainThread"):
        assert time.monotonic() < deadline
    out = run_cli("eval", str(busy.pid), "--thread", "MainThread", "--frame-id", phase_one,
                  "--expect-function", "phase_one", "marker")
    assert out.returncode == 7, out.stdout + out.stderr
    assert ("the call of phase_one with frame id %s has returned" % phase_one) in out.stderr
    # --frame N with the id: the function now at N is named
    out = run_cli("eval", str(busy.pid), "--thread", "MainThread", "--frame", str(index),
                  "--frame-id", phase_one, "marker")
    assert out.returncode == 7, out.stdout + out.stderr
    assert re.search(r"frame %d of thread 'MainThread' runs \S+ \(.*\) now, not the call %s "
                     r"\(that call has returned\)" % (index, phase_one), out.stderr), out.stderr


@pytest.mark.parametrize("args, message", [
    (["--frame-id", "0x10", "1"], "--frame-id needs --thread"),
    (["--expect-function", "serve", "1"], "--expect-function needs --thread"),
    (["--thread", "worker", "--frame-id", "nope", "1"], "a frame id is a number"),
])
def test_frame_option_usage_errors(args, message):
    out = run_cli("eval", "1", *args)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
