"""Explain, from /proc only, what a target is doing when the agent is late."""

from __future__ import annotations

import os
import time

SAMPLE_SECONDS = 0.2


def process_alive(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _thread_cpu_ticks(pid: int) -> dict[int, tuple[int, str]]:
    out: dict[int, tuple[int, str]] = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                raw = f.read()
        except OSError:
            continue
        name = raw[raw.find("(") + 1:raw.rfind(")")]
        fields = raw.rsplit(")", 1)[1].split()
        out[int(tid)] = (int(fields[11]) + int(fields[12]), name)  # utime + stime
    return out


def describe_busy_threads(pid: int) -> str:
    """'thread 123 (python3) is using 98% CPU', or '' if nothing is busy."""
    before = _thread_cpu_ticks(pid)
    time.sleep(SAMPLE_SECONDS)
    after = _thread_cpu_ticks(pid)
    hz = os.sysconf("SC_CLK_TCK")
    busy = []
    for tid, (ticks, name) in after.items():
        if tid in before:
            pct = (ticks - before[tid][0]) / hz / SAMPLE_SECONDS * 100
            if pct >= 50:
                busy.append("thread %d (%s) is using %.0f%% CPU" % (tid, name, pct))
    return "; ".join(busy)
