"""The default injector: our own gdb sequence, built for a short freeze.

What happens while the target is stopped (measured facts in the shared
DESIGN.md, "Injection"):

1. Every address we need was resolved *before* attaching (`inspector._elf`),
   so gdb loads no symbols: ``--readnever``, no shared library symbols, no
   libthread_db, no auto-loaded scripts. gdb calls through casted addresses.
2. We look at each thread: is it stopped right after a ``syscall``
   instruction, inside a blocking system call (futex, sleeps, poll/select/
   epoll, accept/recv/read, wait, pause)? Such a thread is *parked*: it is not
   inside malloc, GC or the eval loop, so we may borrow it for calls.
3. On a parked thread: ``mmap`` one page (read+exec), write the page through
   ptrace (two tiny routines, the addresses, the stage-1 text; see
   `stub_x86_64`) and ``pthread_create`` a detached thread on it. Detach.
   The new thread takes the GIL normally, however long that takes, runs
   stage 1 and unmaps the page. gdb never waits for the GIL.
4. No parked thread (every thread is running, e.g. a single busy thread):
   ``mmap`` + write on the main thread, then ``Py_AddPendingCall`` with the
   page's pending routine: the main thread runs it at its next safe point
   (a bytecode boundary). We never call ``malloc``-using functions on a
   thread that may be inside malloc.

gdb is never asked to do anything that may block (no ``PyGILState_Ensure``
from gdb), so it is never killed mid-call either.
"""

from __future__ import annotations

import os
import re
import time

from .. import _log
from .._diagnose import pending_stop
from .._record import record
from ..errors import AttachError
from . import arch_x86_64, symbols
from . import stub_x86_64 as stub
from .base import FileDrop, InjectionReport, Target
from .gdbmi import GdbError, GdbMI, GdbTimeout

log = _log.getLogger(__name__)

PYTHON_SYMBOLS = ("Py_IsInitialized", "PyGILState_Ensure", "PyGILState_Release",
                  "PyRun_SimpleString", "Py_AddPendingCall")
LIBC_SYMBOLS = ("mmap", "mprotect", "munmap", "pthread_create", "pthread_self", "pthread_detach")

ATTACH_TIMEOUT = 10.0  # seconds for gdb to attach and stop every thread
CALL_TIMEOUT = 5.0  # seconds for one inferior call (all of ours are non-blocking)
COMMAND_TIMEOUT = 5.0

# Calls a thread blocks in while holding no lock of malloc's and no GIL.
PARKING_SYSCALLS = arch_x86_64.PARKING_SYSCALLS
# Preferred order when several threads are parked: plain waits first.
_PREFERENCE = ("clock_nanosleep", "nanosleep", "pselect6", "select", "epoll_wait",
               "epoll_pwait", "epoll_pwait2", "poll", "ppoll", "pause", "accept", "accept4",
               "recvfrom", "recvmsg", "read", "futex")
_SYSCALL_INSN = 0x050F  # bytes 0f 05, read as a little-endian short
_PROT_READ_WRITE = 0x3
_PROT_READ_EXEC = 0x5
_MAP_PRIVATE_ANONYMOUS = 0x22

# While gdb runs one of our calls every thread of the target runs (scheduler
# locking off), and signals keep arriving. gdb's defaults *stop* for SIGINT,
# SIGTERM, SIGUSR1, SIGSTOP ...: in the calling thread it unwinds the call and
# keeps the signal (SIGINT is "nopass"; a SIGSTOP was lost, the user's stop
# undone); in another thread it abandons the call with the calling thread
# still inside it - after detach that thread returns into gdb's dummy frame
# and the target dies of SIGSEGV (measured: 3.8 target with threads, SIGSTOP or
# SIGINT to a worker thread during a call). So every asynchronous signal goes
# straight through, as if gdb were not there; gdb stops only for the faults our
# own call could raise, which `unwindonsignal` then undoes.
SIGNAL_HANDLING = (
    "handle all nostop noprint pass",
    "handle SIGINT nostop noprint pass",  # `all` leaves out SIGINT and SIGTRAP
    "handle SIGSEGV SIGBUS SIGILL SIGFPE stop print nopass",
)

_VALUE = re.compile(r"^(?:\([^)]*\)\s*)?(0x[0-9a-fA-F]+|-?\d+)")
_THREAD_LINE = re.compile(r"^T (\d+) (-?\d+) (-?\d+) (-?\d+)")
_TARGET_ID = re.compile(r'\{id="(\d+)",target-id="(?:LWP|process|Thread [^"]*LWP) ?(\d+)')


@record
class ThreadState:
    gdb_id: int
    lwp: int
    syscall: str | None  # name when parked in a blocking system call


def resolve_addresses(target: Target) -> dict[str, int]:
    return symbols.resolve(target, PYTHON_SYMBOLS, LIBC_SYMBOLS)[0]


