"""How busy the machine was with work that is not ours during a measure.

The bench shares its machine; other processes competing for the CPUs stretch
every time we take. `OtherLoad` measures the CPU the whole machine spent
(/proc/stat) minus what this process and its reaped children spent
(os.times()), as a fraction of all CPUs. Call `stop()` after the measure's
targets have exited and been waited for, so their CPU counts as ours.
"""

from __future__ import annotations

import os
import time


def _machine_busy_seconds() -> float:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class OtherLoad:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.busy = _machine_busy_seconds()
        self.own = _own_seconds()

    def stop(self) -> float:
        """Average CPUs busy with other processes' work since the start (0 … cpu count)."""
        elapsed = time.monotonic() - self.started
        if elapsed <= 0:
            return 0.0
        other = (_machine_busy_seconds() - self.busy) - (_own_seconds() - self.own)
        return max(0.0, other / elapsed)
