"""The few ptrace(2) requests the native injector makes, through ctypes.

Linux makes the *thread* that called PTRACE_SEIZE the tracer: every later
request for that tracee must come from the same thread, and when that thread
exits the kernel detaches its tracees. `native.py` relies on both.
"""

from __future__ import annotations

import ctypes
import errno
import os
import time

from .._record import NamedTuple

PTRACE_GETREGS = 12
PTRACE_SETREGS = 13
PTRACE_DETACH = 17
PTRACE_SYSCALL = 24
PTRACE_GETREGSET = 0x4204
PTRACE_SETREGSET = 0x4205
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_GET_SYSCALL_INFO = 0x420E  # Linux 5.3
SYSCALL_ENTRY, SYSCALL_EXIT = 1, 2
PTRACE_O_TRACESYSGOOD = 1
PTRACE_EVENT_STOP = 128
WALL = 0x40000000
SIGTRAP = 5
STOP_SIGNALS = (19, 20, 21, 22)  # SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU

_libc = ctypes.CDLL(None, use_errno=True)
_ptrace = _libc.ptrace
_ptrace.argtypes = (ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p)
_ptrace.restype = ctypes.c_long


class PtraceError(OSError):
    """A ptrace request failed; `errno` says why."""


class _IoVec(ctypes.Structure):
    _fields_ = (("base", ctypes.c_void_p), ("len", ctypes.c_size_t))


def _request(request: int, tid: int, addr: int | None = None,
             data: int | ctypes.c_void_p | None = None) -> int:
    ctypes.set_errno(0)
    result = int(_ptrace(request, tid, addr, data))
    if result == -1:
        err = ctypes.get_errno()
        if err:
            raise PtraceError(err, "ptrace(%d, %d): %s" % (request, tid, os.strerror(err)))
    return result


def seize(tid: int) -> None:
    _request(PTRACE_SEIZE, tid, 0, PTRACE_O_TRACESYSGOOD)


def interrupt(tid: int) -> None:
    _request(PTRACE_INTERRUPT, tid)


def detach(tid: int, signal: int = 0) -> None:
    _request(PTRACE_DETACH, tid, 0, signal)


def resume_to_syscall(tid: int, signal: int = 0) -> None:
    """Let the tracee run until its next system-call entry or exit."""
    _request(PTRACE_SYSCALL, tid, 0, signal)


def get_regs(tid: int, count: int) -> list[int]:
    buf = (ctypes.c_uint64 * count)()
    _request(PTRACE_GETREGS, tid, 0, ctypes.addressof(buf))
    return list(buf)


def set_regs(tid: int, regs: list[int]) -> None:
    buf = (ctypes.c_uint64 * len(regs))(*(r & 0xFFFFFFFFFFFFFFFF for r in regs))
    _request(PTRACE_SETREGS, tid, 0, ctypes.addressof(buf))


def syscall_stop_kind(tid: int) -> int:
    """SYSCALL_ENTRY or SYSCALL_EXIT at a system-call stop (rax alone cannot
    tell: a call may return -ENOSYS, the value every entry stop shows)."""
    buf = ctypes.create_string_buffer(88)
    _request(PTRACE_GET_SYSCALL_INFO, tid, 88, ctypes.addressof(buf))
    return buf.raw[0]


def get_regset(tid: int, note: int, max_size: int) -> bytes:
    """A register set at the size the kernel reports (it shortens iov_len)."""
    buf = ctypes.create_string_buffer(max_size)
    iov = _IoVec(ctypes.cast(buf, ctypes.c_void_p), max_size)
    _request(PTRACE_GETREGSET, tid, note, ctypes.addressof(iov))
    return buf.raw[:iov.len]


def set_regset(tid: int, note: int, data: bytes) -> None:
    buf = ctypes.create_string_buffer(data, len(data))
    iov = _IoVec(ctypes.cast(buf, ctypes.c_void_p), len(data))
    _request(PTRACE_SETREGSET, tid, note, ctypes.addressof(iov))


class Stop(NamedTuple):
    """What waitpid said about the tracee."""

    status: int

    @property
    def exited(self) -> bool:
        return os.WIFEXITED(self.status) or os.WIFSIGNALED(self.status)

    @property
    def signal(self) -> int:
        return os.WSTOPSIG(self.status) if os.WIFSTOPPED(self.status) else 0

    @property
    def event(self) -> int:
        return self.status >> 16

    @property
    def is_syscall(self) -> bool:
        return self.signal == SIGTRAP | 0x80

    @property
    def is_group_stop(self) -> bool:
        return self.event == PTRACE_EVENT_STOP and self.signal in STOP_SIGNALS

    @property
    def is_interrupt(self) -> bool:
        return self.event == PTRACE_EVENT_STOP and self.signal == SIGTRAP

    @property
    def delivers_signal(self) -> int:
        """The signal of a signal-delivery stop (to pass on when resuming), or 0."""
        if os.WIFSTOPPED(self.status) and self.event == 0 and not self.is_syscall:
            return self.signal
        return 0


class StopTimeout(Exception):
    """The tracee did not stop before the deadline."""


def wait_stop(tid: int, deadline: float) -> Stop:
    """Wait for the tracee's next stop (or exit) until `deadline`.

    waitpid blocks without a timeout, so poll: spin with sched_yield for the
    first millisecond (our stops take tens of microseconds), then sleep.
    """
    spin_until = time.monotonic() + 0.001
    while True:
        try:
            pid, status = os.waitpid(tid, WALL | os.WNOHANG)
        except ChildProcessError:
            raise PtraceError(errno.ECHILD, "thread %d is not traced by us" % tid) from None
        if pid == tid:
            return Stop(status)
        now = time.monotonic()
        if now >= deadline:
            raise StopTimeout(tid)
        if now < spin_until:
            os.sched_yield()
        else:
            time.sleep(0.0002)


class Memory:
    """The target's memory through /proc/PID/mem (we trace one of its threads)."""

    def __init__(self, pid: int) -> None:
        self.fd = os.open("/proc/%d/mem" % pid, os.O_RDWR | os.O_CLOEXEC)

    def read(self, address: int, size: int) -> bytes:
        return os.pread(self.fd, size, address)

    def write(self, address: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.pwrite(self.fd, view, address)
            if n <= 0:
                raise OSError(errno.EIO, "short write at %#x" % address)
            view, address = view[n:], address + n

    def close(self) -> None:
        os.close(self.fd)
