"""Everything the native injector knows about x86-64 Linux, in one place.

The native injector (`native.py`) is written against the names below:
register indexes, system-call numbers, the machine code of the routine a
borrowed thread runs, and the layout of the signal frame that puts the thread
back where it was. A port (aarch64: see docs/DESIGN.md) is a module with the
same names.

The routine a borrowed thread runs (``BORROW_ASM``/``BORROW_CODE``, page A of
the injection mapping, read+exec) after the injector has pointed its ``rip``
at it, with ``rsp`` at the restore frame + 8 (16-byte aligned)::

    errno_ptr, saved = __errno_location(), *errno_ptr
    rc = -1000                                   # "Python is not initialized"
    if Py_IsInitialized():
        rc = fn(a0, a1, a2, a3)   # pthread_create(...) or Py_AddPendingCall(...)
    *errno_ptr = saved                           # the thread's errno, untouched
    frame.siginfo = [RESULT_MARK, rc]            # for a tracer that let go
    rsp = frame; *frame = __restore_rt           # the signal-return trampoline
    tail-jump munmap(page A, 4096 if rc == 0 else whole mapping)
                               # returns into __restore_rt: rt_sigreturn(frame)

``rc`` stays in r12, where a tracer that follows the thread reads it at the
``munmap`` system call; it is also left, after a mark, in the frame's unused
siginfo room, where a tracer that already let go reads it through
/proc/PID/mem.
No instruction of page A runs after ``munmap``, and ``rt_sigreturn`` restores
every register, the signal mask and the FPU state from the frame: the thread
ends up exactly where it was stopped, whether or not the tracer is still
alive.
"""

from __future__ import annotations

import struct

from .._record import NamedTuple

MACHINE = "x86_64"
PAGE_SIZE = 4096

# ptrace regsets
NT_PRSTATUS = 1
NT_X86_XSTATE = 0x202
XSTATE_MAX = 64 * 1024  # the buffer we offer GETREGSET; the kernel says how much it used

# struct user_regs_struct: 27 unsigned longs, in this order.
REG_NAMES = ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx",
             "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base",
             "gs_base", "ds", "es", "fs", "gs")
NREGS = len(REG_NAMES)
_INDEX = {name: i for i, name in enumerate(REG_NAMES)}
IP, SP, RET, SYSNO = _INDEX["rip"], _INDEX["rsp"], _INDEX["rax"], _INDEX["orig_rax"]
ARGS = tuple(_INDEX[n] for n in ("rdi", "rsi", "rdx", "r10", "r8", "r9"))  # syscall arguments
CALL_RESULT_KEPT = _INDEX["r12"]  # where BORROW_CODE keeps fn's result

# System calls
SYS_MMAP = 9
SYS_MPROTECT = 10
SYS_MUNMAP = 11
SYS_RT_SIGRETURN = 15
SYSCALL_INSN = b"\x0f\x05"
SYSCALL_INSN_LENGTH = 2

# Calls a thread blocks in while it holds no lock of malloc's and no GIL.
# Not here on purpose: mmap/munmap/brk/mprotect/madvise/mremap (malloc's own).
PARKING_SYSCALLS = {
    0: "read", 1: "write", 7: "poll", 23: "select", 34: "pause", 35: "nanosleep",
    42: "connect", 43: "accept", 44: "sendto", 45: "recvfrom", 46: "sendmsg", 47: "recvmsg",
    61: "wait4", 70: "msgrcv", 128: "rt_sigtimedwait", 130: "rt_sigsuspend",
    202: "futex", 230: "clock_nanosleep", 232: "epoll_wait", 247: "waitid",
    270: "pselect6", 271: "ppoll", 281: "epoll_pwait", 288: "accept4", 299: "recvmmsg",
    441: "epoll_pwait2",
}

# Kernel-internal "restart me" results a thread interrupted inside a system
# call carries in rax (include/linux/errno.h).
EINTR = 4
ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK = 512, 513, 514, 516

# Byte patterns found in the target's libc text (see `native.find_gadgets`).
GADGET_SYSCALL_RET = b"\x0f\x05\xc3"  # syscall; ret
# glibc's __restore_rt, the sa_restorer of every handler glibc installs:
# mov rax, 15 (rt_sigreturn); syscall
GADGET_RESTORER = b"\x48\xc7\xc0\x0f\x00\x00\x00\x0f\x05"

PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
MAP_PRIVATE_ANONYMOUS = 0x22

# -- the routine a borrowed thread runs ------------------------------------

