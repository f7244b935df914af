"""Start, observe and stop real target processes for the tests."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from pathlib import Path

TARGET_SCRIPT = Path(__file__).with_name("target.py")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
READY_TIMEOUT = 20.0


class TargetProcess:
    """A child Python process that printed its 'ready' line."""

    def __init__(self, python: str, args: list[str], *, control: bool = False,
                 env: dict[str, str] | None = None, cwd: str | None = None,
                 user: int | None = None) -> None:
        self.python = python
        self.control = control
        full_env = dict(os.environ)
        full_env.pop("PYTHONPATH", None)
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [python, *args, *(["--control"] if control else [])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=full_env, cwd=cwd, user=user, group=user, extra_groups=[] if user else None,
        )
        self.pid = self.proc.pid
        self.ready_line = self._read_line(READY_TIMEOUT)
        if "ready" not in self.ready_line:
            self.proc.kill()
            self.proc.wait(10)
            stderr = self.stderr_text()
            self.kill()
            raise RuntimeError("target did not start: %r, stderr: %r" % (self.ready_line, stderr))

    @classmethod
    def mode(cls, python: str, mode: str, *, control: bool = False,
             env: dict[str, str] | None = None, user: int | None = None) -> TargetProcess:
        return cls(python, [str(TARGET_SCRIPT), mode], control=control, env=env, user=user)

    @classmethod
    def example(cls, python: str, name: str, *args: str) -> TargetProcess:
        return cls(python, [str(EXAMPLES / name), *args])

    def _read_line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        buf = b""
        while not buf.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                break
            chunk = os.read(fd, 1)
            if not chunk:
                break
            buf += chunk
        return buf.decode(errors="replace").strip()

    def command(self, cmd: str, timeout: float = 10.0) -> dict:
        """Ask the target's control thread (needs control=True)."""
        assert self.control and self.proc.stdin is not None
        self.proc.stdin.write((cmd + "\n").encode())
        self.proc.stdin.flush()
        line = self._read_line(timeout)
        if not line:
            raise RuntimeError("target did not answer %r; alive=%s stderr=%r"
                               % (cmd, self.alive(), self.stderr_text()))
        return json.loads(line)

    def state(self) -> dict:
        return self.command("state")

    def os_thread_count(self) -> int:
        return len(os.listdir("/proc/%d/task" % self.pid))

    def fd_count(self) -> int:
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def proc_state(self) -> str:
        with open("/proc/%d/stat" % self.pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]

    def wait_threads(self, count: int, timeout: float = 5.0) -> int:
        """Wait until the OS thread count is `count` (agent threads ending)."""
        deadline = time.monotonic() + timeout
        n = self.os_thread_count()
        while n != count and time.monotonic() < deadline:
            time.sleep(0.02)
            n = self.os_thread_count()
        return n

    def stderr_text(self) -> str:
        if self.alive():
            assert self.proc.stderr is not None
            fd = self.proc.stderr.fileno()
            out = b""
            while select.select([fd], [], [], 0)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                out += chunk
            return out.decode(errors="replace")
        assert self.proc.stderr is not None
        if self.proc.stderr.closed:
            return ""
        return self.proc.stderr.read().decode(errors="replace")

    def kill(self) -> None:
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            self.proc.kill()
        self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()

    def __enter__(self) -> TargetProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
