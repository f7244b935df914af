"""One venv per interpreter with real third-party service packages, pinned:
gevent (with its greenlet) and uvloop, installed from the package registry
once and kept under .pytest_cache/targets/ (tests/integration/test_gevent.py
and test_services.py share it). Where a pin cannot be installed (no registry,
no wheel for that interpreter) the test is a visible skip naming why.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# The newest release of each that supports the interpreter, pinned exactly
# (greenlet too: gevent accepts a range, and the greenlet C getters the agent
# runs are what the tests must pin down).
_PINS = {
    (3, 8): ("gevent==24.2.1", "greenlet==3.1.1", "uvloop==0.21.0"),
    (3, 9): ("gevent==25.9.1", "greenlet==3.2.5", "uvloop==0.21.0"),
    "default": ("gevent==26.9.0", "greenlet==3.5.6", "uvloop==0.21.0"),
}


def version(python: str) -> tuple[int, int]:
    out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                         capture_output=True, text=True, check=True)
    major, minor = out.stdout.split()
    return int(major), int(minor)


def services_python(python: str) -> str:
    """The venv python for `python` with gevent, greenlet and uvloop installed.

    Keyed by the interpreter's real path as well as its version: the system
    3.11 and pyenv's 3.11 each get their own venv. The first call starts
    every interpreter's install in the background (two at a time: about a
    minute and a half of pip on a fresh checkout, now beside the tests)."""
    _prefetch()
    result = _future(python).result()
    if result.startswith("skip: "):
        pytest.skip(result[len("skip: "):])
    return result


_FUTURES: dict[str, Future[str]] = {}
_POOL: ThreadPoolExecutor | None = None
_LOCK = threading.Lock()


def _future(python: str) -> Future[str]:
    global _POOL
    with _LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="services-venv")
        key = os.path.realpath(python)
        if key not in _FUTURES:
            _FUTURES[key] = _POOL.submit(_install, python)
        return _FUTURES[key]


def _prefetch() -> None:
    from tests.pythons import interpreters

    for interp in interpreters():
        if interp.path:
            _future(interp.path)


def _install(python: str) -> str:
    """The venv's python, or "skip: why"."""
    ver = version(python)
    pins = _PINS.get(ver, _PINS["default"])
    key = hashlib.sha1(os.path.realpath(python).encode()).hexdigest()[:8]
    venv = REPO / ".pytest_cache" / "targets" / ("services-%d.%d-%s" % (*ver, key))
    marker = venv / ("installed-" + "-".join(pins))
    if not marker.exists():
        subprocess.run([python, "-m", "venv", "--clear", str(venv)], check=True,
                       capture_output=True)
        out = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                              "--disable-pip-version-check", *pins],
                             capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            return "skip: could not install %s for Python %d.%d: %s" % (
                " ".join(pins), *ver, out.stderr.strip().splitlines()[-1:])
        marker.touch()
    return str(venv / "bin" / "python")