BORROW_ASM = """\
    .intel_syntax noprefix
    .text
borrow_entry:
    lea   rbx, [rip + data]
    call  [rbx + 0x00]               # __errno_location()
    mov   r13, rax
    mov   r14d, dword ptr [rax]      # the thread's errno
    mov   r12, -1000                 # result when Python is not initialized
    call  [rbx + 0x08]               # Py_IsInitialized()
    test  eax, eax
    jz    1f
    mov   rdi, [rbx + 0x18]
    mov   rsi, [rbx + 0x20]
    mov   rdx, [rbx + 0x28]
    mov   rcx, [rbx + 0x30]
    call  [rbx + 0x10]               # fn(a0, a1, a2, a3)
    movsxd r12, eax                  # its int result, for the tracer
1:
    mov   dword ptr [r13], r14d      # errno as it was
    mov   rax, [rbx + 0x48]          # the frame: its siginfo room is ours
    mov   [rax + 0x140], r12         # the result for the tracer (which may be gone) ...
    mov   rcx, [rbx + 0x68]
    mov   [rax + 0x138], rcx         # ... then the mark that says it is there
    mov   rdi, [rbx + 0x38]          # page A
    mov   rsi, [rbx + 0x40]          # page A alone: what fn started unmaps the rest
    test  r12, r12
    jz    2f
    mov   rsi, [rbx + 0x60]          # nothing started: the whole mapping
2:
    mov   rsp, [rbx + 0x48]          # the restore frame
    mov   rax, [rbx + 0x50]          # __restore_rt
    mov   [rsp], rax                 # munmap returns there
    mov   rax, [rbx + 0x58]
    jmp   rax                        # munmap(page A, length)
    .org 0x800
data:
"""
BORROW_CODE = bytes.fromhex(
    "488d1df9070000ff134989c5448b3049c7c418fcffffff530885c07416488b7b18488b7320"
    "488b5328488b4b30ff53104c63e045897500488b43484c89a040010000488b4b6848898838"
    "010000488b7b38488b73404d85e47404488b7360488b6348488b435048890424488b4358ff"
    "e0")
BORROW_DATA = 0x800
BORROW_FIELDS = ("__errno_location", "Py_IsInitialized", "fn", "a0", "a1", "a2", "a3",
                 "page", "length", "frame", "restorer", "munmap", "total_length",
                 "result_mark")
NOT_INITIALIZED = -1000


def build_borrow_page(values: dict[str, int]) -> bytes:
    """Page A: the routine and its constants (see the module docstring)."""
    missing = [f for f in BORROW_FIELDS if f not in values]
    if missing:
        raise KeyError("missing values: %s" % ", ".join(missing))
    page = bytearray(PAGE_SIZE)
    page[:len(BORROW_CODE)] = BORROW_CODE
    struct.pack_into("<%dQ" % len(BORROW_FIELDS), page, BORROW_DATA,
                     *(values[f] & 0xFFFFFFFFFFFFFFFF for f in BORROW_FIELDS))
    return bytes(page)


# -- putting a thread back: the rt_sigreturn frame --------------------------

RED_ZONE = 128
UC_FP_XSTATE, UC_SIGCONTEXT_SS, UC_STRICT_RESTORE_SS = 1, 2, 4
FP_XSTATE_MAGIC1 = 0x46505853
FP_XSTATE_MAGIC2 = 0x46505845
_SW_RESERVED = 464  # offset of struct _fpx_sw_bytes inside the FXSAVE area
_XSTATE_MIN = 512 + 64  # legacy area + XSAVE header
# struct sigcontext_64's general registers, in order (arch/x86/include/uapi/asm/sigcontext.h)
_SIGCONTEXT_REGS = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp",
                    "rbx", "rdx", "rax", "rcx", "rsp", "rip", "eflags")
_UCONTEXT_SIZE = 8 + 8 + 24 + 256 + 8  # flags, link, stack_t, sigcontext, sigset
_RT_SIGFRAME_SIZE = 8 + _UCONTEXT_SIZE + 128  # pretcode, ucontext, siginfo
# rt_sigreturn never reads the siginfo part: scratch room above the routine's stack.
# The routine leaves [mark, result] there; pthread_create's pthread_t goes after.
FRAME_SCRATCH = 8 + _UCONTEXT_SIZE  # 0x138 in BORROW_ASM
RESULT_MARK = 0x1E5CA1ED0BADC0DE  # (any 64-bit value the stack would not hold by chance)
PTHREAD_T_SLOT = FRAME_SCRATCH + 16
SS_INVALID = 3  # not 0/SS_ONSTACK/SS_DISABLE: rt_sigreturn leaves the altstack alone (EINVAL)


class RestoreFrame(NamedTuple):
    """Bytes to write at `address` (the frame's lowest byte); `frame` is where
    rsp must point when the restorer's ``syscall`` runs, minus 8."""

    address: int
    data: bytes
    frame: int
    resumed: tuple[int, ...]  # the registers rt_sigreturn will set


