"""How long an isolated query (--isolated) stalls the target, by target size.

    .venv/bin/python bench/fork_stall.py [--sizes 100,1000,4000] [--reps 5]

For each size (MB of touched memory in the target) it starts a target holding
that much, attaches once, runs `--isolated` queries, and reports the fork's
duration in the parent (page tables are copied while the forking thread holds
the GIL) and the largest gap seen by a heartbeat thread in the target.
Prints a markdown table; the README's isolation table comes from here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import inspector  # noqa: E402

TARGET = r'''
import sys, threading, time, os
size = int(sys.argv[1]) * 1024 * 1024
blob = bytearray(size)
for i in range(0, size, 4096):
    blob[i] = 1            # touch every page: RSS really is `size`
state = {"max": 0.0}
def beat():
    last = time.monotonic()
    while True:
        time.sleep(0.001)
        now = time.monotonic()
        state["max"] = max(state["max"], now - last)
        last = now
threading.Thread(target=beat, daemon=True).start()
print("ready %d" % os.getpid(), flush=True)
for line in sys.stdin:
    if line.strip() == "reset":
        state["max"] = 0.0
    print("%.3f" % (state["max"] * 1000), flush=True)
'''


def measure(size_mb: int, reps: int) -> dict[str, float]:
    proc = subprocess.Popen([sys.executable, "-c", TARGET, str(size_mb)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdin and proc.stdout
    try:
        proc.stdout.readline()

        def ask(cmd: str) -> float:
            proc.stdin.write(cmd + "\n")
            proc.stdin.flush()
            return float(proc.stdout.readline())

        forks, gaps, baseline = [], [], []
        with inspector.attach(proc.pid) as session:
            limit = (size_mb + 512) * 1024 * 1024
            for _ in range(reps):
                time.sleep(0.3)
                ask("reset")
                time.sleep(0.3)
                baseline.append(ask("read"))
                ask("reset")
                value = session.eval("1", isolated=True, max_isolated_rss=limit)
                time.sleep(0.05)
                gaps.append(ask("read"))
                forks.append(value.node["isolated"]["fork_ms"])
        with open("/proc/%d/status" % proc.pid) as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
        return {"size_mb": size_mb, "rss_mb": rss / 1024, "fork_ms": statistics.median(forks),
                "heartbeat_gap_ms": statistics.median(gaps),
                "baseline_gap_ms": statistics.median(baseline)}
    finally:
        proc.kill()
        proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,4000")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    rows = [measure(int(s), args.reps) for s in args.sizes.split(",")]
    print("| target RSS | fork in the parent (median) | target heartbeat gap (median) "
          "| idle heartbeat gap |")
    print("|---|---|---|---|")
    for r in rows:
        print("| %.0f MB | %.1f ms | %.1f ms | %.1f ms |" % (
            r["rss_mb"], r["fork_ms"], r["heartbeat_gap_ms"], r["baseline_gap_ms"]))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
