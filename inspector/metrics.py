"""Process metrics sampled from outside the target (psutil; nothing injected).

    sampler = ProcessSampler(pid)
    s = sampler.sample()      # ProcessSample(cpu_percent, rss, threads, fds, ...)

CPU percentages are deltas between two samples, so the first sample reports
0.0. Per-thread CPU lets a UI mark the thread that is burning CPU (the one
most likely holding the GIL).
"""

from __future__ import annotations

import time

import psutil

from ._record import field, record
from .errors import TargetLost


@record
class ProcessSample:
    pid: int
    at: float  # time.monotonic()
    cpu_percent: float  # of one core, summed over threads
    rss: int  # bytes
    num_threads: int
    num_fds: int
    uptime: float  # seconds since the process started
    thread_cpu: dict[int, float] = field(default_factory=dict)  # native id -> % of one core

    @property
    def busiest_thread(self) -> int | None:
        """Native id of the thread using >= 50% of a core, if exactly one is."""
        busy = [tid for tid, pct in self.thread_cpu.items() if pct >= 50.0]
        return busy[0] if len(busy) == 1 else None


class ProcessSampler:
    def __init__(self, pid: int) -> None:
        try:
            self.process = psutil.Process(pid)
            self.created = self.process.create_time()
        except psutil.Error as e:
            raise TargetLost("cannot sample process %d: %s" % (pid, e)) from None
        self.pid = pid
        self._last: tuple[float, float, dict[int, float]] | None = None

    def sample(self) -> ProcessSample:
        now = time.monotonic()
        try:
            with self.process.oneshot():
                times = self.process.cpu_times()
                total = times.user + times.system
                rss = self.process.memory_info().rss
                threads = self.process.threads()
                num_fds = self.process.num_fds()
        except psutil.Error as e:
            raise TargetLost("process %d is gone: %s" % (self.pid, e)) from None
        per_thread = {t.id: t.user_time + t.system_time for t in threads}
        cpu = 0.0
        thread_cpu: dict[int, float] = {}
        if self._last is not None:
            then, last_total, last_threads = self._last
            elapsed = max(now - then, 1e-6)
            cpu = max(0.0, (total - last_total) / elapsed * 100.0)
            for tid, spent in per_thread.items():
                if tid in last_threads:
                    thread_cpu[tid] = max(0.0, (spent - last_threads[tid]) / elapsed * 100.0)
        self._last = (now, total, per_thread)
        return ProcessSample(pid=self.pid, at=now, cpu_percent=cpu, rss=rss,
                             num_threads=len(threads), num_fds=num_fds,
                             uptime=time.time() - self.created, thread_cpu=thread_cpu)
