"""Explain, from /proc only, what a target is doing when the agent is late."""

from __future__ import annotations

import os
import socket
import time

SAMPLE_SECONDS = 0.2

# Stop signals: SIGSTOP always stops; SIGTSTP/SIGTTIN/SIGTTOU only when the
# process neither catches nor ignores them (default action).
_STOP_SIGNALS = ((19, "SIGSTOP"), (20, "SIGTSTP"), (21, "SIGTTIN"), (22, "SIGTTOU"))


def process_alive(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _thread_cpu_ticks(pid: int) -> dict[int, tuple[int, str]]:
    out: dict[int, tuple[int, str]] = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                raw = f.read()
        except OSError:
            continue
        name = raw[raw.find("(") + 1:raw.rfind(")")]
        fields = raw.rsplit(")", 1)[1].split()
        out[int(tid)] = (int(fields[11]) + int(fields[12]), name)  # utime + stime
    return out


def describe_busy_threads(pid: int) -> str:
    """'thread 123 (python3) is using 98% CPU', or '' if nothing is busy."""
    before = _thread_cpu_ticks(pid)
    time.sleep(SAMPLE_SECONDS)
    after = _thread_cpu_ticks(pid)
    hz = os.sysconf("SC_CLK_TCK")
    busy = []
    for tid, (ticks, name) in after.items():
        if tid in before:
            pct = (ticks - before[tid][0]) / hz / SAMPLE_SECONDS * 100
            if pct >= 50:
                busy.append("thread %d (%s) is using %.0f%% CPU" % (tid, name, pct))
    return "; ".join(busy)


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks (field 22 of /proc/PID/stat):
    with the pid it names one process for good. None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _status_fields(path: str) -> dict[str, str]:
    with open(path) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def pending_stop(pid: int) -> str | None:
    """The name of a stop signal the user queued for `pid`, or None.

    While gdb holds a process every thread reads "t (tracing stop)", so the
    state letter cannot tell a user's stop from gdb's; the signal queues can
    (measured, gdb 13, 21-thread targets):
    - a SIGSTOP sent while gdb holds the process waits in the shared queue
      (ShdPnd);
    - for a process that was already stopped, gdb re-queues SIGSTOP on each
      thread, the main thread included (its SigPnd);
    - gdb's own attach SIGSTOPs stay pending in *other* threads' SigPnd until
      gdb gets round to them - not a stop of the user's, so other threads'
      queues are not read. (The main thread's is consumed during the attach.)
    Detaching delivers a queued stop: the process stops again, as it was.
    """
    try:
        fields = _status_fields("/proc/%d/status" % pid)  # main thread + process-wide
        pending = int(fields.get("SigPnd", "0"), 16) | int(fields.get("ShdPnd", "0"), 16)
        handled = int(fields.get("SigCgt", "0"), 16) | int(fields.get("SigIgn", "0"), 16)
    except (OSError, ValueError):
        return None
    for number, name in _STOP_SIGNALS:
        bit = 1 << (number - 1)
        if pending & bit and (number == 19 or not handled & bit):
            return name
    return None


def describe_stop(pid: int) -> str:
    """'process 42 is stopped (T)' / '... has a SIGSTOP pending', or ''."""
    try:
        state = _status_fields("/proc/%d/status" % pid).get("State", "")
    except OSError:
        return ""
    if state.startswith("T"):
        return "process %d is stopped (%s)" % (pid, state)
    signal = pending_stop(pid)
    if signal:
        return "process %d has a %s pending" % (pid, signal)
    return ""


AGENT_FDS = 4  # descriptors the agent may hold at once: boot file, socket, resident listener


def fd_usage(pid: int) -> tuple[int, int, str] | None:
    """(open descriptors, RLIMIT_NOFILE soft limit, hard limit text) of `pid`,
    or None when there is no limit or /proc does not tell us."""
    try:
        with open("/proc/%d/limits" % pid) as f:
            line = next((x for x in f if x.startswith("Max open files")), "")
        fields = line[len("Max open files"):].split()
        if not fields or fields[0] == "unlimited":
            return None
        soft = int(fields[0])
        return len(os.listdir("/proc/%d/fd" % pid)), soft, fields[1] if len(fields) > 1 else "?"
    except (OSError, ValueError):
        return None


def fd_exhaustion(pid: int, needed: int = AGENT_FDS) -> str:
    """Why the agent cannot open its files in `pid` (near RLIMIT_NOFILE), or ''."""
    usage = fd_usage(pid)
    if usage is None:
        return ""
    used, soft, hard = usage
    if soft - used >= needed:
        return ""
    return ("process %d has %d of its %d file descriptors open (RLIMIT_NOFILE); the agent "
            "needs %d free: raise its limit (`prlimit --pid %d --nofile=%d:%s`) or close files, "
            "and retry" % (pid, used, soft, needed, pid, used + 64, hard))


# Address space the agent needs free: its thread's stack (8 MB by default), a
# malloc arena for the new thread (glibc reserves 64 MB per arena) and the
# compiled payload. Below this, starting the agent thread fails inside the
# target, which looks to the client like a GIL that is never released.
AGENT_ADDRESS_SPACE = 64 * 1024 * 1024


def address_space_shortage(pid: int, needed: int = AGENT_ADDRESS_SPACE) -> str:
    """Why the agent thread cannot start in `pid` (near RLIMIT_AS), or ''."""
    try:
        with open("/proc/%d/limits" % pid) as f:
            line = next((x for x in f if x.startswith("Max address space")), "")
        fields = line[len("Max address space"):].split()
        if not fields or fields[0] == "unlimited":
            return ""
        soft = int(fields[0])
        size_kb = int(_status_fields("/proc/%d/status" % pid).get("VmSize", "0 kB").split()[0])
    except (OSError, ValueError, IndexError):
        return ""
    free = soft - size_kb * 1024
    if free >= needed:
        return ""
    mb = 1024 * 1024
    return ("process %d has only %d MB of address space left under its RLIMIT_AS (limit %d MB, "
            "%d MB mapped); the agent's thread needs about %d MB to start: raise the limit "
            "(`prlimit --pid %d --as=%d`) and retry"
            % (pid, max(0, free) // mb, soft // mb, size_kb // 1024, needed // mb, pid,
               soft + 2 * needed))


def agent_blocked(pid: int) -> str:
    """Why an injected agent could not have reached the client, seen from /proc: the
    process is stopped, out of file descriptors or of address space. '' if none."""
    stop = describe_stop(pid)
    if stop:
        return ("%s, so the agent could not start; it is left as it is: resume it with "
                "`kill -CONT %d` and retry (the loader it runs then does nothing, it is "
                "too late)" % (stop, pid))
    return fd_exhaustion(pid) or address_space_shortage(pid)


def attach_lock_name(pid: int) -> bytes:
    """The abstract socket name an injecting inspector holds for `pid`
    (see _inject.native.attach_lock)."""
    return b"\0inspector-attach-%d-%d" % (pid, process_start(pid) or 0)


def lock_holder(name: bytes) -> tuple[int, int] | None:
    """(pid, uid) of the process that holds the abstract socket `name`."""
    from ._channel import peer_credentials  # (it imports this module)

    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        probe.connect(name)
        cred = peer_credentials(probe)
        return cred.pid, cred.uid
    except OSError:
        return None
    finally:
        probe.close()


def inspector_attaching(pid: int) -> int | None:
    """The pid of another inspector (root's or ours) injecting into `pid`
    right now, if any: its ptrace of one thread is not a debugger's."""
    holder = lock_holder(attach_lock_name(pid))
    if holder is not None and holder[1] in (0, os.geteuid()):
        return holder[0]
    return None