class GdbInjector:
    name = "gdb"
    own_thread = True  # stage 1 runs on the thread the stub starts

    def __init__(self, gdb_path: str) -> None:
        self.gdb_path = gdb_path

    def _budget(self, limit: float) -> float:
        """A command's timeout: its own limit, within the command's deadline."""
        return max(0.05, min(limit, self.deadline - time.monotonic()))

    def inject(self, target: Target, stage1: str, files: FileDrop, deadline: float, *,
               stage1_code: bytes | None = None) -> InjectionReport:
        self.deadline = deadline
        if os.uname().machine != "x86_64":
            raise AttachError("the gdb injector supports x86-64 only (this is %s); use "
                              "--injector pyrasite" % os.uname().machine)
        text = stage1.encode("ascii")
        started = time.monotonic()
        # gdb takes ~60 ms to start: let it, while we read the ELF symbol tables.
        mi = GdbMI(self.gdb_path)
        stopped_at = None
        try:
            addresses = resolve_addresses(target)
            for setting in ("confirm off", "auto-load off", "auto-solib-add off",
                            "sysroot /nonexistent-inspector",
                            "libthread-db-search-path /nonexistent-inspector",
                            "unwindonsignal on", "print thread-events off",
                            "breakpoint pending off"):
                mi.command("-gdb-set " + setting, self._budget(COMMAND_TIMEOUT))
            for handling in SIGNAL_HANDLING:
                mi.console(handling, self._budget(COMMAND_TIMEOUT))
            try:
                mi.command("-target-attach %d" % target.pid, self._budget(ATTACH_TIMEOUT))
            except GdbError as e:
                raise AttachError(_attach_failure(target.pid, str(e))) from None
            stopped_at = time.monotonic()
            # In MI, -target-attach answers before gdb has stopped every
            # thread; -thread-info (inside _thread_states) waits for that, and
            # only then is gdb's own SIGSTOP for the main thread consumed and
            # a pending stop in the main thread's queue really the user's.
            threads = self._thread_states(mi, target.pid)
            stop = pending_stop(target.pid)
            if stop is not None:
                # Stopped between our preflight and gdb's attach, or while gdb
                # attached. No call: the stop stays queued and detaching
                # delivers it, so the process stays stopped as the user left it.
                mi.command("-target-detach", self._budget(COMMAND_TIMEOUT))
                raise AttachError(
                    "process %d was stopped (%s) while inspector attached; nothing was "
                    "injected and it is left stopped; resume it with `kill -CONT %d` and "
                    "retry" % (target.pid, stop, target.pid))
            report = self._inject_stopped(mi, target, threads, addresses, text)
            mi.command("-target-detach", self._budget(COMMAND_TIMEOUT))
            detached_at = time.monotonic()
            mi.release()
            return InjectionReport(
                backend=self.name, path=report[0], thread=report[1],
                stopped_ms=(detached_at - stopped_at) * 1000.0,
                total_ms=(detached_at - started) * 1000.0,
            )
        except GdbTimeout as e:
            if e.in_call:
                mi.abandon()
                raise AttachError(
                    "gdb did not return from a call in process %d within the timeout; it was "
                    "left to finish and detach on its own (never killed mid-call). Retry later"
                    % target.pid) from None
            raise AttachError(_hung_gdb_message(target.pid, e.command)) from None
        except GdbError as e:
            raise AttachError("gdb failed while injecting into %d: %s"
                              % (target.pid, one_line(str(e)))) from None
        finally:
            mi.close(timeout=min(5.0, max(0.5, self.deadline - time.monotonic())))

    # -- looking at the stopped target --------------------------------------

    def _thread_states(self, mi: GdbMI, pid: int) -> list[ThreadState]:
        info = mi.command("-thread-info", self._budget(COMMAND_TIMEOUT))
        lwps = {int(g): int(lwp) for g, lwp in _TARGET_ID.findall(info.fields)}
        lines = mi.console(
            'thread apply all -q -s printf "T %d %ld %ld %d\\n", $_thread, $orig_rax, $rax, '
            "*(unsigned short *)($pc - 2)", self._budget(COMMAND_TIMEOUT))
        states = []
        for line in "".join(lines).splitlines():
            m = _THREAD_LINE.match(line)
            if not m:
                continue
            gdb_id, orig_rax, rax, insn = (int(x) for x in m.groups())
            # Stopped inside a system call: the previous instruction is
            # `syscall` and orig_rax holds its number (-1 when not in one).
            in_syscall = (insn & 0xFFFF) == _SYSCALL_INSN and orig_rax >= 0
            name = PARKING_SYSCALLS.get(orig_rax) if in_syscall else None
            states.append(ThreadState(gdb_id, lwps.get(gdb_id, -1), name))
        if not states:
            raise AttachError("gdb attached to %d but could not read its threads" % pid)
        return states

    @staticmethod
    def _choose_parked(threads: list[ThreadState], pid: int) -> ThreadState | None:
        parked = [t for t in threads if t.syscall is not None]
        if not parked:
            return None
        return min(parked, key=lambda t: (_PREFERENCE.index(t.syscall)
                                          if t.syscall in _PREFERENCE else len(_PREFERENCE),
                                          t.lwp != pid))

    # -- doing it -----------------------------------------------------------

    def _inject_stopped(self, mi: GdbMI, target: Target, threads: list[ThreadState],
                        addresses: dict[str, int], text: bytes) -> tuple[str, int]:
        parked = self._choose_parked(threads, target.pid)
        main = next((t for t in threads if t.lwp == target.pid), threads[0])
        worker = parked or main
        initialized = self._call(mi, worker, "((int (*)(void)) %d)()"
                                 % addresses["Py_IsInitialized"])
        if initialized != 1:
            raise AttachError("process %d has not finished starting Python (or is shutting "
                              "down); retry in a moment" % target.pid)
        length = stub.page_length(text)
        page = self._call(mi, worker,
                          "((void *(*)(void *, unsigned long, int, int, int, long)) %d)"
                          "(0, %d, %d, %d, -1, 0)"
                          % (addresses["mmap"], length, _PROT_READ_WRITE, _MAP_PRIVATE_ANONYMOUS))
        if page in (0, -1) or page < 0:
            raise AttachError("mmap failed in process %d (out of memory or address space?)"
                              % target.pid)
        try:
            blob = stub.build_page(page, addresses, text)
            for offset, chunk in stub.nonzero_spans(blob):
                mi.command("-data-write-memory-bytes %d %s" % (page + offset, chunk.hex()),
                           self._budget(COMMAND_TIMEOUT))
            rc = self._call(mi, worker, "((int (*)(void *, unsigned long, int)) %d)"
                            "((void *) %d, %d, %d)" % (addresses["mprotect"], page,
                                                      stub.CODE_LENGTH, _PROT_READ_EXEC))
            if rc != 0:
                raise AttachError("process %d may not map executable memory (mprotect failed: "
                                  "SELinux execmem or a W^X policy?); use --injector pyrasite"
                                  % target.pid)
            if parked is not None:
                rc = self._call(mi, parked,
                                "((int (*)(void *, void *, void *, void *)) %d)"
                                "((void *) %d, (void *) 0, (void *) %d, (void *) %d)"
                                % (addresses["pthread_create"], page + stub.TID_SLOT,
                                   page + stub.THREAD_ENTRY, page + stub.DATA))
                if rc != 0:
                    raise AttachError("pthread_create failed in process %d (error %d: thread "
                                      "limit reached?)" % (target.pid, rc))
                return "thread", parked.lwp
            rc = self._call(mi, main, "((int (*)(void *, void *)) %d)((void *) %d, (void *) %d)"
                            % (addresses["Py_AddPendingCall"], page + stub.PENDING_ENTRY,
                               page + stub.DATA))
            if rc != 0:
                raise AttachError("CPython's pending-call queue of process %d is full; retry"
                                  % target.pid)
            return "pending", main.lwp
        except GdbTimeout:
            raise  # gdb is still inside that call: no more commands
        except BaseException:
            # Nothing will run from the page: give it back.
            try:
                self._call(mi, worker, "((int (*)(void *, unsigned long)) %d)((void *) %d, %d)"
                           % (addresses["munmap"], page, length))
            except (GdbError, GdbTimeout):
                log.warning("could not unmap the injection page in %d", target.pid)
            raise

    def _call(self, mi: GdbMI, thread: ThreadState, expression: str) -> int:
        result = mi.command('-data-evaluate-expression --thread %d "%s"'
                            % (thread.gdb_id, expression), self._budget(CALL_TIMEOUT),
                            in_call=True)
        value = result.get("value") or ""
        m = _VALUE.match(value)
        if not m:
            raise GdbError("unexpected value %r from %s" % (value, expression))
        return int(m.group(1), 0)


def _hung_gdb_message(pid: int, command: str) -> str:
    """Diagnose a gdb that stopped answering (not during one of our calls)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "process %d exited while gdb attached" % pid
    if state == "D":
        return ("gdb could not stop process %d within the timeout: it is in uninterruptible "
                "sleep (state D, stuck in the kernel); retry when it is out" % pid)
    return ("gdb stopped answering (%r) while attaching to process %d, which is in state %s; "
            "gdb was stopped and the target was not touched by a call; retry, or use the "
            "default injector" % (command.split()[0], pid, state))


def one_line(text: str, limit: int = 300) -> str:
    """gdb's messages span lines; ours are one line (DESIGN.md "Contracts")."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 3] + "..."


def _attach_failure(pid: int, gdb_message: str) -> str:
    gdb_message = one_line(gdb_message)
    if "Operation not permitted" in gdb_message:
        return ("ptrace is not permitted on process %d (%s); run as the process owner or "
                "root, or allow ptrace (kernel.yama.ptrace_scope=0, CAP_SYS_PTRACE in "
                "containers)" % (pid, gdb_message.strip()))
    if "No such process" in gdb_message:
        return "process %d exited while attaching" % pid
    return "gdb could not attach to process %d: %s" % (pid, gdb_message.strip())
