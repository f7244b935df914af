"""A Docker-shaped target: its own PID, mount, UTS and network namespaces and a
chroot onto a tmpfs that exists only in its mount namespace, with the
interpreter bind-mounted there. The file it mapped has no path the host can
open (the maps line names a directory that is empty on the host); inspector
reads it through /proc/PID/map_files. Inspected from the host by host PID,
and from a sidecar that shares only its PID namespace (and mounts its own
/proc, as a sidecar container does)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TARGET_CODE = ("import os, time; print('ready', os.getpid(), flush=True); x = 41\n"
               "while True: time.sleep(1)")
SETUP = """set -e
mount -t tmpfs none "$ROOT"
mkdir -p "$ROOT/usr" "$ROOT/py" "$ROOT/tmp" "$ROOT/proc"
chmod 1777 "$ROOT/tmp"
mount --bind /usr "$ROOT/usr"
ln -s usr/lib "$ROOT/lib"; ln -s usr/lib64 "$ROOT/lib64"; ln -s usr/bin "$ROOT/bin"
mount --bind "$PREFIX" "$ROOT/py"
mount -t proc proc "$ROOT/proc"
exec env LD_LIBRARY_PATH=/py/lib chroot "$ROOT" "$PYTHON" -c "$CODE"
"""


def _container_python(python: str) -> tuple[str, str]:
    """(prefix to bind-mount at /py, the interpreter's path inside)."""
    real = os.path.realpath(python)
    if real.startswith("/usr/"):
        return "", real
    prefix = str(Path(real).parents[1])
    return prefix, "/py/" + os.path.relpath(real, prefix)


@pytest.fixture
def container(edge_python, needs_ptrace, tmp_path):
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("nsenter"):
        pytest.skip("needs root, unshare and nsenter")
    prefix, inner = _container_python(edge_python)
    root = tmp_path / "root"
    root.mkdir()
    env = dict(os.environ, ROOT=str(root), PREFIX=prefix or "/nonexistent", PYTHON=inner,
               CODE=TARGET_CODE)
    setup = SETUP if prefix else SETUP.replace('mount --bind "$PREFIX" "$ROOT/py"\n', "")
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "--pid",
                             "--uts", "--net", "--fork", "sh", "-c", setup], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline().decode()
    if not line.startswith("ready 1"):
        proc.kill()
        proc.wait(10)
        error = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
        raise AssertionError("container target did not start: %r %r" % (line, error))
    host_pid = _host_pid_of(proc.pid)
    yield host_pid, str(root)
    os.kill(host_pid, 9)  # the PID namespace's init ignores SIGTERM
    proc.wait(10)
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()


def _host_pid_of(unshare_pid: int) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = Path("/proc/%d/task/%d/children" % (unshare_pid, unshare_pid)).read_text()
        if children.split():
            return int(children.split()[0])
        time.sleep(0.01)
    raise AssertionError("no target in the namespace")


def _mapped_interpreter(pid: int) -> str:
    for line in Path("/proc/%d/maps" % pid).read_text().splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and "python" in parts[5] and "x" in parts[1]:
            return parts[5]
    raise AssertionError("no python mapping")


def test_container_shaped_target_from_the_host(container):
    pid, _root = container
    mapped = _mapped_interpreter(pid)
    # Given an interpreter whose mapped path opens nowhere from here
    assert not os.path.exists(mapped)
    assert not os.path.exists("/proc/%d/root%s" % (pid, mapped))
    # When the host inspects it by its host PID
    out = subprocess.run([sys.executable, "-m", "inspector", "eval", str(pid), "x + 1"],
                         capture_output=True, text=True, cwd=str(REPO), timeout=60)
    # Then it answers, and the target is left as it was
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "42"
    assert len(os.listdir("/proc/%d/task" % pid)) == 1 or _wait_one_thread(pid)


def test_container_shaped_target_from_a_sidecar(container):
    pid, _root = container
    script = ("mount -t proc proc /proc && exec %s -m inspector eval 1 'x + 1'"
              % sys.executable)
    out = subprocess.run(["nsenter", "-t", str(pid), "--pid", "--", "unshare", "--mount",
                          "--propagation", "private", "--fork", "sh", "-c", script],
                         capture_output=True, text=True, cwd=str(REPO), timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "42"
    assert _wait_one_thread(pid)


def _wait_one_thread(pid: int) -> bool:
    deadline = time.monotonic() + 5
    while len(os.listdir("/proc/%d/task" % pid)) != 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    return len(os.listdir("/proc/%d/task" % pid)) == 1
