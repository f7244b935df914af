"""Measure 1: how long the target freezes while each tool attaches and dumps
every stack (largest gap seen by a target thread sleeping 1 ms in a loop that
the tool did not borrow), and how long ours stops the thread it borrows."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from . import stats, tools
from .config import Config, python_version
from .report import Goal, Section, fmt, fmt_ratio
from .targets import Target

SETTLE = 0.25  # seconds between runs: the previous tool's leftovers finish
TAIL = 0.15  # seconds after a tool returns before the gap is read
HEARTBEATS = 2  # the native injector may borrow one (it prefers sleeping threads)
STOP_GOAL_MS = 2.0  # the borrowed thread is stopped no longer than this
PAYLOADS = Path(__file__).resolve().parents[1] / "payloads"

_COMPILE_SCRIPT = r"""
import glob, json, os, sys, time
out = {}
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.py"))):
    with open(path) as f:
        src = f.read()
    t = time.perf_counter()
    compile(src, path, "exec", dont_inherit=True)
    out[os.path.basename(path)[:-3]] = (time.perf_counter() - t) * 1000.0
print(json.dumps(out))
"""


def payload_compile_ms(python: str, runs: int) -> dict[str, float]:
    """Median time (ms) `compile()` of each payload module takes in a fresh
    `python` process: the agent compiles its modules holding the GIL."""
    samples: dict[str, list[float]] = {}
    for _ in range(runs):
        out = subprocess.run([python, "-c", _COMPILE_SCRIPT, str(PAYLOADS)], check=True,
                             capture_output=True, text=True, timeout=60)
        for name, ms in json.loads(out.stdout).items():
            samples.setdefault(name, []).append(ms)
    return {name: stats.median(v) for name, v in samples.items()}


def unborrowed_gap(by_thread: dict[int, float],
                   borrowed: int | None) -> tuple[float, float, int | None]:
    """(gap of one heartbeat the tool did not borrow, gap of the borrowed
    heartbeat or nan, the tid read), ms. Every tool is judged by one
    heartbeat: the one with the lowest tid that was not borrowed (the native
    injector, given two sleeping heartbeats, takes the lowest tid), so no
    tool gets the max of more samples than another."""
    free = sorted(tid for tid in by_thread if tid != borrowed)
    gap = by_thread[free[0]] if free else float("nan")
    borrowed_gap = by_thread.get(borrowed, float("nan")) if borrowed is not None else float("nan")
    return gap, borrowed_gap, (free[0] if free else None)


def split_gaps(events: list[tuple[float, float]], run: tools.ToolRun) -> tuple[float, float]:
    """(largest gap overlapping the injector's stop, largest gap after it
    detached), ms.

    Only gaps of 4 ms or more are recorded by the target; 0.0 means none."""
    if run.injected_at is None or run.stopped_ms is None:
        return float("nan"), float("nan")
    stop_end = run.injected_at + 0.003  # the detach itself follows
    stop_start = run.injected_at - run.stopped_ms / 1000.0 - 0.002
    stop, after = 0.0, 0.0
    for end, ms in events:
        start = end - ms / 1000.0
        if start <= stop_end and end >= stop_start:
            stop = max(stop, ms)
        elif start >= stop_end - 0.003:
            after = max(after, ms)
    return stop, after


def measure_tool(target: Target, tool: tools.Tool) -> dict[str, Any]:
    time.sleep(SETTLE)
    target.reset()
    try:
        run = tool.run(target.pid)
    except Exception as e:  # recorded as a failed run; the others go on
        run = tools.ToolRun(False, float("nan"), error="%s: %s" % (type(e).__name__, e))
    time.sleep(TAIL)
    stopped = target.ensure_running()
    if stopped:
        run.error += " (target was left in state %r; the bench resumed it)" % stopped
    gap, borrowed_gap, read_tid = unborrowed_gap(target.gap_by_thread(), run.borrowed_tid)
    stop, agent = split_gaps(target.gap_events(exclude=run.borrowed_tid), run)
    return {"ok": run.ok, "error": run.error, "gap_ms": gap, "wall_ms": run.wall_ms,
            "stopped_ms": run.stopped_ms, "stop_gap_ms": stop, "agent_gap_ms": agent,
            "borrowed_tid": run.borrowed_tid, "borrowed_gap_ms": borrowed_gap,
            "heartbeat_tid": read_tid, "heartbeat_tids": target.heartbeat_tids(),
            "path": run.path, "phases": run.phases}


def baseline(target: Target, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        target.reset()
        time.sleep(0.3)
        out.append(unborrowed_gap(target.gap_by_thread(), None)[0])
    return out


def interleaved(cfg: Config, target: Target, usable: list[tools.Tool],
                reps: int) -> dict[str, list[dict[str, Any]]]:
    """`reps` rounds of every tool against `target`, in a new random order
    each round: {tool name: [measure_tool() per round]}."""
    results: dict[str, list[dict[str, Any]]] = {t.name: [] for t in usable}
    for _ in range(reps):
        order = list(usable)
        cfg.rng.shuffle(order)
        for tool in order:
            results[tool.name].append(measure_tool(target, tool))
    return results


def freeze_tools() -> list[tools.Tool]:
    return [tools.OursApi("native"), tools.OursApi("gdb"), tools.OursApi("pyrasite"),
            tools.PyrasiteAlone(), tools.py_spy_dump(), tools.pystack_remote()]


def stop_goal(stopped: list[float], label: str = "") -> Goal:
    """The borrowed thread stopped ≤ 2 ms: judged by the median, worst shown."""
    s = stats.summary(stopped)
    met = s["median"] <= STOP_GOAL_MS if s["n"] else None
    return Goal("ours: borrowed thread stopped ≤ %g ms%s" % (STOP_GOAL_MS, label), met,
                "median %s ms, p90 %s ms, worst %s ms, best %s ms (%d runs)"
                % (fmt(s["median"], 2), fmt(s["p90"], 2), fmt(s["max"], 2),
                   fmt(s["min"], 2), s["n"]))


def run(cfg: Config) -> Section:
    reps = cfg.reps(7, 2)
    candidates = freeze_tools()
    ours = candidates[0]
    missing = {t.name: t.missing() for t in candidates}
    usable = [t for t in candidates if missing[t.name] is None]
    with Target(cfg.python, heartbeats=HEARTBEATS) as target:
        time.sleep(0.5)
        noise = baseline(target, reps)
        results = interleaved(cfg, target, usable, reps)
        alive = target.alive()

    def med(name: str, key: str) -> float:
        return stats.median([r[key] for r in results.get(name, []) if r["ok"]
                             and r[key] is not None])

    ours_med = med(ours.name, "gap_ms")
    pyr_med = med("pyrasite alone", "gap_ms")
    section = Section("freeze", "1. Target freeze during attach + dump of all stacks")
    section.columns = ["tool", "max gap ms (median)", "p10–p90", "× ours",
                       "stopped ms (median)", "stop gap ms", "agent start gap ms", "wall ms",
                       "ok"]
    for tool in candidates:
        why = missing[tool.name]
        if why:
            section.rows.append([tool.name, "not run: " + why, "", "", "", "", "", "", ""])
            continue
        rs = results[tool.name]
        gaps = [r["gap_ms"] for r in rs if r["ok"]]
        s = stats.summary(gaps)
        split = tool.ours and tool.name != "ours (pyrasite backend)"
        section.rows.append([
            tool.name, s["median"], "%s–%s" % (fmt(s["p10"]), fmt(s["p90"])),
            fmt_ratio(stats.ratio(s["median"], ours_med)),
            med(tool.name, "stopped_ms") if tool.ours else None,
            med(tool.name, "stop_gap_ms") if split else None,
            med(tool.name, "agent_gap_ms") if split else None,
            med(tool.name, "wall_ms"), "%d/%d" % (len(gaps), len(rs))])
    compile_ms = payload_compile_ms(cfg.python, 3)
    biggest = max(compile_ms.items(), key=lambda kv: kv[1]) if compile_ms else ("?", 0.0)
    stop_med = med(ours.name, "stop_gap_ms")
    agent_med = med(ours.name, "agent_gap_ms")
    ours_runs = [r for r in results.get(ours.name, []) if r["ok"]]
    section.goals = [
        Goal("ours freeze ≤ 40 ms", ours_med <= 40 if ours_med == ours_med else None,
             "%s ms median" % fmt(ours_med)),
        Goal("ours ≥ 8× better than pyrasite",
             (pyr_med / ours_med >= 8) if (pyr_med == pyr_med and ours_med) else None,
             "pyrasite %s ms / ours %s ms = %s" % (fmt(pyr_med), fmt(ours_med),
                                                    fmt_ratio(stats.ratio(pyr_med, ours_med)))),
        stop_goal([r["stopped_ms"] for r in ours_runs]),
    ]
    if abs(agent_med - stop_med) <= 0.15 * max(agent_med, stop_med):
        dominant = "neither: they are about equal"
    elif agent_med > stop_med:
        dominant = "the agent start (GIL held while compiling its modules)"
    else:
        dominant = "the injector's stop"
    borrowed_hb = [r["borrowed_gap_ms"] for r in ours_runs if r["borrowed_gap_ms"] is not None
                   and r["borrowed_gap_ms"] == r["borrowed_gap_ms"]]
    paths = sorted({r["path"] for r in ours_runs})
    section.notes = [
        "Target: CPython %s, idle main thread blocked in `read`, %d heartbeat threads; %d "
        "repetitions per tool, tools interleaved in random order; heartbeat noise with no tool: "
        "%s ms median." % (python_version(cfg.python), HEARTBEATS, reps,
                           fmt(stats.median(noise))),
        "`max gap` is the largest gap of one heartbeat the tool did not borrow (the native "
        "injector prefers a thread sleeping in `clock_nanosleep`, so it often borrows a "
        "heartbeat; every tool is read on one heartbeat). Ours took the %s path; it borrowed "
        "a heartbeat in %d of %d runs, whose own gap then was %s ms median (the stop plus "
        "waiting for the GIL behind the new agent thread)."
        % ("/".join(paths) or "?", len(borrowed_hb), len(ours_runs),
           fmt(stats.median(borrowed_hb))),
        "`stopped ms` is InjectionReport.stopped_ms: native, the one borrowed thread from its "
        "interrupt stop to the detach (every other thread runs); gdb and pyrasite, every "
        "thread. Ours' freeze of the other threads is then the agent thread holding the GIL "
        "(`agent start gap`); the larger of the two parts is %s. compile() of the biggest "
        "payload module (`%s.py`) alone takes %s ms in this interpreter; all modules %s ms."
        % (dominant, biggest[0], fmt(biggest[1]), fmt(sum(compile_ms.values()))),
        "The split columns attribute each heartbeat gap of 4 ms or more to the injector's stop "
        "(it overlaps the window in which the injector held the target) or to what follows "
        "it; 0 means no gap of 4 ms or more. The pyrasite backend is not split: its agent "
        "starts while pyrasite's gdb is still attached.",
        "py-spy and pystack inject nothing (both pause the target while they read its "
        "memory): py-spy is the non-invasive floor.",
    ]
    if not alive:
        section.notes.append("THE TARGET DIED during this measure.")
    failures = sorted({r["error"] for rs in results.values() for r in rs if not r["ok"]})
    if failures:
        section.notes.append("Failed runs (not in the medians): %s" % "; ".join(failures))
    section.data = {"results": results, "noise_ms": noise, "compile_ms": compile_ms,
                    "python": python_version(cfg.python), "target_alive": alive,
                    "not_run": {k: v for k, v in missing.items() if v}}
    if cfg.other_pythons:
        versions_table(cfg, section)
    return section


def versions_table(cfg: Config, section: Section) -> None:
    """Ours (native) on every interpreter found: where the freeze comes from."""
    reps = cfg.reps(3, 1)
    rows: list[list[Any]] = []
    data: dict[str, Any] = {}
    for python in cfg.other_pythons:
        version = python_version(python)
        rs = []
        try:
            with Target(python, heartbeats=HEARTBEATS) as target:
                time.sleep(0.3)
                for _ in range(reps):
                    rs.append(measure_tool(target, tools.OursApi("native")))
        except (RuntimeError, OSError) as e:
            rows.append([version, "failed: %s" % e, "", "", "", "", "", ""])
            continue
        compile_ms = payload_compile_ms(python, 1)
        ok = [r for r in rs if r["ok"]]
        rows.append([
            "%s (%s)" % (version, python),
            stats.median([r["gap_ms"] for r in ok]),
            stats.median([r["stopped_ms"] for r in ok]),
            stats.median([r["stop_gap_ms"] for r in ok]),
            stats.median([r["agent_gap_ms"] for r in ok]),
            compile_ms.get("evaluator", float("nan")),
            sum(compile_ms.values()),
            "%d/%d" % (len(ok), len(rs)),
        ])
        for r in rs:
            if not r["ok"]:
                section.notes.append("Failed run on %s: %s" % (version, r["error"]))
        data[python] = {"version": version, "results": rs, "compile_ms": compile_ms}
    section.extra_tables.append((
        "Ours (native) per interpreter (median of %d):" % reps,
        ["python", "max gap ms", "borrowed thread stopped ms", "stop gap ms",
         "agent start gap ms",
         "compile evaluator.py ms", "compile all payloads ms", "ok"], rows))
    section.data["per_python"] = data
