"""Measure 5: census and snapshots on a target holding 1M and 5M objects:
wall time, the target's largest stall, peak extra RSS in the target."""

from __future__ import annotations

import time
from collections.abc import Callable

import inspector

from . import stats, tools
from .config import Config, python_version
from .report import Goal, Section, fmt
from .targets import Target

BIG_LIMITS = {"max_snapshot_items": 10_000, "max_snapshot_nodes": 10_010}
STALL_GOAL_MS = 20.0
# Paging deeper is refused: an offset counts against max_scan_items (200,000),
# even for a list, where item N is one index away.
PAGE_OFFSET = 190_000


def operations(session: inspector.Session, count: int) -> list[tuple[str, Callable[[], str]]]:
    ops: list[tuple[str, Callable[[], str]]] = []
    census = getattr(session, "census", None)
    if census is not None:
        def run_census() -> str:
            c = census(20)
            return ("%d objects, %d types, complete=%s, list_pause %.1f ms, max_hold %.1f ms"
                    % (c.total_objects, c.distinct_types, c.complete, c.list_pause * 1000,
                       c.max_hold * 1000))
        ops.append(("census (top 20)", run_census))
    ops += [
        ("eval `len(data)`", lambda: str(session.eval("len(data)").to_python())),
        ("snapshot `data` (default: 100 items)",
         lambda: "%s items shown" % len(session.eval("data").node.get("items", []))),
        ("snapshot `data` page at offset %d" % PAGE_OFFSET,
         lambda: "%s items shown" % len(session.inspect([], expr="data", offset=PAGE_OFFSET)
                                        .node.get("items", []))),
        ("snapshot `data`, 10,000 items",
         lambda: "%s items shown" % len(session.eval("data", limits=BIG_LIMITS)
                                        .node.get("items", []))),
    ]
    return ops


def measure(target: Target, fn: Callable[[], str]) -> dict:
    time.sleep(0.2)
    rss_before = target.status_kb("VmRSS")
    peak_reset = target.reset_peak_rss()
    target.reset()
    started = time.monotonic()
    detail = fn()
    wall = (time.monotonic() - started) * 1000.0
    time.sleep(0.1)
    gap = target.gap_ms()
    hwm = target.status_kb("VmHWM")
    rss_after = target.status_kb("VmRSS")
    return {"wall_ms": wall, "gap_ms": gap, "peak_extra_kb": hwm - rss_before if peak_reset
            else None, "retained_kb": rss_after - rss_before, "rss_before_kb": rss_before,
            "detail": detail}


def run(cfg: Config) -> Section:
    sizes = [1_000_000] if cfg.quick else [1_000_000, 5_000_000]
    reps = cfg.reps(3, 1)
    results: dict[str, dict[str, list[dict]]] = {}
    has_census = hasattr(inspector.Session, "census")
    for count in sizes:
        label = "%dM" % (count // 1_000_000)
        per_op: dict[str, list[dict]] = {}
        with Target(cfg.python, heartbeat=True, objects=count) as target:
            time.sleep(0.5)
            with tools.attach(target.pid) as session:
                ops = operations(session, count)
                for _ in range(reps):
                    for name, fn in ops:
                        per_op.setdefault(name, []).append(measure(target, fn))
            time.sleep(0.2)
            target.reset()
            time.sleep(0.5)
            noise = target.gap_ms()
        per_op["(heartbeat noise, no query, 0.5 s)"] = [{"gap_ms": noise, "wall_ms": None,
                                                          "peak_extra_kb": None,
                                                          "retained_kb": None, "detail": ""}]
        results[label] = per_op

    section = Section("scale", "5. Scale: census and snapshots on 1M / 5M objects")
    section.columns = ["objects", "operation", "wall ms (median)", "max stall ms (median)",
                       "max stall ms (worst)", "peak extra RSS MB (worst)", "result"]
    worst_stall, worst_rss = 0.0, 0.0
    for label, per_op in results.items():
        for name, runs in per_op.items():
            gaps = [r["gap_ms"] for r in runs]
            extra = [r["peak_extra_kb"] / 1024.0 for r in runs if r["peak_extra_kb"] is not None]
            if not name.startswith("("):
                worst_stall = max(worst_stall, max(gaps))
                worst_rss = max([worst_rss, *extra])
            section.rows.append([
                label, name,
                stats.median([r["wall_ms"] for r in runs]) if runs[0]["wall_ms"] is not None
                else None,
                stats.median(gaps), max(gaps), max(extra) if extra else None,
                runs[-1]["detail"]])
    census_stalls = [r["gap_ms"] for per_op in results.values()
                     for r in per_op.get("census (top 20)", [])]
    snap_stalls = [r["gap_ms"] for per_op in results.values() for name, rs in per_op.items()
                   if name.startswith(("snapshot", "eval")) for r in rs]
    section.goals = [
        Goal("census: no stall over 20 ms",
             (max(census_stalls) <= STALL_GOAL_MS) if census_stalls else None,
             ("worst %s ms" % fmt(max(census_stalls))) if census_stalls
             else "Session.census() is not available in this build"),
        Goal("snapshots: no stall over 20 ms", max(snap_stalls) <= STALL_GOAL_MS,
             "worst %s ms" % fmt(max(snap_stalls))),
        Goal("extra RSS bounded", None if not worst_rss else True,
             "peak %s MB over the largest target (%s objects)"
             % (fmt(worst_rss), list(results)[-1])),
    ]
    section.notes = [
        "Target: CPython %s; `data` is a list of N objects the collector tracks (half "
        "`__slots__` instances, half one-item lists), collected once before measuring; a "
        "heartbeat thread records the largest gap. One session per target (the attach is not "
        "counted); %d repetition(s) per operation." % (python_version(cfg.python), reps),
        "Peak extra RSS: VmHWM after the operation minus VmRSS before it, with the peak reset "
        "through /proc/PID/clear_refs just before (value 5).",
    ]
    if not has_census:
        section.notes.append("Session.census() does not exist in this build: snapshots only.")
    section.data = {"results": results, "sizes": sizes}
    return section
