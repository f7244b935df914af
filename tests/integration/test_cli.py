"""The `inspector` command line against real targets: output, JSON, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.targets.process import TargetProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: dict[str, str] | None = None, user: int | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "inspector", *args], capture_output=True,
                          text=True, env=full_env, timeout=timeout, cwd=str(REPO), user=user)


def test_ps_lists_the_target_with_its_version(edge_python, spawn):
    target = spawn(edge_python, "sleep")
    out = run_cli("ps", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["ok"] is True
    row = next(r for r in doc["value"] if r["pid"] == target.pid)
    expected = subprocess.run([edge_python, "-c", "import sys; print('%d.%d' % "
                               "sys.version_info[:2])"], capture_output=True, text=True)
    assert row["python"] == expected.stdout.strip()
    assert "target.py" in row["command"]
    text = run_cli("ps")
    assert text.returncode == 0 and str(target.pid) in text.stdout


def test_stack_text_and_json(python, spawn):
    target = spawn(python, "sleep")
    out = run_cli("stack", str(target.pid))
    assert out.returncode == 0, out.stderr
    assert '"MainThread"' in out.stdout and "target.py" in out.stdout
    assert "time.sleep(3600)" in out.stdout
    doc = json.loads(run_cli("stack", str(target.pid), "--json").stdout)
    assert doc["ok"] is True
    main = next(t for t in doc["value"] if t["thread"]["is_main"])
    assert main["frames"][0]["function"] == "main"


def test_stack_locals_redacts_secrets(edge_python, spawn):
    target = spawn(edge_python, "deep")
    out = run_cli("stack", str(target.pid), "--locals")
    assert out.returncode == 0, out.stderr
    assert "n = 0" in out.stdout  # the innermost recurse() frame's local


def test_examples_answer(spawn, needs_gdb):
    for name in ("threaded_service.py", "asyncio_server.py", "cpu_worker.py"):
        target = TargetProcess.example(sys.executable, name)
        try:
            out = run_cli("stack", str(target.pid))
            assert out.returncode == 0, (name, out.stderr)
            assert "Thread" in out.stdout
        finally:
            target.kill()


@pytest.mark.parametrize("args, code, needle", [
    (["stack", "999999999"], 5, "no process with pid"),
    (["stack", "abc"], 2, "PID must be a number"),
    (["eval"], 2, "required"),
    (["frobnicate"], 2, "invalid choice"),
])
def test_bad_input_one_line_and_exit_code(args, code, needle):
    out = run_cli(*args)
    assert out.returncode == code
    assert needle in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr


def test_not_python_process_is_refused():
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        out = run_cli("stack", str(sleeper.pid))
        assert out.returncode == 5
        assert "not a CPython process" in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
    finally:
        sleeper.kill()
        sleeper.wait()


def test_without_gdb_the_default_injector_attaches_and_gdb_backends_refuse(
        edge_python, spawn, tmp_path):
    target = spawn(edge_python, "sleep")
    no_gdb = {"PATH": str(tmp_path)}
    # The default (native) injector needs no gdb
    out = run_cli("stack", str(target.pid), env=no_gdb)
    assert out.returncode == 0, out.stderr
    assert "time.sleep(3600)" in out.stdout
    # The gdb-based backends say what is missing and how to get it
    for backend in ("gdb", "pyrasite"):
        out = run_cli("stack", str(target.pid), "--injector", backend, env=no_gdb)
        assert out.returncode == 5
        assert "gdb is not installed" in out.stderr and "apt-get install gdb" in out.stderr
    assert target.alive()


def run_cli_as(uid: int, *args: str) -> tuple[int, str]:
    """Run the CLI's main() in a forked child that dropped to `uid`."""
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            os.close(read_fd)
            os.dup2(write_fd, 2)
            sys.stderr = open(2, "w", closefd=False)  # pytest replaced sys.stderr
            os.environ["INSPECTOR_AUDIT_LOG"] = "/dev/null"
            # A real operator's Python reads its own stdlib; this one's lives
            # where only root may read: load what the command path imports
            # lazily before dropping to `uid`.
            import importlib
            for name in ("argparse", "ctypes", "json", "logging", "mmap", "inspector._cliparser",
                         "inspector._inject.native", "inspector.render", "inspector.session"):
                importlib.import_module(name)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            from inspector.cli import main

            code = main(list(args))
        except BaseException:
            code = 99
        sys.stderr.flush()
        os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        err = f.read().decode()
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status), err


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as another user")
def test_unprivileged_user_cannot_attach_to_root_process(edge_python, spawn):
    # Given a root-owned target and an operator without ptrace rights over it
    target = spawn(edge_python, "sleep")
    # When that operator tries to attach
    code, err = run_cli_as(65534, "stack", str(target.pid))
    # Then: exit 5, one line naming the owner and the remedy, target untouched
    assert code == 5, err
    assert "belongs to user root" in err and "as root" in err
    assert len(err.strip().splitlines()) == 1
    assert target.alive() and target.stderr_text() == ""


def test_json_error_document(edge_python):
    out = run_cli("stack", "999999999", "--json")
    assert out.returncode == 5
    doc = json.loads(out.stdout)
    assert doc == {"ok": False, "error": {"kind": "attach", "message": doc["error"]["message"]}}


def test_tui_with_a_bad_pid_fails_like_every_command():
    out = run_cli("tui", "999999999")
    assert out.returncode == 5
    assert "no process with pid" in out.stderr and len(out.stderr.strip().splitlines()) == 1
