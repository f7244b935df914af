"""Find Python processes and describe them without injecting anything.

The Python version comes from what the process has mapped: the name of its
``libpython3.X.so``, else the executable's name (``python3.11``), else the
``Py_Version`` constant that 3.11+ exports, read from ``/proc/PID/mem``.
Metrics come from psutil, sampled from outside the target.
"""

from __future__ import annotations

import os
import re
import struct

from . import _elf
from ._record import record
from ._text import term_safe

TYPE_CHECKING = False  # typing's constant without importing typing (mypy reads it as True)
if TYPE_CHECKING:
    import psutil  # imported where used: attach's preflight needs none of it

_LIBPYTHON_RE = re.compile(r"/libpython(\d)\.(\d+)[a-z]*\.so")
_NAME_VERSION_RE = re.compile(r"python(\d)\.(\d+)")
SUPPORTED = ((3, 8), (3, 13))  # inclusive range of target versions


@record
class PythonProcess:
    pid: int
    user: str
    version: str  # "3.11" or "?"
    command: str
    cpu_percent: float
    rss: int  # bytes
    num_threads: int
    create_time: float
    agent: str = ""  # "resident" when a resident agent serves it

    def to_json(self) -> dict[str, object]:
        return {
            "pid": self.pid, "user": self.user, "python": self.version,
            "command": self.command, "cpu_percent": self.cpu_percent, "rss": self.rss,
            "threads": self.num_threads, "started": self.create_time, "agent": self.agent,
        }


def python_binary(pid: int, maps: list[_elf.Mapping] | None = None) -> tuple[str, str] | None:
    """(path of the file exporting the C API, version "3.X") or None."""
    if maps is None:
        maps = _elf.read_maps(pid)
    for m in maps:
        hit = _LIBPYTHON_RE.search(m.path)
        if hit:
            return m.path, "%s.%s" % hit.groups()
    exe = _elf.exe_path(pid)
    if exe.endswith(" (deleted)"):
        exe = exe[: -len(" (deleted)")]
    hit = _NAME_VERSION_RE.search(os.path.basename(exe))
    if hit:
        return exe, "%s.%s" % hit.groups()
    version = _py_version_constant(pid, exe, maps)
    if version:
        return exe, version
    return None


def _py_version_constant(pid: int, exe: str, maps: list[_elf.Mapping]) -> str | None:
    """Read Py_Version (3.11+) from the target's memory, if exported."""
    try:
        symbols = _elf.resolve(pid, exe, ("Py_Version", "Py_IsInitialized"), maps)
        if "Py_IsInitialized" not in symbols:
            return None
        addr = symbols.get("Py_Version")
        if addr is None:
            return "?"
        with open("/proc/%d/mem" % pid, "rb") as mem:
            mem.seek(addr)
            (hexversion,) = struct.unpack("<I", mem.read(4))
        return "%d.%d" % (hexversion >> 24, (hexversion >> 16) & 0xFF)
    except (OSError, _elf.ElfError, struct.error):
        return None


def version_tuple(version: str) -> tuple[int, int] | None:
    try:
        major, minor = version.split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        return None


def _looks_like_python(proc: psutil.Process) -> bool:
    """Cheap filter before reading maps: name or exe mentions python."""
    import psutil

    try:
        name = proc.name()
        return "python" in name.lower() or "python" in (proc.exe() or "").lower()
    except (psutil.Error, OSError):
        return False


CPU_SAMPLE_SECONDS = 0.25  # `ps` samples CPU over this interval, as top does


def list_python_processes(include_all_users: bool = True,
                          interval: float = CPU_SAMPLE_SECONDS) -> list[PythonProcess]:
    """Every process that maps a CPython runtime, with metrics.

    CPU % is measured over `interval` seconds: psutil's first
    ``cpu_percent(None)`` of a process has nothing to compare with and is
    always 0.0, so every candidate is primed first, then read once after one
    shared sleep (the cost is `interval`, not `interval` per process)."""
    import time

    import psutil

    found_procs = []
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            found = python_binary(proc.pid)
        except (OSError, _elf.ElfError):
            # Not readable by us (another user's process): fall back to its name.
            if not _looks_like_python(proc):
                continue
            found = ("", _version_from_name(proc))
        if found is None:
            continue
        try:
            proc.cpu_percent(None)
        except (psutil.Error, OSError):
            continue
        found_procs.append((proc, found[1]))
    if interval > 0 and found_procs:
        time.sleep(interval)
    out = []
    for proc, version in found_procs:
        try:
            with proc.oneshot():
                out.append(PythonProcess(
                    pid=proc.pid,
                    user=proc.username(),
                    version=version,
                    # any local user's text: no escape sequences (term_safe)
                    command=term_safe(" ".join(proc.cmdline()) or proc.name()),
                    cpu_percent=proc.cpu_percent(None),
                    rss=proc.memory_info().rss,
                    num_threads=proc.num_threads(),
                    create_time=proc.create_time(),
                ))
        except (psutil.Error, OSError):
            continue
    return out


def _version_from_name(proc: psutil.Process) -> str:
    import psutil

    try:
        hit = _NAME_VERSION_RE.search(proc.name() + " " + (proc.exe() or ""))
    except (psutil.Error, OSError):
        hit = None
    return "%s.%s" % hit.groups() if hit else "?"
