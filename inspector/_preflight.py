"""Refuse early, precisely, and without touching the target.

Every check here reads /proc only. Each refusal is one line naming the cause
and what the user can do; all of them are AttachError (exit code 5).
"""

from __future__ import annotations

import os
import pwd

from . import _diagnose, _elf, procs
from ._inject.base import Target
from .errors import AttachError

_CAP_SYS_PTRACE = 19


def _status(pid: int) -> dict[str, str]:
    try:
        with open("/proc/%d/status" % pid) as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except FileNotFoundError:
        raise AttachError("no process with pid %d; list Python processes with "
                          "`inspector ps`" % pid) from None
    except PermissionError:
        raise AttachError("cannot read /proc/%d/status: permission denied; run as the "
                          "process owner or root" % pid) from None


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _has_cap_sys_ptrace() -> bool:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> _CAP_SYS_PTRACE & 1)
    except OSError:
        pass
    return False


def _ptrace_scope() -> int | None:
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None  # no Yama LSM: classic ptrace rules


def _command(pid: int) -> str:
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return "?"


def check_ptrace_allowed(pid: int, target_uid: int) -> None:
    privileged = os.geteuid() == 0 or _has_cap_sys_ptrace()
    scope = _ptrace_scope()
    if scope == 3:
        raise AttachError("ptrace is disabled on this machine (kernel.yama.ptrace_scope=3, "
                          "only a reboot changes it); no debugger can attach")
    if privileged:
        return
    if target_uid != os.geteuid():
        raise AttachError("process %d belongs to user %s; run inspector as that user or as "
                          "root" % (pid, _user_name(target_uid)))
    if scope in (1, 2):
        raise AttachError("ptrace of non-child processes is restricted "
                          "(kernel.yama.ptrace_scope=%d); run as root, grant CAP_SYS_PTRACE, "
                          "or set the sysctl to 0" % scope)


def check(pid: int) -> Target:
    """Return a Target, or raise AttachError saying why we cannot attach."""
    if pid <= 0:
        raise AttachError("invalid pid %d" % pid)
    if pid == os.getpid():
        raise AttachError("refusing to attach to inspector's own process")
    status = _status(pid)
    state = status.get("State", "?")
    if state.startswith(("Z", "X")):
        raise AttachError("process %d has exited (zombie); nothing left to inspect" % pid)
    tracer = int(status.get("TracerPid", "0") or 0)
    if tracer and _diagnose.inspector_attaching(pid) is None:
        # (Another inspector's injection holds one thread for ~1 ms: the
        # injector waits its turn behind it, see _inject.native.attach_lock.)
        raise AttachError("process %d is already being traced by pid %d (%s); detach that "
                          "debugger first" % (pid, tracer, _command(tracer)))
    if state.startswith(("T", "t")):
        raise AttachError("process %d is stopped (%s); resume it with `kill -CONT %d` and "
                          "retry" % (pid, state, pid))
    uid = int(status.get("Uid", "0\t0").split()[1])
    check_ptrace_allowed(pid, uid)
    # An agent that cannot open its socket would fail silently inside the
    # target (it may not print): the client would only see a timeout.
    no_fds = _diagnose.fd_exhaustion(pid)
    if no_fds:
        raise AttachError(no_fds)
    try:
        maps = _elf.read_maps(pid)
        found = procs.python_binary(pid, maps)
        exe = _elf.exe_path(pid)
    except FileNotFoundError:
        raise AttachError("no process with pid %d (it exited)" % pid) from None
    except PermissionError:
        raise AttachError("cannot read the memory map of process %d: permission denied; run "
                          "as the process owner or root" % pid) from None
    command = _command(pid)
    if found is None:
        raise AttachError("process %d (%s) is not a CPython process: it maps no libpython and "
                          "its executable is not python3.X; `inspector ps` lists the Python "
                          "processes" % (pid, command[:80]))
    binary, version = found
    parsed = procs.version_tuple(version)
    if parsed is None:
        raise AttachError("cannot tell the Python version of process %d (%s)" % (pid, binary))
    low, high = procs.SUPPORTED
    if not low <= parsed <= high:
        raise AttachError("process %d runs Python %s; inspector supports CPython %d.%d-%d.%d"
                          % (pid, version, *low, *high))
    return Target(pid=pid, uid=uid, python_version=parsed, python_binary=binary, exe=exe,
                  cmdline=command)
