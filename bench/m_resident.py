"""Measure 6: a monitoring loop - many `inspector probe` runs in a row - with a
resident agent (`inspector attach --keep` once) versus injecting every time."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from . import stats, tools
from .config import Config, python_version
from .report import Goal, Section, fmt, fmt_ratio
from .targets import Target

CHECK = "ok=len(config) > 0"
NOISE_WINDOWS = 20  # probe-long windows with no probe: the heartbeat's noise floor


def inspector_cmd(*args: str) -> list[str]:
    exe = tools.find_exe("inspector")
    assert exe is not None
    return [exe, *args]


def probe_loop(target: Target, count: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(count):
        target.reset()
        started = time.monotonic()
        proc = subprocess.run(inspector_cmd("probe", str(target.pid), "--check", CHECK,
                                            "--json"),
                              capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
        wall = (time.monotonic() - started) * 1000.0
        time.sleep(0.05)  # a one-shot agent's exit is over
        try:
            doc = json.loads(proc.stdout)
        except ValueError:
            doc = {}
        out.append({"wall_ms": wall, "gap_ms": target.unborrowed_gap_ms(), "rc": proc.returncode,
                    "status": doc.get("status"), "reused": doc.get("reused_agent"),
                    "error": doc.get("error") or ""})
        target.ensure_running()
    return out


def timed_cli(target: Target, *args: str) -> dict[str, Any]:
    target.reset()
    started = time.monotonic()
    proc = subprocess.run(inspector_cmd(*args), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    wall = (time.monotonic() - started) * 1000.0
    time.sleep(0.15)
    return {"wall_ms": wall, "gap_ms": target.unborrowed_gap_ms(), "rc": proc.returncode,
            "stderr": proc.stderr.strip()[-300:]}


def quiet_windows(target: Target, count: int, seconds: float) -> list[float]:
    """The heartbeats' gap over windows as long as a probe, with no probe:
    what the machine alone does to a 1 ms sleeper."""
    out = []
    for _ in range(count):
        target.reset()
        time.sleep(seconds)
        out.append(target.unborrowed_gap_ms())
    return out


def wait_threads(target: Target, expected: int, timeout: float) -> int:
    """The target's thread count once it is back to `expected` (or at the timeout)."""
    deadline = time.monotonic() + timeout
    while target.threads() > expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return target.threads()


def run(cfg: Config) -> Section:
    count = cfg.reps(100, 6)
    modes: dict[str, list[dict[str, Any]]] = {}
    setup: dict[str, dict[str, Any]] = {}
    with Target(cfg.python, heartbeats=2) as target:
        time.sleep(0.3)
        threads_before = target.threads()
        order = ["resident", "re-inject"]
        cfg.rng.shuffle(order)
        started_at: dict[str, float] = {}
        total: dict[str, float] = {}
        for mode in order:
            t0 = time.monotonic()
            started_at[mode] = t0
            if mode == "resident":
                setup["attach --keep"] = timed_cli(target, "attach", str(target.pid), "--keep")
                modes[mode] = probe_loop(target, count)
                setup["detach"] = timed_cli(target, "detach", str(target.pid))
            else:
                modes[mode] = probe_loop(target, count)
            total[mode] = (time.monotonic() - t0) * 1000.0
        threads_after = wait_threads(target, threads_before, 3.0)
        window = stats.median([r["wall_ms"] for r in modes["resident"]]) / 1000.0
        noise = quiet_windows(target, min(count, NOISE_WINDOWS), window)

    section = Section("resident", "6. Resident agent: %d probes in a row" % count)
    section.columns = ["mode", "total s", "per probe ms (median)", "p90 ms",
                       "freeze per probe ms (median)", "worst freeze ms", "all OK", "reused"]
    for mode in ("resident", "re-inject"):
        rs = modes[mode]
        walls = [r["wall_ms"] for r in rs]
        gaps = [r["gap_ms"] for r in rs]
        section.rows.append([
            mode + (" (incl. attach --keep and detach)" if mode == "resident" else ""),
            total[mode] / 1000.0, stats.median(walls), stats.percentile(walls, 90),
            stats.median(gaps), max(gaps),
            "%d/%d" % (sum(1 for r in rs if r["status"] == "OK"), len(rs)),
            "%d/%d" % (sum(1 for r in rs if r["reused"]), len(rs))])
    section.rows.append(["no probe (same window length; noise)", None, None, None,
                         stats.median(noise), max(noise), "", ""])
    noise_p90 = stats.percentile(noise, 90)
    res_gap = stats.median([r["gap_ms"] for r in modes["resident"]])
    inj_gap = stats.median([r["gap_ms"] for r in modes["re-inject"]])
    section.goals = [
        Goal("resident probes do not freeze the target (no injection)",
             res_gap <= max(5.0, noise_p90),
             "median freeze %s ms (no probe: %s ms median, p90 %s) vs %s ms re-injecting "
             "(%s less); total %s vs %s s" % (
                 fmt(res_gap), fmt(stats.median(noise)), fmt(noise_p90), fmt(inj_gap),
                 fmt_ratio(stats.ratio(inj_gap, res_gap)),
                 fmt(total["resident"] / 1000.0), fmt(total["re-inject"] / 1000.0))),
    ]
    section.notes = [
        "Target: CPython %s with two heartbeat threads. Each probe is a fresh `inspector "
        "probe PID --check %r --json` process (as a monitoring system runs it); freeze = "
        "the smaller of the two heartbeats' largest gaps during that probe (the native "
        "injector borrows at most one thread, often a heartbeat). Modes ran in the order %s."
        % (python_version(cfg.python), CHECK, " then ".join(order)),
        "The goal is judged against the heartbeats' noise: %d windows as long as a resident "
        "probe with no probe at all; met when the resident probes' median freeze is within "
        "that noise's p90 (or 5 ms). Re-injecting is no longer the yardstick: the native "
        "injector's freeze is small enough that a fraction of it is below the noise."
        % len(noise),
        "Setup of the resident mode: `attach --keep` %s ms wall, %s ms freeze; `detach` %s ms."
        % (fmt(setup["attach --keep"]["wall_ms"]), fmt(setup["attach --keep"]["gap_ms"]),
           fmt(setup["detach"]["wall_ms"])),
        "Threads in the target 3 s after `detach` at most: %d (before: %d)."
        % (threads_after, threads_before),
    ]
    errors = sorted({r["error"] for rs in modes.values() for r in rs if r["error"]})
    if errors:
        section.notes.append("Probe errors: %s" % "; ".join(errors))
    section.data = {"probes": modes, "setup": setup, "total_ms": total, "noise_ms": noise,
                    "threads_after": threads_after}
    return section
