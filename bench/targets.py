"""Start, drive and observe `bench/target.py` processes from the bench."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from pathlib import Path

TARGET_SCRIPT = Path(__file__).with_name("target.py")
READY_TIMEOUT = 120.0  # building 5M objects takes a while on a slow machine

class Target:
    """One running target process; `command()` speaks its line protocol."""

    def __init__(self, python: str, *, heartbeat: bool = False, heartbeats: int = 0,
                 threads: int = 0, objects: int = 0, work: bool = False) -> None:
        args = [python, str(TARGET_SCRIPT)]
        if heartbeat or heartbeats:
            args += ["--heartbeats", str(max(heartbeats, 1))]
        if work:
            args.append("--work")
        if threads:
            args += ["--threads", str(threads)]
        if objects:
            args += ["--objects", str(objects)]
        env = dict(os.environ)
        for name in ("PYTHONPATH", "PYTHONPYCACHEPREFIX"):
            env.pop(name, None)
        self.python = python
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env, cwd="/")
        self.pid = self.proc.pid
        line = self._read_line(READY_TIMEOUT)
        if line != "ready":
            self.close()
            raise RuntimeError("bench target did not start (%r)" % line)

    def _read_line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        buf = b""
        while not buf.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("bench target %d did not answer" % self.pid)
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError("bench target %d exited (rc=%s)" % (self.pid, self.proc.poll()))
            buf += chunk
        return buf.decode().strip()

    def command(self, line: str, timeout: float = 60.0) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()
        reply = self._read_line(timeout)
        if reply.startswith("error"):
            raise RuntimeError("bench target: %s" % reply)
        return reply

    # -- heartbeat ------------------------------------------------------------

    def reset(self) -> None:
        self.command("reset")

    def gap_ms(self) -> float:
        return float(self.command("gap"))

    def gap_by_thread(self) -> dict[int, float]:
        """Largest gap (ms) since reset of each heartbeat thread, by its tid."""
        out = {}
        for word in self.command("gap_by_thread").split():
            tid, ms = word.split(":")
            out[int(tid)] = float(ms)
        return out

    def heartbeat_tids(self) -> list[int]:
        return sorted(self.gap_by_thread())

    def unborrowed_gap_ms(self) -> float:
        """The smallest of the heartbeats' largest gaps since reset. An injector
        borrows at most one thread, so with two heartbeats this is a gap that
        a thread which was not borrowed saw (for a tool run where we cannot
        tell which thread was borrowed, e.g. the CLI)."""
        return min(self.gap_by_thread().values())

    def gap_events(self, exclude: int | None = None) -> list[tuple[float, float]]:
        """(monotonic end time, gap ms) of every gap of at least 4 ms since
        reset, seen by any heartbeat but the thread `exclude`."""
        out = []
        for word in self.command("gaps").split():
            t, ms, tid = word.split(":")
            if exclude is None or int(tid) != exclude:
                out.append((float(t), float(ms)))
        return out

    def ops_per_second(self, seconds: float) -> float:
        return float(self.command("ops %r" % seconds, timeout=seconds + 30.0))

    # -- memory (read from outside) -------------------------------------------

    def status_kb(self, field: str) -> int:
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise KeyError(field)

    def reset_peak_rss(self) -> bool:
        """Reset VmHWM to the current RSS (Linux >= 4.0, needs ptrace rights)."""
        try:
            with open("/proc/%d/clear_refs" % self.pid, "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    def state(self) -> str:
        """The State line of /proc/PID/status, e.g. "S (sleeping)"."""
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("State:"):
                    return line.split(":", 1)[1].strip()
        return "?"

    def ensure_running(self) -> str | None:
        """SIGCONT the target if it is stopped; return the state it was in, else None."""
        state = self.state()
        if state.startswith("T"):
            os.kill(self.pid, signal.SIGCONT)
            return state
        return None

    def thread_cpu_ms(self, tid: int) -> float:
        """CPU time one thread of the target has used (ns precision, schedstat)."""
        try:
            with open("/proc/%d/task/%d/schedstat" % (self.pid, tid)) as f:
                return int(f.read().split()[0]) / 1e6
        except (OSError, ValueError, IndexError):
            return float("nan")

    def nice(self) -> int:
        with open("/proc/%d/stat" % self.pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[16])

    def threads(self) -> int:
        return len(os.listdir("/proc/%d/task" % self.pid))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(b"quit\n")
                self.proc.stdin.flush()
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
