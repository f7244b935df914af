"""Measure 2: cold answer - wall time from typing the command to every stack
printed - and the CLI's own import cost (and that it never imports Textual)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from typing import Any

from . import stats, tools
from .config import Config, python_version
from .report import Goal, Section, fmt, fmt_ratio
from .targets import Target

HEARTBEATS = 2  # with the main thread: a 3-thread target
GOAL_MS = 120.0

GUI_PACKAGES = ("textual", "tui", "rich")

# Runs the real CLI entry point in-process, then reports what got imported.
_CLI_PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
from inspector.cli import main
t1 = time.perf_counter()
rc = main(sys.argv[1:])
t2 = time.perf_counter()
mods = sorted(m for m in sys.modules if m.split(".")[0] in %r)
sys.stderr.write("\nBENCH " + json.dumps({"rc": rc, "import_ms": (t1 - t0) * 1000,
                                           "run_ms": (t2 - t1) * 1000, "gui": mods,
                                           "modules": len(sys.modules)}) + "\n")
""" % (GUI_PACKAGES,)


def cli_probe(argv: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", _CLI_PROBE, *argv], capture_output=True,
                         text=True, timeout=60, stdin=subprocess.DEVNULL)
    line = [x for x in out.stderr.splitlines() if x.startswith("BENCH ")]
    if not line:
        raise RuntimeError("CLI probe failed: %s" % out.stderr[-500:])
    doc: dict[str, Any] = json.loads(line[-1][6:])
    doc["stderr"] = out.stderr.split("\nBENCH ")[0].strip()[-300:]
    return doc


# What `inspector stack` imports: the CLI imports the session, the native
# injector and the renderer only when the command runs (docs/DESIGN.md,
# "Round 5: the cold path"), so `import inspector.cli` alone is not all of it.
STACK_IMPORTS = ("import inspector.cli, inspector.session, inspector._inject.native, "
                 "inspector.render")


def import_breakdown(runs: int) -> list[tuple[str, float]]:
    """Cumulative import time (ms, median of `runs`) of the heaviest modules
    imported by the `stack` command's path, from `python -X importtime`."""
    per_module: dict[str, list[float]] = {}
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-X", "importtime", "-c", STACK_IMPORTS],
                             capture_output=True, text=True, timeout=60)
        for line in out.stderr.splitlines():
            m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
            if m:
                per_module.setdefault(m.group(4), []).append(int(m.group(2)) / 1000.0)
    med = {k: stats.median(v) for k, v in per_module.items()}
    return sorted(med.items(), key=lambda kv: -kv[1])


