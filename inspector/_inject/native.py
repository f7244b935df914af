"""The default injector: ptrace one parked thread, never the whole process.

No gdb. The sequence (docs/DESIGN.md "The native injector" has the why and
the measurements):

1. Choose a thread *without stopping anything*: ``/proc/PID/task/TID/syscall``
   names the system call each sleeping thread is blocked in. A thread parked
   in a blocking call (futex, sleeps, poll/select/epoll, accept/recv/read...)
   holds no malloc lock and no GIL: a safe place to call ``pthread_create``.
   With no parked thread (a busy target) we borrow the main thread wherever it
   is and only queue a pending call (``Py_AddPendingCall``), which allocates
   nothing.
2. ``PTRACE_SEIZE`` + ``PTRACE_INTERRUPT`` that one thread; check that it is
   still where we saw it. Save its registers and its whole extended (XSAVE)
   state at the size the kernel reports, and write the state straight back
   once: a kernel that refuses it has been given nothing to refuse later.
3. Write a signal frame (``rt_sigframe``) below the thread's red zone that
   holds the saved registers - set up to restart the interrupted system call,
   as the kernel would - its blocked-signal mask and its FPU state. From now
   on every register state we give the thread ends in glibc's signal-return
   trampoline (``__restore_rt``) with ``rsp`` on that frame: if we die at any
   instant, the kernel detaches, the thread runs on and ``rt_sigreturn`` puts
   it back exactly where it was.
4. Two system calls on the thread through a ``syscall; ret`` gadget in libc
   whose ``ret`` lands in the trampoline: ``mmap`` a small mapping, write it
   through ``/proc/PID/mem``, ``mprotect`` its code read+exec.
5. Point the thread at page A's routine (`arch_x86_64`): it calls
   ``pthread_create`` (or ``Py_AddPendingCall``), then tail-jumps into
   ``munmap(page A)``, which returns into the trampoline. We follow it by
   system-call stops, read the result at the ``munmap``, and after
   ``rt_sigreturn`` write the saved XSAVE state back once more (exact even
   where the kernel only restores the legacy part from a frame), then detach.
   The new thread takes the GIL normally, runs stage 1 and unmaps its page.

Every other thread of the target keeps running throughout. The tracer is a
short-lived thread of ours: when it ends, the kernel detaches whatever it
still traced.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .. import _build, _log
from .._diagnose import (
    _status_fields,
    address_space_shortage,
    attach_lock_name,
    lock_holder,
    pending_stop,
)
from .._preflight import _command
from .._record import NamedTuple
from ..errors import AttachError
from . import arch as arch_select
from . import arch_x86_64 as arch  # the names every arch module has; see arch.current()
from . import ptrace, symbols
from . import stub_x86_64 as stub
from .base import FileDrop, InjectionReport, Target

log = _log.getLogger(__name__)

PYTHON_SYMBOLS = ("Py_IsInitialized", "PyGILState_Ensure", "PyGILState_Release",
                  "PyRun_SimpleString", "Py_AddPendingCall")
LIBC_SYMBOLS = ("munmap", "pthread_create", "pthread_self", "pthread_detach",
                "__errno_location")
STACK_HEADROOM = 64 * 1024  # free stack the routine may use below the frame
MAX_TRIES = 5  # threads that moved, exited or took a signal before we could borrow them
STOP_WAIT = 2.0  # seconds for one expected stop of the borrowed thread
LOCK_POLL = 0.01
MAX_FOREIGN_SYSCALLS = 10000  # system calls of signal handlers we let through
RESULT_WAIT = 0.5  # seconds to look for the routine's result once we let go
PARK_SAMPLES = 5  # looks at the threads before settling for a pending call
PARK_SAMPLE_GAP = 0.005

# Preferred order when several threads are parked: calls the kernel restarts
# exactly (or that return EINTR, which CPython retries) first; futex last,
# since a futex waiter may be waiting inside a lock of the C library.
_PREFERENCE = ("clock_nanosleep", "nanosleep", "pselect6", "select", "epoll_wait",
               "epoll_pwait", "epoll_pwait2", "poll", "ppoll", "pause", "accept", "accept4",
               "recvfrom", "recvmsg", "read", "futex")


class Candidate(NamedTuple):
    tid: int
    syscall: int  # -1 for the pending path (wherever the thread is)
    sp: int  # its stack pointer while blocked (0: unknown)


class Addresses(NamedTuple):
    symbols: dict[str, int]
    syscall_ret: int  # a `syscall; ret` in libc's text
    restorer: int  # glibc's __restore_rt


class _Retry(Exception):
    """The chosen thread moved, exited or took a signal: choose again."""


class _Stopped(Exception):
    """A stop signal (SIGSTOP, ^Z) arrived: leave the process stopped."""

    def __init__(self, signal: int) -> None:
        super().__init__(signal)
        self.signal = signal


# -- before touching anything ------------------------------------------------

def resolve_addresses(target: Target) -> Addresses:
    found, gadgets = symbols.resolve(target, PYTHON_SYMBOLS, LIBC_SYMBOLS,
                                     (arch.GADGET_SYSCALL_RET, arch.GADGET_RESTORER),
                                     optional_python=stub.CODE_PATH_SYMBOLS)
    if None in gadgets.values():
        raise AttachError("process %d's C library has no signal-return trampoline we know "
                          "(not glibc on x86-64?); use --injector gdb" % target.pid)
    return Addresses(found, gadgets[arch.GADGET_SYSCALL_RET] or 0,
                     gadgets[arch.GADGET_RESTORER] or 0)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def parked_candidate(pid: int, tid: int) -> Candidate | None:
    """The thread as a candidate if /proc shows it parked, stopping nothing."""
    try:
        stat = _read("/proc/%d/task/%d/stat" % (pid, tid))
        fields = _read("/proc/%d/task/%d/syscall" % (pid, tid)).split()
    except OSError:
        return None
    state = stat.rsplit(")", 1)[1].split()[0]
    if state != "S" or len(fields) < 9 or not fields[0].isdigit():
        return None
    nr = int(fields[0])
    if nr not in arch.PARKING_SYSCALLS:
        return None
    return Candidate(tid, nr, int(fields[7], 16))


def parked_threads(pid: int) -> list[Candidate]:
    try:
        tids = sorted(int(t) for t in os.listdir("/proc/%d/task" % pid))
    except OSError:
        return []
    found = [c for c in (parked_candidate(pid, tid) for tid in tids) if c is not None]

    def rank(c: Candidate) -> tuple[int, bool]:
        name = arch.PARKING_SYSCALLS[c.syscall]
        order = _PREFERENCE.index(name) if name in _PREFERENCE else len(_PREFERENCE)
        return order, c.tid != pid

    return sorted(found, key=rank)


def _stack_mapping(pid: int, address: int) -> tuple[int, int, str] | None:
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split(None, 5)
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if lo <= address < hi:
                return lo, hi, (parts[5].strip() if len(parts) > 5 else "")
    return None


def _task_status(pid: int, tid: int) -> dict[str, str]:
    return _status_fields("/proc/%d/task/%d/status" % (pid, tid))


def _blocked_signals(pid: int, tid: int) -> int:
    return int(_task_status(pid, tid).get("SigBlk", "0"), 16)


def _tracer_of(pid: int, tid: int) -> int:
    try:
        return int(_task_status(pid, tid).get("TracerPid", "0"))
    except (OSError, ValueError):
        return 0


def seize_refusal(pid: int, tid: int, err: int) -> str:
    """Why PTRACE_SEIZE failed, diagnosed rather than guessed."""
    tracer = _tracer_of(pid, tid)
    if tracer:
        command = _command(tracer)[:120] or "?"
        if "inspector" in command:
            return ("another inspector (pid %d) is attaching to process %d; retry in a moment"
                    % (tracer, pid))
        return ("thread %d of process %d is being traced by pid %d (%s); detach that debugger "
                "first" % (tid, pid, tracer, command))
    if os.geteuid() == 0:
        return ("the kernel refused ptrace on process %d (%s) although inspector runs as "
                "root: a security module (AppArmor, SELinux) or the process's user namespace "
                "forbids it" % (pid, os.strerror(err)))
    return ("ptrace is not permitted on process %d (%s); run as the process owner or root, or "
            "allow ptrace (kernel.yama.ptrace_scope=0, CAP_SYS_PTRACE in containers)"
            % (pid, os.strerror(err)))


@contextmanager
def attach_lock(pid: int, deadline: float) -> Iterator[None]:
    """One injection at a time per target, across inspector processes.

    An abstract Unix socket name is the lock: no file to leave behind, and the
    kernel frees it when its holder dies. A holder that is neither root nor
    us (a bystander squatting the name) is ignored, so no one else can block
    an attach; concurrent attaches are harmless anyway, this only makes them
    take turns.
    """
    name = attach_lock_name(pid)
    lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        while True:
            try:
                lock.bind(name)
                lock.listen(16)
                break
            except OSError as e:
                if e.errno != errno.EADDRINUSE:
                    raise
            holder = lock_holder(name)
            if holder is None:
                continue  # released in between
            holder_pid, holder_uid = holder
            if holder_uid not in (0, os.geteuid()):
                log.info("ignoring attach lock of pid %d (uid %d)", holder_pid, holder_uid)
                break
            if time.monotonic() >= deadline:
                raise AttachError("another inspector (pid %d) is attaching to process %d; retry "
                                  "in a moment" % (holder_pid, pid))
            time.sleep(LOCK_POLL)
        yield
    finally:
        lock.close()


# -- the injector ------------------------------------------------------------

class NativeInjector:
    name = "native"
    own_thread = True  # stage 1 runs on the thread the routine starts

    def inject(self, target: Target, stage1: str, files: FileDrop, deadline: float, *,
               stage1_code: bytes | None = None) -> InjectionReport:
        arch_select.current()  # refuses other machines
        _refuse_shadow_stack(target.pid)
        started = time.monotonic()
        text = stage1.encode("ascii")
        addresses = resolve_addresses(target)
        found = addresses.symbols
        code = stage1_code if stage1_code and \
            all(name in found for name in stub.CODE_PATH_SYMBOLS) and \
            _build.same_build(target.pid, target.python_binary) else b""
        with attach_lock(target.pid, deadline):
            outcome = _run_in_tracer_thread(target, addresses, (text, code), deadline)
        return InjectionReport(backend=self.name, path=outcome.path, thread=outcome.tid,
                               stopped_ms=outcome.stopped_ms,
                               total_ms=(time.monotonic() - started) * 1000.0)


def _refuse_shadow_stack(pid: int) -> None:
    try:
        status = _read("/proc/%d/status" % pid)
    except OSError:
        return
    for line in status.splitlines():
        if line.startswith("x86_Thread_features:") and "shstk" in line.split(":", 1)[1]:
            raise AttachError("process %d uses x86 shadow stacks, which the native injector's "
                              "return path cannot satisfy; use --injector gdb" % pid)


class _Outcome(NamedTuple):
    path: str
    tid: int
    stopped_ms: float


def _run_in_tracer_thread(target: Target, addresses: Addresses, stage1: tuple[bytes, bytes],
                          deadline: float) -> _Outcome:
    """Borrow a thread from a dedicated thread of ours: it is the tracer, and
    its exit detaches anything a failure left traced."""
    box: dict[str, object] = {}

    def work() -> None:
        try:
            box["outcome"] = _borrow_some_thread(target, addresses, stage1, deadline)
        except BaseException as e:  # handed to the caller
            box["error"] = e

    worker = threading.Thread(target=work, name="inspector-tracer", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()) + 2 * STOP_WAIT)
    if worker.is_alive():
        raise AttachError("the native injector did not finish with process %d in time; the "
                          "borrowed thread is left to return on its own" % target.pid)
    error = box.get("error")
    if isinstance(error, BaseException):
        raise error
    outcome = box["outcome"]
    assert isinstance(outcome, _Outcome)
    return outcome


def _parked_soon(pid: int, tried: set[int]) -> list[Candidate]:
    """Parked threads, sampled a few times: a thread that is about to block
    (a server between two requests) is a better choice than a pending call,
    which waits for the main thread to run bytecode."""
    for attempt in range(PARK_SAMPLES):
        found = [c for c in parked_threads(pid) if c.tid not in tried]
        if found:
            return found
        if attempt + 1 < PARK_SAMPLES:
            time.sleep(PARK_SAMPLE_GAP)
    return []


def _borrow_some_thread(target: Target, addresses: Addresses, stage1: tuple[bytes, bytes],
                        deadline: float) -> _Outcome:
    pid = target.pid
    tried: set[int] = set()
    for _ in range(MAX_TRIES):
        candidates = _parked_soon(pid, tried)
        candidate = candidates[0] if candidates else Candidate(pid, -1, 0)
        tried.add(candidate.tid)
        try:
            return _Borrow(target, candidate, addresses, stage1, deadline).run()
        except _Retry as e:
            log.debug("thread %d: %s; choosing again", candidate.tid, e)
            if time.monotonic() >= deadline:
                break
    raise AttachError("could not borrow a thread of process %d: its threads kept moving or "
                      "taking signals; retry" % pid)


class _Borrow:
    """One attempt on one thread. Runs on the tracer thread only."""

    def __init__(self, target: Target, candidate: Candidate, addresses: Addresses,
                 stage1: tuple[bytes, bytes], deadline: float) -> None:
        self.pid = target.pid
        self.tid = candidate.tid
        self.candidate = candidate
        self.addresses = addresses
        self.text, self.code = stage1  # the code object may be b"" (then the text runs)
        self.deadline = deadline
        self.seized = False
        self.stopped_at = 0.0
        self.page = -1
        self.result: int | None = None
        self.early = False

    @property
    def path(self) -> str:
        return "pending" if self.candidate.syscall < 0 else "thread"

    def run(self) -> _Outcome:
        try:
            self.memory = ptrace.Memory(self.pid)
        except OSError as e:
            raise AttachError("cannot open the memory of process %d: %s" % (self.pid, e)) from None
        try:
            return self._run()
        finally:
            self.memory.close()

    # -- stops -----------------------------------------------------------

    def _wait(self) -> ptrace.Stop:
        try:
            stop = ptrace.wait_stop(self.tid, min(self.deadline, time.monotonic() + STOP_WAIT))
        except ptrace.StopTimeout:
            raise AttachError("thread %d of process %d did not stop for inspector within "
                              "%.0f s (is it in uninterruptible sleep, state D?)"
                              % (self.tid, self.pid, STOP_WAIT)) from None
        if stop.exited:
            self.seized = False
            raise _Retry("exited")
        return stop

    def _seize(self) -> None:
        try:
            ptrace.seize(self.tid)
        except ptrace.PtraceError as e:
            if e.errno == errno.ESRCH:
                raise _Retry("gone") from None
            raise AttachError(seize_refusal(self.pid, self.tid, e.errno or 0)) from None
        self.seized = True
        ptrace.interrupt(self.tid)
        stop = self._wait()
        self.stopped_at = time.monotonic()
        if stop.is_interrupt:
            return
        if stop.is_group_stop:
            self._detach()
            raise _Stopped(stop.signal)
        signal = stop.delivers_signal
        self._detach(signal)  # a signal that was on its way: delivered, not swallowed
        raise _Retry("signal %d arrived" % signal)

    def _detach(self, signal: int = 0) -> None:
        if self.seized:
            self.seized = False
            try:
                ptrace.detach(self.tid, signal)
            except ptrace.PtraceError as e:
                log.warning("detach from thread %d failed: %s", self.tid, e)

    def _resume(self) -> ptrace.Stop:
        """Run to the next system-call stop; pass signals on; a stop signal
        raises _Stopped (the thread is always self-restoring by then)."""
        signal = 0
        while True:
            ptrace.resume_to_syscall(self.tid, signal)
            stop = self._wait()
            if stop.is_syscall:
                return stop
            if stop.is_group_stop:
                raise _Stopped(stop.signal)
            signal = stop.delivers_signal  # 0 for our own interrupt's late stop

    # -- the sequence ------------------------------------------------------

    def _run(self) -> _Outcome:
        try:
            self._prefetch()
        except OSError:
            raise _Retry("gone") from None
        stop = pending_stop(self.pid)
        if stop is not None:
            raise AttachError("process %d is being stopped (%s); nothing was injected and it is "
                              "left stopped; resume it with `kill -CONT %d` and retry"
                              % (self.pid, stop, self.pid))
        try:
            self._seize()
        except _Stopped as e:
            raise AttachError(_stopped_message(self.pid, e.signal, injected=False)) from None
        try:
            regs = self._checked_registers()
            xstate = self._checked_xstate()
            frame = self._write_frame(regs, xstate)
        except BaseException:
            self._detach()  # nothing changed yet
            raise
        early = arch.fpstate_restores_exactly(xstate)
        self.early = early
        try:
            self._inject(regs, frame)
            if early:
                # The routine runs untraced and rt_sigreturn restores every
                # register and the whole FPU state from the frame: nothing
                # left for us to do but read its result.
                self._detach()
            else:
                self._return_home(frame, xstate, expect_result=True)
        except _Stopped as e:
            self._detach()
            raise AttachError(_stopped_message(self.pid, e.signal, injected=True)) from None
        except BaseException:
            self._give_back(frame, xstate)
            raise
        stopped_ms = (time.monotonic() - self.stopped_at) * 1000.0
        if early:
            self.result = self._result_left_in(frame)
        self._check_result()
        return _Outcome(self.path, self.tid, stopped_ms)

    def _checked_registers(self) -> list[int]:
        regs = ptrace.get_regs(self.tid, arch.NREGS)
        if self.candidate.syscall >= 0:
            sysno = arch.signed(regs[arch.SYSNO])
            insn = self.memory.read(regs[arch.IP] - arch.SYSCALL_INSN_LENGTH,
                                    arch.SYSCALL_INSN_LENGTH)
            if sysno != self.candidate.syscall or insn != arch.SYSCALL_INSN:
                raise _Retry("left its system call")
        return regs

    def _checked_xstate(self) -> bytes:
        try:
            xstate = ptrace.get_regset(self.tid, arch.NT_X86_XSTATE, arch.XSTATE_MAX)
            if not arch.xstate_is_standard(xstate):
                raise AttachError("thread %d of process %d has an extended register state "
                                  "inspector cannot read back; nothing was changed" %
                                  (self.tid, self.pid))
            # Give it straight back once: if the kernel refuses (as it does
            # gdb's short buffer on some hosts), we have changed nothing.
            ptrace.set_regset(self.tid, arch.NT_X86_XSTATE, xstate)
        except ptrace.PtraceError as e:
            raise AttachError("the kernel would not let inspector read and restore the extended "
                              "register state of thread %d of process %d (%s); nothing was "
                              "changed" % (self.tid, self.pid, os.strerror(e.errno or 0))) from None
        return xstate

    def _prefetch(self) -> None:
        """What /proc can tell before the stop (a parked thread cannot change
        its own signal mask or stack): less work while it is stopped."""
        self.sigmask = _blocked_signals(self.pid, self.tid)
        self.mapping = _stack_mapping(self.pid, self.candidate.sp) if self.candidate.sp else None

    def _write_frame(self, regs: list[int], xstate: bytes) -> arch.RestoreFrame:
        frame = arch.build_restore_frame(regs, xstate, self.sigmask)
        mapping = self.mapping
        if mapping is None or not mapping[0] <= regs[arch.SP] < mapping[1]:
            mapping = _stack_mapping(self.pid, regs[arch.SP])
        if mapping is None:
            raise AttachError("thread %d of process %d has no stack we can find" %
                              (self.tid, self.pid))
        low, _high, name = mapping
        if name != "[stack]" and frame.address - STACK_HEADROOM < low:
            raise _Retry("too little free stack")
        data = struct.pack("<Q", self.addresses.restorer) + frame.data[8:]
        self.memory.write(frame.address, data)
        return frame

    def _syscall(self, regs: list[int], frame: arch.RestoreFrame, number: int,
                 *args: int) -> int:
        """One system call on the borrowed thread, through `syscall; ret`,
        whose `ret` goes to the signal-return trampoline."""
        call = list(regs)
        call[arch.IP] = self.addresses.syscall_ret
        call[arch.SP] = frame.frame
        call[arch.RET] = number
        call[arch.SYSNO] = -1
        for index, value in zip(arch.ARGS[:len(args)], args, strict=True):
            call[index] = value
        ptrace.set_regs(self.tid, call)
        ours = self.addresses.syscall_ret + arch.SYSCALL_INSN_LENGTH
        for _ in range(MAX_FOREIGN_SYSCALLS):
            # A signal passed on runs the target's handler first: its system
            # calls (and its rt_sigreturn) stop here too and go through.
            self._resume()
            now = ptrace.get_regs(self.tid, arch.NREGS)
            if ptrace.syscall_stop_kind(self.tid) == ptrace.SYSCALL_ENTRY and \
                    now[arch.IP] == ours and arch.signed(now[arch.SYSNO]) == number:
                break
        else:
            raise AttachError("thread %d of process %d did not make the expected system call"
                              % (self.tid, self.pid))
        self._resume()  # its exit: nothing runs between a call's entry and exit
        return arch.signed(ptrace.get_regs(self.tid, arch.NREGS)[arch.RET])

    def _inject(self, regs: list[int], frame: arch.RestoreFrame) -> None:
        symbols = self.addresses.symbols
        length = arch.PAGE_SIZE + stub.page_length(self.text, self.code)
        # Read+exec from birth, written through /proc/PID/mem (as debuggers
        # write breakpoints): never writable and executable, and no mprotect
        # step during which a dead client would leak the mapping.
        page = self._syscall(regs, frame, arch.SYS_MMAP, 0, length,
                             arch.PROT_READ | arch.PROT_EXEC, arch.MAP_PRIVATE_ANONYMOUS, -1, 0)
        if page < 0:
            self._go_home(regs, frame)
            raise AttachError("mmap failed in process %d (%s: out of memory or address space, "
                              "or a policy against executable memory?)"
                              % (self.pid, os.strerror(-page)))
        self.page = page
        # From here until the routine starts, a dead client's thread unmaps it.
        self._go_home(regs, frame, unmap=(page, length))
        b_page = page + arch.PAGE_SIZE
        blob = stub.build_page(b_page, symbols, self.text, self.code)
        if self.candidate.syscall >= 0:
            # pthread_t lands in the frame's unused siginfo room: the mapping
            # stays read-only, the new thread detaches itself.
            fn, fn_args = symbols["pthread_create"], (frame.frame + arch.PTHREAD_T_SLOT, 0,
                                                      b_page + stub.THREAD_ENTRY,
                                                      b_page + stub.DATA)
        else:
            fn, fn_args = symbols["Py_AddPendingCall"], (b_page + stub.PENDING_ENTRY,
                                                         b_page + stub.DATA, 0, 0)
        page_a = arch.build_borrow_page({
            "__errno_location": symbols["__errno_location"],
            "Py_IsInitialized": symbols["Py_IsInitialized"], "fn": fn,
            "a0": fn_args[0], "a1": fn_args[1], "a2": fn_args[2], "a3": fn_args[3],
            "page": page, "length": arch.PAGE_SIZE, "total_length": length,
            "frame": frame.frame, "restorer": self.addresses.restorer,
            "munmap": symbols["munmap"], "result_mark": arch.RESULT_MARK})
        try:
            self.memory.write(page, page_a + blob)
        except OSError as e:
            raise AttachError("this kernel does not let inspector write its code into process "
                              "%d (%s; proc_mem.force_override=never?); nothing is left behind; "
                              "use --injector gdb" % (self.pid, e.strerror)) from None
        routine = list(regs)
        routine[arch.IP] = page
        routine[arch.SP] = frame.frame + 8
        routine[arch.SYSNO] = -1
        ptrace.set_regs(self.tid, routine)

    def _go_home(self, regs: list[int], frame: arch.RestoreFrame,
                 unmap: tuple[int, int] | None = None) -> None:
        """Point the thread at the trampoline (after unmapping our pages)."""
        home = list(regs)
        home[arch.SYSNO] = -1
        if unmap is not None:
            home[arch.IP] = self.addresses.syscall_ret
            home[arch.SP] = frame.frame
            home[arch.RET] = arch.SYS_MUNMAP
            home[arch.ARGS[0]], home[arch.ARGS[1]] = unmap
        else:
            home[arch.IP] = self.addresses.restorer
            home[arch.SP] = frame.frame + 8
        ptrace.set_regs(self.tid, home)

    def _return_home(self, frame: arch.RestoreFrame, xstate: bytes,
                     expect_result: bool) -> None:
        """Follow the thread by system-call stops until rt_sigreturn has put
        it back, write its extended state back exactly, and detach."""
        returning = False  # rt_sigreturn entered: its exit stop is next
        while True:
            self._resume()
            regs = ptrace.get_regs(self.tid, arch.NREGS)
            entry = ptrace.syscall_stop_kind(self.tid) == ptrace.SYSCALL_ENTRY
            if not entry:
                if returning:
                    break  # (rt_sigreturn leaves orig_rax at -1: recognise it by order)
                continue
            number = arch.signed(regs[arch.SYSNO])
            if number == arch.SYS_MUNMAP and expect_result and regs[arch.ARGS[0]] == self.page:
                self.result = arch.signed(regs[arch.CALL_RESULT_KEPT])
            # ours, not the return of a target's signal handler that ran meanwhile
            returning = number == arch.SYS_RT_SIGRETURN and regs[arch.SP] == frame.frame + 8
        if regs[arch.IP] != frame.resumed[arch.IP] or regs[arch.SP] != frame.resumed[arch.SP]:
            log.warning("thread %d returned to %#x/%#x, expected %#x/%#x", self.tid,
                        regs[arch.IP], regs[arch.SP], frame.resumed[arch.IP],
                        frame.resumed[arch.SP])
        try:
            ptrace.set_regset(self.tid, arch.NT_X86_XSTATE, xstate)
        except ptrace.PtraceError as e:
            log.warning("could not write back the extended state of %d: %s", self.tid, e)
        self._detach()

    def _give_back(self, frame: arch.RestoreFrame, xstate: bytes) -> None:
        """After a failure: the thread's registers always lead home; follow
        them there if we still can, else just let go."""
        if not self.seized:
            return
        try:
            self._return_home(frame, xstate, expect_result=False)
        except BaseException as e:
            log.warning("left thread %d to return on its own: %s", self.tid, e)
            self._detach()

    def _result_left_in(self, frame: arch.RestoreFrame) -> int | None:
        """The routine's result from the frame's scratch room, read through
        /proc/PID/mem without stopping anything (None if it never showed:
        the agent's own hello, or its absence, then tells)."""
        until = min(self.deadline, time.monotonic() + RESULT_WAIT)
        while True:
            raw = self.memory.read(frame.frame + arch.FRAME_SCRATCH, 16)
            mark, result = struct.unpack("<Qq", raw) if len(raw) == 16 else (0, 0)
            if mark == arch.RESULT_MARK:
                return int(result)
            if time.monotonic() >= until:
                log.info("thread %d left no result in time", self.tid)
                return None
            time.sleep(0.0001)

    def _check_result(self) -> None:
        result = self.result
        if result is None:
            if self.early:
                return  # let go early; the agent's hello (or its absence) tells
            raise AttachError("the borrowed thread %d of process %d did not run the injection "
                              "routine" % (self.tid, self.pid))
        if result == arch.NOT_INITIALIZED:
            raise AttachError("process %d has not finished starting Python (or is shutting "
                              "down); retry in a moment" % self.pid)
        if result != 0:
            if self.path == "thread":
                shortage = address_space_shortage(self.pid)
                if shortage:
                    raise AttachError(shortage)
                raise AttachError("pthread_create failed in process %d (%s: thread limit "
                                  "reached?)" % (self.pid, os.strerror(result)))
            raise AttachError("CPython's pending-call queue of process %d is full; retry"
                              % self.pid)


def _stopped_message(pid: int, signal: int, injected: bool) -> str:
    name = {19: "SIGSTOP", 20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU"}.get(signal, "a stop")
    what = ("nothing was injected and it is left stopped" if not injected else
            "it is left stopped, and an agent that starts when it resumes leaves on its own")
    return ("process %d was stopped (%s) while inspector attached; %s; resume it with "
            "`kill -CONT %d` and retry" % (pid, name, what, pid))
