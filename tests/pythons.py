"""Find every CPython the tests should run targets on.

Order of discovery: ``INSPECTOR_TEST_PYTHONS`` (colon-separated paths) if set;
otherwise every 3.8-3.13 that ``pyenv`` knows, ``python3.X`` on PATH, and
Debian's ``/usr/bin/python3``. A version that is expected but not found is
still returned, with ``path=None``, so tests can show it as a visible skip.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

EXPECTED_MINORS = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13")
SYSTEM_PYTHON = Path("/usr/bin/python3")


@dataclass(frozen=True)
class Interpreter:
    label: str  # "3.8" ... "3.13" or "system"
    path: str | None

    @property
    def missing_reason(self) -> str:
        return "interpreter %s not found on this machine (set INSPECTOR_TEST_PYTHONS)" % self.label


def _pyenv_root() -> Path | None:
    root = os.environ.get("PYENV_ROOT")
    if root:
        return Path(root)
    exe = shutil.which("pyenv")
    if exe:
        try:
            out = subprocess.run([exe, "root"], capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                return Path(out.stdout.strip())
        except (OSError, subprocess.TimeoutExpired):
            pass
    default = Path.home() / ".pyenv"
    return default if default.is_dir() else None


def _find_minor(minor: str) -> str | None:
    root = _pyenv_root()
    if root is not None:
        versions = sorted((root / "versions").glob(minor + ".*"), reverse=True)
        for v in versions:
            exe = v / "bin" / ("python" + minor)
            if exe.exists() and v.name.split(".")[:2] == minor.split("."):
                return str(exe)
    exe = shutil.which("python" + minor)
    return exe


@cache
def interpreters() -> tuple[Interpreter, ...]:
    override = os.environ.get("INSPECTOR_TEST_PYTHONS")
    if override:
        found = []
        for path in override.split(":"):
            if path:
                found.append(Interpreter(label=_label_of(path), path=path))
        return tuple(found)
    found = [Interpreter(label=m, path=_find_minor(m)) for m in EXPECTED_MINORS]
    found.append(Interpreter("system", str(SYSTEM_PYTHON) if SYSTEM_PYTHON.exists() else None))
    return tuple(found)


def _label_of(path: str) -> str:
    try:
        out = subprocess.run(
            [path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=10,
        )
        return out.stdout.strip() or path
    except (OSError, subprocess.TimeoutExpired):
        return path


def oldest_and_newest() -> tuple[Interpreter, ...]:
    """The first and last of the expected minors (for the expensive suites)."""
    by_label = {i.label: i for i in interpreters()}
    picks = [by_label.get(EXPECTED_MINORS[0]), by_label.get(EXPECTED_MINORS[-1])]
    return tuple(p for p in picks if p is not None) or interpreters()[:1]


# --- the matrix cannot shrink quietly ---------------------------------------------
def _pyenv_roots() -> list[Path]:
    """Every place a pyenv tree may be: PYENV_ROOT, `pyenv root`, ~/.pyenv, /root/.pyenv."""
    roots = [Path(p) for p in (os.environ.get("PYENV_ROOT"),) if p]
    exe = shutil.which("pyenv")
    if exe:
        try:
            out = subprocess.run([exe, "root"], capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                roots.append(Path(out.stdout.strip()))
        except (OSError, subprocess.TimeoutExpired):
            pass
    roots += [Path.home() / ".pyenv", Path("/root/.pyenv")]
    return [r for r in dict.fromkeys(roots) if (r / "versions").is_dir()]


def machine_interpreters() -> dict[str, str]:
    """label -> path of every expected CPython this machine has, found without
    interpreters() (so a broken discovery there cannot hide one)."""
    found: dict[str, str] = {}
    for minor in EXPECTED_MINORS:
        for root in _pyenv_roots():
            for version in sorted((root / "versions").glob(minor + ".*"), reverse=True):
                exe = version / "bin" / ("python" + minor)
                if version.name.split(".")[:2] == minor.split(".") and os.access(exe, os.X_OK):
                    found.setdefault(minor, str(exe))
        exe_on_path = shutil.which("python" + minor)
        if exe_on_path:
            found.setdefault(minor, exe_on_path)
    if os.access(SYSTEM_PYTHON, os.X_OK):
        found["system"] = str(SYSTEM_PYTHON)
    return found


def matrix_gaps() -> list[str]:
    """Labels the machine has that the test matrix would skip (or leave out)."""
    covered = {i.label for i in interpreters() if i.path is not None}
    if os.environ.get("INSPECTOR_TEST_PYTHONS"):
        covered |= {"system"} if any(i.path == str(SYSTEM_PYTHON) for i in interpreters()) \
            else set()
    return sorted(set(machine_interpreters()) - covered)