def run(cfg: Config) -> Section:
    reps = cfg.reps(9, 2)
    ours = tools.ours_cli(name="inspector stack PID")
    candidates: list[tools.ExternalTool] = [ours, tools.py_spy_dump(), tools.pystack_remote()]
    usable = [t for t in candidates if t.missing() is None]
    walls: dict[str, list[float]] = {t.name: [] for t in usable}
    errors: dict[str, list[str]] = {t.name: [] for t in usable}
    api_phases: list[dict[str, float]] = []
    with Target(cfg.python, heartbeats=HEARTBEATS) as target:
        time.sleep(0.3)
        for _ in range(reps):
            order = list(usable)
            cfg.rng.shuffle(order)
            for tool in order:
                time.sleep(0.2)
                result = tool.run(target.pid)
                if result.ok:
                    walls[tool.name].append(result.wall_ms)
                else:
                    errors[tool.name].append(result.error)
            time.sleep(0.2)
            try:
                api_phases.append(tools.OursApi("native").run(target.pid).phases)
            except Exception as e:  # recorded by OursApi; the other runs go on
                errors.setdefault("ours (API)", []).append(str(e))
                target.ensure_running()
        time.sleep(0.2)
        probe = cli_probe(["stack", str(target.pid)])
    startup = tools.python_startup_ms(sys.executable, "pass", reps)
    import_cli = tools.python_startup_ms(sys.executable, "import inspector.cli", reps)
    import_path = tools.python_startup_ms(sys.executable, STACK_IMPORTS, reps)
    # As this checkout runs where PYTHONDONTWRITEBYTECODE=1 is set: the stdlib
    # has its .pyc files, our package is compiled at every start.
    no_cache_env = {k: v for k, v in os.environ.items() if k != "PYTHONPYCACHEPREFIX"}
    no_cache_env["PYTHONDONTWRITEBYTECODE"] = "1"
    import_cli_no_cache = tools.python_startup_ms(sys.executable, "import inspector.cli", reps,
                                                  env=no_cache_env)
    heavy = import_breakdown(cfg.reps(3, 1))

    ours_med = stats.median(walls.get(ours.name, []))
    section = Section("cold", "2. Cold answer: command start to every stack printed")
    section.columns = ["command", "wall ms (median)", "p10–p90", "× ours", "ok"]
    for tool in candidates:
        why = tool.missing()
        if why:
            section.rows.append([tool.name, "not run: " + why, "", "", ""])
            continue
        s = stats.summary(walls[tool.name])
        section.rows.append([tool.name if tool is ours else "`%s`" % " ".join(
            [tool.exe, *tool.args]).replace("{pid}", "PID"),
            s["median"], "%s–%s" % (fmt(s["p10"]), fmt(s["p90"])),
            fmt_ratio(stats.ratio(s["median"], ours_med)),
            "%d/%d" % (len(walls[tool.name]), reps)])
    phase = {k: stats.median([p[k] for p in api_phases if k in p])
             for k in ("attach", "before_inject", "inject_total", "stopped", "agent_start",
                       "stack", "detach")}
    start_med, import_med = stats.median(startup), stats.median(import_cli)
    breakdown = [
        ["python start (`python -c pass`)", start_med],
        ["import inspector.cli (incl. start)", import_med],
        ["… of which import", import_med - start_med],
        ["import of all `stack` loads: cli, session, native injector, render (incl. start)",
         stats.median(import_path)],
        ["import inspector.cli, no .pyc of our package (incl. start)",
         stats.median(import_cli_no_cache)],
        ["attach() total, in-process", phase["attach"]],
        ["… preflight, private dir (before the injector)", phase["before_inject"]],
        ["… native injector: ELF symbols, lock, seize, inject, detach", phase["inject_total"]],
        ["… … of which the borrowed thread stopped", phase["stopped"]],
        ["… agent start: GIL, compile modules, connect back", phase["agent_start"]],
        ["stack() round trip", phase["stack"]],
        ["detach", phase["detach"]],
    ]
    section.extra_tables.append(("Where our cold time goes (ms, medians):",
                                 ["phase", "ms"], breakdown))
    section.extra_tables.append((
        "Heaviest imports on the `stack` path (cumulative ms, `-X importtime`):",
        ["module", "ms"], [["`%s`" % name, ms] for name, ms in heavy[:8]]))
    gui = probe.get("gui", [])
    section.goals = [
        Goal("`inspector stack PID` ≤ %d ms at 3 threads" % GOAL_MS,
             ours_med <= GOAL_MS if ours_med == ours_med else None,
             "%s ms median (py-spy dump %s ms)"
             % (fmt(ours_med), fmt(stats.median(walls.get(tools.py_spy_dump().name, []))))),
        Goal("the CLI path imports no Textual", not gui,
             "modules of %s loaded after `inspector stack`: %s%s"
             % ("/".join(GUI_PACKAGES), ", ".join(gui) or "none",
                "" if probe.get("rc") == 0 else " (that run exited %s: %s)"
                % (probe.get("rc"), probe.get("stderr", "")))),
    ]
    section.notes = [
        "Target: CPython %s, 3 threads (main parked in `read`, 2 heartbeats). Each command "
        "runs in a fresh process, %d times, interleaved; wall time until it exits with every "
        "stack on stdout."
        % (python_version(cfg.python), reps),
        "The in-process probe of `inspector stack` imported %d modules; import %s ms, run %s ms."
        % (probe.get("modules", 0), fmt(probe.get("import_ms")), fmt(probe.get("run_ms"))),
    ]
    if any(errors.values()):
        section.notes.append("failures: %s" % {k: v[:2] for k, v in errors.items() if v})
    section.data = {"walls_ms": walls, "errors": errors, "api_phases": api_phases,
                    "startup_ms": startup, "import_cli_ms": import_cli,
                    "import_cli_no_cache_ms": import_cli_no_cache, "import_path_ms": import_path,
                    "imports_ms": heavy[:30], "cli_probe": probe}
    return section
