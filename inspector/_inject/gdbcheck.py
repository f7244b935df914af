"""Preflight for the gdb-based backends: can this gdb put registers back?

On hosts with AMX-capable CPUs, Debian 12's gdb 13 writes back a 2,696-byte
XSAVE area where the kernel takes only its full size (11,008 bytes): every
inferior call ends in "Couldn't write extended state status: Bad address",
and the thread gdb borrowed is left with changed registers (a target died of
it). So before gdb touches a target, it makes one call in a throwaway process
of ours; if that fails, the backend refuses with the cause and the remedy.
The result is kept for the life of the client process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

from .. import _elf
from ..errors import AttachError

PROBE_TIMEOUT = 10.0
_RESULT = re.compile(r"^\$1 = (-?\d+)\s*$", re.MULTILINE)


def gdb_call_problem(gdb: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """Why `gdb` cannot make an inferior call and restore the registers
    (one line), or None when it can. A definite answer is kept for the life
    of the process; a probe that ran out of time is not."""
    if gdb in _ANSWERS:
        return _ANSWERS[gdb]
    problem, definite = _probe(gdb, timeout)
    if definite:
        _ANSWERS[gdb] = problem
    return problem


_ANSWERS: dict[str, str | None] = {}


def _probe(gdb: str, timeout: float) -> tuple[str | None, bool]:
    child = subprocess.Popen([sys.executable, "-S", "-c", "import time; time.sleep(60)"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        address = _getpid_address(child.pid)
        if address is None:
            return None, False  # cannot tell; the real attach will say what is wrong
        try:
            out = subprocess.run(
                [gdb, "-batch", "-nx", "--readnever", "-p", str(child.pid),
                 "-ex", "call ((int (*)(void)) %d)()" % address],
                stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=max(0.1, timeout))
        except subprocess.TimeoutExpired:
            return ("gdb did not finish a test call in a throwaway process within %.1f s"
                    % timeout), False
        found = _RESULT.search(out.stdout)
        if found and int(found.group(1)) == child.pid and _still_healthy(child):
            return None, True
        lines = [ln.strip() for ln in (out.stderr + out.stdout).splitlines()
                 if "rror" in ln or "Couldn't" in ln or "annot" in ln]
        return (lines[-1] if lines else "the test call returned no result"), True
    finally:
        child.kill()
        child.wait()


def _getpid_address(pid: int) -> int | None:
    for _ in range(100):  # the child maps libc within milliseconds
        try:
            maps = _elf.read_maps(pid)
            libc = _elf.find_libc(maps)
            if libc is not None:
                return _elf.resolve(pid, libc, ["getpid"], maps).get("getpid")
        except (OSError, _elf.ElfError):
            pass
        time.sleep(0.01)
    return None


def _still_healthy(child: subprocess.Popen[bytes]) -> bool:
    """After gdb's call and detach the throwaway sleeps on, unharmed."""
    time.sleep(0.05)
    if child.poll() is not None:
        return False
    try:
        with open("/proc/%d/stat" % child.pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state in ("S", "R")


def require_working_gdb(gdb: str, backend: str, deadline: float | None = None) -> None:
    timeout = PROBE_TIMEOUT if deadline is None else min(PROBE_TIMEOUT,
                                                         deadline - time.monotonic())
    problem = gdb_call_problem(os.path.realpath(gdb), timeout)
    if problem:
        raise AttachError(
            "the %s injector is unsafe here: %s cannot restore a thread's registers after a "
            "call (%s; gdb writes a shorter extended register state than this kernel accepts, "
            "as on AMX-capable CPUs), and a failed call can kill the target; nothing was "
            "touched; use the default injector (drop --injector %s)"
            % (backend, gdb, problem.rstrip("."), backend))