def resumed_registers(regs: list[int]) -> list[int]:
    """The registers a thread stopped in `regs` should continue with.

    Stopped inside a system call that the kernel would restart (the ERESTART*
    codes in rax), continue *at* the ``syscall`` instruction with rax = the
    call's number, as the kernel itself restarts it. The restart-block kind
    cannot survive rt_sigreturn (it resets the restart block), so it returns
    EINTR, as after a signal handler. Anything else continues unchanged.
    """
    out = list(regs)
    result = signed(regs[RET])
    if signed(regs[SYSNO]) >= 0:
        if result in (-ERESTARTSYS, -ERESTARTNOINTR, -ERESTARTNOHAND):
            out[IP] = regs[IP] - SYSCALL_INSN_LENGTH
            out[RET] = regs[SYSNO]
        elif result == -ERESTART_RESTARTBLOCK:
            out[RET] = -EINTR & 0xFFFFFFFFFFFFFFFF
    out[SYSNO] = 0xFFFFFFFFFFFFFFFF
    return out


XFEATURE_XTILEDATA = 1 << 18  # AMX tile data: the one dynamically enabled, last component
XTILEDATA_SIZE = 8192


def signal_fpstate(xstate: bytes) -> bytes:
    """The regset's XSAVE image as a signal frame carries it: the software
    bytes (`struct _fpx_sw_bytes`, where the regset keeps only XCR0) and
    FP_XSTATE_MAGIC2 after the state.

    The kernel restores the extended part from a frame only if its size is
    at most the task's own (`fpstate->user_size`). The regset has the host's
    full size; a task that never used AMX has it without the 8 KiB of tile
    data (the last component), so that part is left out when not in use.
    Where the kernel still declines, it restores the legacy x87/SSE part and
    resets the rest, and the tracer (alive in all but a crash) writes the
    exact state back after rt_sigreturn.
    """
    xcr0, = struct.unpack_from("<Q", xstate, _SW_RESERVED)
    in_use, = struct.unpack_from("<Q", xstate, 512)
    size, features = len(xstate), xcr0
    if xcr0 & XFEATURE_XTILEDATA and not in_use & XFEATURE_XTILEDATA:
        size, features = size - XTILEDATA_SIZE, xcr0 & ~XFEATURE_XTILEDATA
    image = bytearray(xstate[:size])
    image[_SW_RESERVED:_SW_RESERVED + 48] = struct.pack("<IIQI28x", FP_XSTATE_MAGIC1, size + 4,
                                                         features, size)
    return bytes(image) + struct.pack("<I", FP_XSTATE_MAGIC2)


def fpstate_restores_exactly(xstate: bytes) -> bool:
    """Whether rt_sigreturn is sure to restore this state in full from the
    frame: always, except on AMX hosts where the frame leaves the unused tile
    data out and relies on the task's own size being the default one."""
    xcr0, = struct.unpack_from("<Q", xstate, _SW_RESERVED)
    in_use, = struct.unpack_from("<Q", xstate, 512)
    return not (xcr0 & XFEATURE_XTILEDATA and not in_use & XFEATURE_XTILEDATA)


def build_restore_frame(regs: list[int], xstate: bytes, sigmask: int) -> RestoreFrame:
    """An rt_sigframe below the thread's red zone that restores `regs`
    (as `resumed_registers`), `xstate` and the blocked-signal mask."""
    resumed = resumed_registers(regs)
    fp_image = signal_fpstate(xstate)
    top = regs[SP] - RED_ZONE
    fpstate = (top - len(fp_image)) & ~63  # XRSTOR needs 64-byte alignment
    frame = ((fpstate - _RT_SIGFRAME_SIZE) & ~15) - 8  # frame + 8 is 16-aligned, as after `call`
    blob = bytearray(top - frame)
    fp = fpstate - frame
    blob[fp:fp + len(fp_image)] = fp_image
    uc = 8
    struct.pack_into("<QQQiiQ", blob, uc, UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS,
                     0, 0, SS_INVALID, 0, 0)
    sc = uc + 40
    struct.pack_into("<18Q", blob, sc, *(resumed[_INDEX[n]] & 0xFFFFFFFFFFFFFFFF
                                         for n in _SIGCONTEXT_REGS))
    # cs, gs, fs, ss (16 bits each), err, trapno, oldmask, cr2, fpstate
    struct.pack_into("<HHHHQQQQQ", blob, sc + 144, regs[_INDEX["cs"]] & 0xFFFF, 0, 0,
                     regs[_INDEX["ss"]] & 0xFFFF, 0, 0, 0, 0, fpstate)
    struct.pack_into("<Q", blob, uc + 40 + 256, sigmask)
    return RestoreFrame(address=frame, data=bytes(blob), frame=frame, resumed=tuple(resumed))


def xstate_is_standard(xstate: bytes) -> bool:
    """The regset is in the standard (non-compacted) XSAVE format, which is
    what a signal frame carries."""
    if len(xstate) < _XSTATE_MIN:
        return False
    xcomp_bv, = struct.unpack_from("<Q", xstate, 512 + 8)
    return bool(xcomp_bv == 0)


def signed(value: int) -> int:
    """A 64-bit register read as a signed number (-ERESTARTSYS, -1 ...)."""
    value &= 0xFFFFFFFFFFFFFFFF
    return value - (1 << 64) if value >> 63 else value
