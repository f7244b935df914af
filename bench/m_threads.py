"""Measure 7: the freeze as the thread count grows - 3, 200 and 1,000 idle
threads - for ours and the anchors, each tool against the same target,
interleaved; and how long ours stops the one thread it borrows."""

from __future__ import annotations

import time
from typing import Any

from . import stats, tools
from .config import Config, python_version
from .m_freeze import HEARTBEATS, baseline, interleaved, stop_goal
from .report import Goal, Section, fmt, fmt_ratio
from .targets import Target

SIZES = (3, 200, 1000)  # threads in the target: main + 2 heartbeats + idle sleepers
# --quick: 200 threads only (3 threads is measure 1's target; pystack alone
# takes 3-14 s per dump of 1,000 threads)
QUICK_SIZES = (200,)


def thread_tools() -> list[tools.Tool]:
    return [tools.OursApi("native"), tools.py_spy_dump(), tools.pystack_remote(),
            tools.PyrasiteAlone(), tools.OursApi("gdb")]


def measure_size(cfg: Config, size: int, usable: list[tools.Tool], reps: int) -> dict[str, Any]:
    with Target(cfg.python, heartbeats=HEARTBEATS, threads=size - 1 - HEARTBEATS) as target:
        threads = target.threads()
        time.sleep(0.5)
        noise = baseline(target, 1)
        results = interleaved(cfg, target, usable, reps)
        alive = target.alive()
    return {"results": results, "threads": threads, "noise_ms": noise, "alive": alive}


def run(cfg: Config) -> Section:
    reps = cfg.reps(5, 1)
    candidates = thread_tools()
    ours = candidates[0]
    missing = {t.name: t.missing() for t in candidates}
    usable = [t for t in candidates if missing[t.name] is None]
    sizes = QUICK_SIZES if cfg.quick else SIZES
    per_size = {size: measure_size(cfg, size, usable, reps) for size in sizes}

    def ok_runs(size: int, name: str) -> list[dict[str, Any]]:
        return [r for r in per_size[size]["results"].get(name, []) if r["ok"]]

    def med(size: int, name: str, key: str) -> float:
        return stats.median([r[key] for r in ok_runs(size, name) if r[key] is not None])

    section = Section("threads", "7. Freeze by thread count: 3 / 200 / 1,000 idle threads")
    labels = [f"{size:,} threads" for size in sizes]
    section.columns = ["tool"] + ["max gap ms, %s (× ours)" % label for label in labels]
    walls: list[list[object]] = []
    for tool in candidates:
        why = missing[tool.name]
        if why:
            section.rows.append([tool.name, "not run: " + why] + [""] * (len(sizes) - 1))
            continue
        cells: list[object] = [tool.name]
        wall_cells: list[object] = [tool.name]
        for size in sizes:
            gap = med(size, tool.name, "gap_ms")
            n, total = len(ok_runs(size, tool.name)), len(per_size[size]["results"][tool.name])
            ratio = stats.ratio(gap, med(size, ours.name, "gap_ms"))
            cells.append("%s (%s)%s" % (fmt(gap), fmt_ratio(ratio),
                                        "" if n == total else " %d/%d ok" % (n, total)))
            wall_cells.append(med(size, tool.name, "wall_ms"))
        section.rows.append(cells)
        walls.append(wall_cells)
    stop_rows = []
    for size, label in zip(sizes, labels, strict=True):
        rs = ok_runs(size, ours.name)
        s = stats.summary([r["stopped_ms"] for r in rs])
        stop_rows.append([label, s["median"], s["max"],
                          "/".join(sorted({r["path"] for r in rs})) or "—",
                          stats.median([r["agent_gap_ms"] for r in rs]),
                          per_size[size]["noise_ms"][0] if per_size[size]["noise_ms"] else None])
    section.extra_tables.append((
        "Ours (native): the borrowed thread's stop and the agent's start, by thread count:",
        ["threads", "borrowed thread stopped ms (median)", "(worst)", "path",
         "agent start gap ms", "heartbeat noise ms, no tool"], stop_rows))
    section.extra_tables.append((
        "Wall time of each tool (ms, median; ours: attach + stack + detach in-process):",
        ["tool"] + labels, walls))
    spy = tools.py_spy_dump().name
    for size, label in zip(sizes, labels, strict=True):
        ours_gap, spy_gap = med(size, ours.name, "gap_ms"), med(size, spy, "gap_ms")
        known = ours_gap == ours_gap and spy_gap == spy_gap
        section.goals.append(Goal(
            "ours' freeze ≤ py-spy's at %s" % label, (ours_gap <= spy_gap) if known else None,
            "ours %s ms, py-spy dump %s ms" % (fmt(ours_gap), fmt(spy_gap))))
    section.goals.append(stop_goal([r["stopped_ms"] for size in sizes
                                    for r in ok_runs(size, ours.name)], " at every size"))
    section.notes = [
        "Targets: CPython %s; N threads = the main thread parked in `read`, %d heartbeat "
        "threads (sleep 1 ms in a loop) and N − %d idle threads blocked in `Event.wait` at "
        "stack depths 1–8. One target per size; %d repetition(s) per tool, interleaved in "
        "random order." % (python_version(cfg.python), HEARTBEATS, 1 + HEARTBEATS, reps),
        "`max gap` is the largest gap of one heartbeat the tool did not borrow (see measure "
        "1). It includes everything the tool costs the other threads: ptrace stops of the "
        "whole process (py-spy, pystack, gdb), and for ours the agent thread holding the "
        "GIL while it starts and walks every thread's frames.",
    ]
    if cfg.quick:
        section.notes.append("--quick: 200 threads only (a full run: 3, 200 and 1,000).")
    for size in sizes:
        if not per_size[size]["alive"]:
            section.notes.append("THE TARGET DIED during the %d-thread run." % size)
        if per_size[size]["threads"] != size:
            section.notes.append("The %d-thread target had %d threads."
                                 % (size, per_size[size]["threads"]))
    failures = sorted({"%s: %s" % (name, r["error"]) for size in sizes
                       for name, rs in per_size[size]["results"].items()
                       for r in rs if not r["ok"]})
    if failures:
        section.notes.append("Failed runs (not in the medians): %s" % "; ".join(failures))
    section.data = {"sizes": {str(size): d for size, d in per_size.items()},
                    "not_run": {k: v for k, v in missing.items() if v}}
    return section
