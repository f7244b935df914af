"""What an operator runs, through the installed `inspector` console script:
the README's monitoring recipes exactly as written, `--json` on every
command and error, `ps`, thread/frame mistakes, dump permissions."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.targets.process import TargetProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the venv's bin: the real `inspector` console script
SCRIPT = BIN / "inspector"


def inspector(*args: str, env: dict[str, str] | None = None,
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=full_env,
                          timeout=timeout, cwd=str(REPO))


def readme_blocks(section: str) -> list[str]:
    """The ```sh blocks of one README section, verbatim."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## " + section)
    end = text.find("\n## ", start + 1)
    body = text[start:end if end != -1 else None]
    return re.findall(r"```sh\n(.*?)```", body, flags=re.S)


def run_recipe(block: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env["PATH"] = "%s:%s" % (BIN, full_env.get("PATH", ""))
    full_env.update(env)
    return subprocess.run(["bash", "-c", block], capture_output=True, text=True, env=full_env,
                          timeout=120, cwd=str(REPO))


def prom(path: Path) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(path.read_text()):
        for s in family.samples:
            out.setdefault(s.name, {})[s.labels.get("check", "")] = s.value
    return out


@pytest.fixture
def service(needs_gdb):
    target = TargetProcess.example(sys.executable, "threaded_service.py")
    time.sleep(0.5)
    yield target
    inspector("detach", str(target.pid))
    target.kill()


def test_readme_nagios_recipe_as_written(service):
    (block,) = [b for b in readme_blocks("Health probes and monitoring") if "Nagios" in b]
    out = run_recipe(block, PID=str(service.pid), CHECKS=str(REPO / "examples/checks.toml"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "resident agent listening" in out.stdout  # from `attach --keep`
    plugin_line = out.stdout.strip().splitlines()[-1]
    assert plugin_line.startswith("INSPECTOR OK - 4 checks OK | queue_depth="), out.stdout


def test_readme_prometheus_recipe_publishes_every_status(service, tmp_path):
    (block,) = [b for b in readme_blocks("Health probes and monitoring") if "Prometheus" in b]
    textfile = tmp_path / "textfile"
    textfile.mkdir()
    final = textfile / "inspector.prom"
    critical = tmp_path / "critical.toml"
    critical.write_text('[[check]]\nname = "queue_depth"\nexpr = "len(queue.queue)"\n'
                        'warn = -2\ncrit = -1\n')
    env = {"PID": str(service.pid), "TEXTFILE_DIR": str(textfile)}

    # OK: published, exit 0, nothing on stdout
    out = run_recipe(block, CHECKS=str(REPO / "examples/checks.toml"), **env)
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    metrics = prom(final)
    assert metrics["inspector_probe_status"][""] == 0
    assert set(metrics["inspector_check_status"]) == {"queue_depth", "workers_alive",
                                                       "cache_hit_ratio", "timeout_sane"}
    assert stat.S_IMODE(final.stat().st_mode) == 0o644

    # CRITICAL: the file says so (the old `> tmp && mv` recipe kept the OK data)
    out = run_recipe(block, CHECKS=str(critical), **env)
    assert out.returncode == 2, out.stderr
    metrics = prom(final)
    assert metrics["inspector_probe_status"][""] == 2
    assert metrics["inspector_check_status"] == {"queue_depth": 2}

    # UNKNOWN (the target is gone): published too, with success 0
    inspector("detach", str(service.pid))
    service.kill()
    out = run_recipe(block, CHECKS=str(REPO / "examples/checks.toml"), **env)
    assert out.returncode == 3
    metrics = prom(final)
    assert metrics["inspector_probe_status"][""] == 3
    assert metrics["inspector_probe_success"][""] == 0
    assert "inspector_check_status" not in metrics
    # and nothing else is left in the collector's directory
    assert sorted(p.name for p in textfile.iterdir()) == ["inspector.prom"]


def test_prometheus_file_on_a_usage_error_is_unknown(tmp_path):
    final = tmp_path / "inspector.prom"
    out = inspector("probe", "1", "--file", str(tmp_path / "missing.toml"),
                    "--prometheus-file", str(final))
    assert out.returncode == 3
    assert "cannot read checks file" in out.stderr
    assert prom(final)["inspector_probe_status"][""] == 3


def test_prometheus_file_in_a_missing_directory_is_one_line(tmp_path):
    out = inspector("probe", "1", "--check", "a=1 == 1",
                    "--prometheus-file", str(tmp_path / "no" / "x.prom"))
    assert out.returncode == 3
    assert "cannot write" in out.stderr and len(out.stderr.strip().splitlines()) == 1


# -- ps -----------------------------------------------------------------------

LONG_TAIL = "tail-" + "x" * 150 + "-END"


def test_ps_cpu_is_sampled_and_command_not_cut_when_piped(python, spawn):
    busy = spawn(python, "busy")
    sleeper = TargetProcess(python, ["-c", "import time; print('ready', flush=True); "
                                     "time.sleep(120)", LONG_TAIL])
    try:
        doc = json.loads(inspector("ps", "--json").stdout)
        rows = {r["pid"]: r for r in doc["value"]}
        # unsampled, every row was 0.0; a loaded machine gives the spinner less than
        # a core, so only "clearly not zero, and more than the sleeper" is asked
        assert rows[busy.pid]["cpu_percent"] > 5, rows[busy.pid]
        assert rows[sleeper.pid]["cpu_percent"] < rows[busy.pid]["cpu_percent"]
        # a pipe has no width: the whole command line
        env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
        piped = subprocess.run([str(SCRIPT), "ps"], capture_output=True, text=True, env=env,
                               timeout=60).stdout
        line = next(x for x in piped.splitlines() if x.lstrip().startswith(str(sleeper.pid)))
        assert line.endswith(LONG_TAIL)
        busy_line = next(x for x in piped.splitlines()
                         if x.lstrip().startswith(str(busy.pid)))
        assert float(busy_line.split()[3]) > 5, busy_line
        # COLUMNS is honoured
        narrow = inspector("ps", env={"COLUMNS": "100"}).stdout
        line = next(x for x in narrow.splitlines() if x.lstrip().startswith(str(sleeper.pid)))
        assert len(line) == 100 and not line.endswith("-END")
    finally:
        sleeper.kill()


# -- --json: one document on stdout for every command and every error ----------------

def _one_error_doc(out: subprocess.CompletedProcess[str], kind: str) -> dict:
    doc = json.loads(out.stdout)  # exactly one document: json.loads refuses trailing data
    assert doc["ok"] is False and doc["error"]["kind"] == kind, doc
    assert doc["error"]["message"] in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    return doc


@pytest.mark.parametrize("args, code", [
    (["stack", "abc", "--json"], 2),
    (["eval", "--json"], 2),
    (["frobnicate", "--json"], 2),
    (["--json"], 2),
    (["census", "1", "--top", "-3", "--json"], 2),
    (["probe", "abc", "--check", "a=1", "--json"], 3),
    (["stack", "1", "--bogus", "--json"], 2),
    (["tui", "1", "--json"], 2),
    (["show", "/nonexistent/dump.json", "--json"], 2),
])
def test_usage_errors_are_one_json_document(args, code):
    out = inspector(*args)
    assert out.returncode == code, out.stderr
    _one_error_doc(out, "usage")


def test_probe_json_has_ok_and_value(service):
    out = inspector("probe", str(service.pid), "--check", "q=len(queue.queue) >= 0", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["ok"] is True and doc["value"]["status"] == "OK"
    assert doc["value"]["checks"][0]["name"] == "q"
    # a probe that could not run: ok false, the error, and still the UNKNOWN status
    out = inspector("probe", "999999999", "--check", "q=1 == 1", "--json")
    assert out.returncode == 3
    doc = json.loads(out.stdout)
    assert doc["ok"] is False and doc["error"]["kind"] == "attach"
    assert doc["value"]["status"] == "UNKNOWN"
    # a usage error of probe's own (no checks)
    out = inspector("probe", "1", "--json")
    assert out.returncode == 3
    assert json.loads(out.stdout)["error"]["kind"] == "usage"


def test_dump_json_and_private_file(service, tmp_path):
    out = inspector("dump", str(service.pid), "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["ok"] is True and doc["value"]["format"]
    assert any(t["thread"]["name"] == "MainThread" for t in doc["value"]["threads"])
    # -o: a 0600 file (it holds locals), even if a 0644 one was there
    path = tmp_path / "dump.json"
    path.write_text("old")
    path.chmod(0o644)
    out = inspector("dump", str(service.pid), "--locals", "-o", str(path), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["value"]["path"] == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    shown = inspector("show", str(path), "--json")
    assert json.loads(shown.stdout)["value"]["target"]["pid"] == service.pid
    # a symbolic link is not followed
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "elsewhere.json")
    out = inspector("dump", str(service.pid), "-o", str(link), "--json")
    assert out.returncode == 2
    assert "symbolic link" in _one_error_doc(out, "usage")["error"]["message"]
    assert not (tmp_path / "elsewhere.json").exists()


# -- --thread / --frame mistakes; the main thread without `threading` ----------------

def test_thread_and_frame_mistakes_exit_2_and_list_what_exists(edge_python, spawn):
    target = spawn(edge_python, "threads")
    pid = str(target.pid)
    out = inspector("eval", pid, "1", "--thread", "worker-nope")
    assert out.returncode == 2, out.stderr
    line = out.stderr.strip()
    assert "no thread 'worker-nope'" in line and "'MainThread'" in line, line
    assert "`threads`" not in line and len(line.splitlines()) == 1
    assert "inspector-agent" not in line  # our own thread is not offered
    out = inspector("eval", pid, "1", "--thread", "MainThread", "--frame", "99", "--json")
    assert out.returncode == 2, out.stderr
    message = _one_error_doc(out, "usage")["error"]["message"]
    assert message.startswith("thread 'MainThread' has no frame 99; its "), message
    assert "0 main, 1 <module> (0 = innermost)" in message, message
    out = inspector("stack", pid, "--thread", "12345")
    assert out.returncode == 2 and "no thread 12345" in out.stderr, out.stderr
    # the right names work
    ok = inspector("eval", pid, "1 + 1", "--thread", "MainThread", "--frame", "0", "--json")
    assert json.loads(ok.stdout)["value"]["text"] == "2", ok.stderr
    assert target.alive()


NO_THREADING = ("import sys, time\n"
                "assert 'threading' not in sys.modules\n"
                "print('ready', flush=True)\n"
                "def spin():\n"
                "    while True:\n"
                "        sum(range(10000))\n"
                "spin()\n")


def test_main_thread_of_a_target_without_threading(edge_python, needs_gdb):
    target = TargetProcess(edge_python, ["-c", NO_THREADING])
    try:
        doc = json.loads(inspector("stack", str(target.pid), "--json").stdout)
        (main,) = [s["thread"] for s in doc["value"] if s["thread"]["is_main"]]
        assert main["name"] == "MainThread" and main["native_id"] == target.pid, main
        text = inspector("stack", str(target.pid)).stdout
        assert '"MainThread" native %d (main)' % target.pid in text, text
        out = inspector("eval", str(target.pid), "1", "--thread", "MainThread")
        assert out.returncode == 0, out.stderr
    finally:
        target.kill()


def test_example_cpu_worker_main_thread(needs_gdb):
    target = TargetProcess.example(sys.executable, "cpu_worker.py")
    try:
        text = inspector("stack", str(target.pid)).stdout
        assert '"MainThread" native %d (main)' % target.pid in text, text
    finally:
        target.kill()


# -- smaller items ------------------------------------------------------------------

def test_fractional_timeout_is_reported_as_given(edge_python, spawn):
    target = spawn(edge_python, "gilhog")
    out = inspector("stack", str(target.pid), "--timeout", "0.5")
    assert out.returncode == 5
    assert "within 0.5 s" in out.stderr, out.stderr
    assert target.alive()


def test_one_check_ok_and_second_detach_is_a_no_op(service):
    pid = str(service.pid)
    out = inspector("probe", pid, "--check", "q=len(queue.queue) >= 0", "--keep")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("INSPECTOR OK - 1 check OK |"), out.stdout
    first = inspector("detach", pid)
    assert first.returncode == 0 and "resident agent stopped" in first.stdout, first.stderr
    again = inspector("detach", pid, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {"ok": True, "value": {"pid": service.pid,
                                                              "stopped": False}}
    assert "nothing to stop" in inspector("detach", pid).stdout


def test_api_close_and_value_printing(service):
    import inspector as api

    session = api.attach(service.pid)
    try:
        value = session.eval("{'a': 1}")
        assert str(value) == "{a: 1}"  # as `inspector eval` prints it
        assert repr(value) == "Value(dict: {a: 1})"
    finally:
        session.close()
    assert session.closed
    with pytest.raises(api.TargetLost):
        session.eval("1")
