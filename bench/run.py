"""Run the benchmarks: ours against py-spy, pystack and pyrasite.

    .venv/bin/python bench/run.py                 # everything, a few minutes
    .venv/bin/python bench/run.py --quick         # smoke run, under a minute
    .venv/bin/python bench/run.py --only freeze,warm --out bench/results/x.json

Prints markdown tables (goals met or the gap) and writes JSON (default
bench/results/latest.json). Needs root or ptrace rights on its own children
and the anchors (`pip install -e ".[bench]"`); a missing anchor is a row
that says so, not a failure.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MEASURES = ("freeze", "cold", "warm", "throughput", "scale", "resident", "threads")


def _measure(name: str) -> ModuleType:
    return importlib.import_module("bench.m_" + name)


def default_python() -> str:
    """The interpreter this venv was made from: a plain CPython for the targets."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return os.path.realpath(base)


def other_pythons() -> list[str]:
    """Every CPython 3.8-3.13 the tests know about (tests/pythons.py), if present."""
    try:
        from tests.pythons import interpreters
    except ImportError:
        return []
    return [i.path for i in interpreters() if i.path]


def set_nice(value: int) -> int:
    """Renice this process (its children inherit it); return the value in effect."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if value != current:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, value)
        except OSError:
            print("bench: cannot set nice %d (not root?); running at %d" % (value, current),
                  file=sys.stderr)
    return os.getpriority(os.PRIO_PROCESS, 0)


def loadavg() -> float:
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def warm_bytecode_cache(workdir: str) -> None:
    """Run our CLI with a bytecode cache, as after `pip install` (which compiles
    .pyc files). Some environments set PYTHONDONTWRITEBYTECODE=1 and the
    checkout has no __pycache__: every CLI start would compile our sources.
    The cache lives in the bench's temp dir (PYTHONPYCACHEPREFIX), not in the
    checkout; targets do not use it (bench/targets.py drops it)."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = os.path.join(workdir, "pycache")
    subprocess.run([sys.executable, "-c", "import inspector.cli, inspector.session"],
                   check=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    p.add_argument("--only", default="", help="comma-separated measures: " + ",".join(MEASURES))
    p.add_argument("--python", default=default_python(), help="interpreter of the targets")
    p.add_argument("--per-python", choices=("auto", "yes", "no"), default="auto",
                   help="also time ours on every interpreter found (auto: not with --quick)")
    p.add_argument("--out", default=str(Path(__file__).with_name("results") / "latest.json"))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--nice", type=int, default=-10, metavar="N",
                   help="run the bench, its tools and targets at this nice value (default "
                        "-10 if permitted: on a shared machine, other work disturbs the "
                        "measures less; 0 leaves it alone)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from bench.config import Config

    args = parse_args(argv)
    chosen = [m for m in (args.only.split(",") if args.only else MEASURES) if m]
    unknown = [m for m in chosen if m not in MEASURES]
    if unknown:
        print("unknown measure(s): %s; choose from %s" % (", ".join(unknown), ", ".join(MEASURES)),
              file=sys.stderr)
        return 2
    per_python = args.per_python == "yes" or (args.per_python == "auto" and not args.quick)
    cfg = Config(python=args.python, quick=args.quick, seed=args.seed,
                 other_pythons=other_pythons() if per_python else [])
    nice = set_nice(args.nice)
    workdir = tempfile.mkdtemp(prefix="inspector-bench-")
    # Our queries are audited: keep the bench's thousands of records out of the real log.
    os.environ["INSPECTOR_AUDIT_LOG"] = os.path.join(workdir, "audit.jsonl")
    warm_bytecode_cache(workdir)
    try:
        return run_measures(args, cfg, chosen, nice)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_measures(args: argparse.Namespace, cfg: Any, chosen: list[str], nice: int) -> int:
    from bench import report
    from bench.config import python_version
    from bench.machine import OtherLoad
    from bench.tools import ATTACH_FAILURES

    sections = []
    started = time.monotonic()
    failures = 0
    for name in chosen:
        t0 = time.monotonic()
        other = OtherLoad()
        print("running %s ... (load average %.2f)" % (name, loadavg()), file=sys.stderr,
              flush=True)
        try:
            section = _measure(name).run(cfg)
        except Exception as e:  # one broken measure must not hide the others
            failures += 1
            traceback.print_exc()
            section = report.Section(name, "%s: FAILED" % name,
                                     notes=["failed: %s: %s" % (type(e).__name__, e)])
        section.data["seconds"] = time.monotonic() - t0
        busy = other.stop()
        section.data["other_cpus_busy"] = busy
        if busy > 0.15:
            section.notes.append(
                "The machine was busy with other work during this measure: other processes "
                "kept %.2f of its %d CPUs busy on average; absolute times are inflated, ratios "
                "less so." % (busy, os.cpu_count() or 1))
        sections.append(section)
        print(report.markdown(section), flush=True)
    meta = {
        "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "python": args.python,
        "python_version": python_version(args.python),
        "machine": "%s, %d CPUs, %s" % (platform.machine(), os.cpu_count() or 0,
                                         platform.platform()),
        "seconds": time.monotonic() - started,
        "loadavg_end": loadavg(),
        "nice": nice,
    }
    print("### Goals\n\n" + report.summary_table(sections) + "\n")
    meta["attach_failures"] = ATTACH_FAILURES
    if ATTACH_FAILURES:
        print("Attach failures during the run (%d; each retried once):\n" % len(ATTACH_FAILURES))
        for failure in ATTACH_FAILURES:
            print("- %s" % failure)
        print()
    print("total %.0f s" % meta["seconds"], file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.to_json(meta, sections))
    print("wrote %s" % out, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
