"""The second wall: run one query in a disposable copy-on-write fork.

``inspector eval PID EXPR --isolated``: the agent forks the target, the child
runs the query (with the normal evaluator, or - explore mode, ``--allow-calls``
- with Python's own ``eval``, because in the child only the OS wall matters),
sends the snapshot back over a socketpair and exits with ``os._exit``. The
parent's state is untouched whatever the child does.

The fork (docs/DESIGN.md, "Isolated fork: the walls"): a small x86-64 routine
(``FORK_STUB_ASM`` below is its source, ``_FORK_STUB`` its bytes; a test
assembles one and compares it with the other) forks with the raw ``clone``
system call, so no glibc at-fork handler runs in the target and no Python
``os.register_at_fork`` callback runs in the parent. In the child, before one
instruction of Python or of the target runs, the same routine raises every
wall with raw system calls:

- every signal blocked (the parent's mask is restored at once), nice 19,
  first in line for the OOM killer;
- stdio on /dev/null, every other descriptor but the result socket closed;
- every writable ``MAP_SHARED`` mapping (shared anonymous memory, file-backed
  ``mmap``, multiprocessing locks and values, SysV and POSIX shm, memfd) made
  read-only, from the child's own ``/proc/self/maps`` (a write to shared memory
  needs no system call, so seccomp alone cannot see it);
- rlimits (CPU, address space, file size 0, few files, no core), not dumpable,
  no new privileges, and the seccomp filter of ``seccomp_program``, which
  also refuses to make memory writable again (``mprotect`` with PROT_WRITE),
  to map shared memory, ``madvise`` advice that reaches shared pages or the
  hardware, and futexes that are not process-private.

Only then does it call ``PyOS_AfterFork_Child`` (new GIL, import lock reset).
Before that call the other threads' states are unlinked (leaked, never
cleared: no finalizer of theirs runs) and the cyclic collector is turned off;
without ``--allow-calls`` the child's copy of the interpreter's
``after_in_child`` callback list is emptied too, so no callback runs at all;
with it they run, inside the walls.

Costs and limits: importing ctypes loads ``ctypes``/``_ctypes``/``struct`` into
the target (once); the fork copies page tables, stalling the target in
proportion to its memory (a size limit refuses big targets); the target gets
one SIGCHLD per query (refused when the target installed a Python SIGCHLD
handler, which would run). x86-64 Linux with kernel >= 5.9 (close_range) only.
"""
from __future__ import annotations

import _socket
import sys

from . import wire
from .errors import AgentError, DeniedError, QueryError, safe_error_text

MAX_RSS_BYTES = 1024 ** 3  # refuse to fork bigger targets: ~25 ms stall at 1 GiB (README)
CHILD_CPU_SECONDS = 10
CHILD_EXTRA_ADDRESS_SPACE = 512 * 1024 ** 2  # on top of the parent's current size
CHILD_MAX_FILES = 16
WAIT_MARGIN = 2.0  # seconds beyond the query's wall budget before we kill the child
MAPS_BUFFER_BYTES = 32 * 1024 ** 2  # /proc/self/maps of 65,530 mappings fits (~7 MB)

# The fork routine's source, GNU as, Intel syntax: FORK_STUB_ASM below, the
# source of truth for _FORK_STUB (tests/unit/test_isolate.py assembles it and
# compares, and runs the routine in a scratch process). In three functions only
# so that the loader's chunks stay small.


def _asm_fork():
    return r"""
# long fork_isolated(const uint64_t *d); d = struct ForkData, one 8-byte
# word per field:
#   [0x00] parent pid      [0x08] /dev/null fd    [0x10] result socket fd
#   [0x18] "/proc/self/maps" path                 [0x20] buffer, [0x28] its size
#   [0x30] rlimits {resource, cur, max}[], [0x38] how many
#   [0x40] struct sock_fprog *                    [0x48] &ob_size of the
#   interpreter's after_in_child list (0: keep the callbacks)
#   [0x50] PyOS_AfterFork_Child  [0x58] &interp's thread list head (0: we
#   are the head)  [0x60] our PyThreadState (0: keep the other threads' states)
#   [0x68] PyObject_CallObject   [0x70] gc.disable
#   [0x78] "/proc/self/oom_score_adj"  [0x80] "1000", [0x88] its length
# Parent: returns the child's pid, or -errno, with its signal mask as it was.
# Child: every signal blocked for good; raises the walls with
# raw system calls, then calls PyOS_AfterFork_Child and returns 0; on any
# failure it exit_group()s with a code from 120 (see _CHILD_EXIT_CODES).
	.intel_syntax noprefix
	.text
	.globl fork_isolated
fork_isolated:
	push rbx
	push r12
	push r13
	push r14
	push r15
	sub rsp, 16                 # [rsp] old signal mask, [rsp+8] all signals;
	mov rbx, rdi                # 5 pushes + 16: 16-byte aligned again
	mov qword ptr [rsp+8], -1
	mov eax, 14                 # rt_sigprocmask(SIG_SETMASK, all, &old, 8): the
	mov edi, 2                  # child starts, and stays, with every signal
	lea rsi, [rsp+8]            # blocked (no handler of the target runs there,
	mov rdx, rsp                # nothing reaches a signal wakeup descriptor)
	mov r10d, 8
	syscall
	mov eax, 56                 # clone(SIGCHLD, 0, 0, 0, 0): a plain fork with
	mov edi, 17                 # no glibc at-fork handlers, no malloc locks
	xor esi, esi
	xor edx, edx
	xor r10d, r10d
	xor r8d, r8d
	syscall
	test rax, rax
	jz child
	mov r12, rax                # parent: pid or -errno
	mov eax, 14                 # rt_sigprocmask(SIG_SETMASK, &old, NULL, 8)
	mov edi, 2
	mov rsi, rsp
	xor edx, edx
	mov r10d, 8
	syscall
	mov rax, r12
	add rsp, 16
	pop r15
	pop r14
	pop r13
	pop r12
	pop rbx
	ret
child:
	mov eax, 157                # prctl(PR_SET_PDEATHSIG, SIGKILL)
	mov edi, 1
	mov esi, 9
	syscall
	mov eax, 110                # getppid(): the parent may already be gone
	syscall
	cmp rax, [rbx]
	jne die_parent
	mov eax, 109                # setpgid(0, 0): the parent kills our group
	xor edi, edi
	xor esi, esi
	syscall
	mov eax, 141                # setpriority(PRIO_PROCESS, 0, 19): the target's
	xor edi, edi                # threads (and a CPU quota shared with it) come
	xor esi, esi                # first; best effort
	mov edx, 19
	syscall
	xor r12d, r12d
dup_next:                       # dup2(devnull, 0..2)
	mov eax, 33
	mov rdi, [rbx+0x08]
	mov esi, r12d
	syscall
	test rax, rax
	js die_fds
	inc r12d
	cmp r12d, 3
	jb dup_next
	mov r12, [rbx+0x10]         # keep (>= 3)
	cmp r12, 3
	jbe close_above
	mov eax, 436                # close_range(3, keep - 1, 0)
	mov edi, 3
	lea rsi, [r12-1]
	xor edx, edx
	syscall
	test rax, rax
	jnz die_fds
close_above:
	mov eax, 436                # close_range(keep + 1, ~0U, 0)
	lea rdi, [r12+1]
	mov esi, 0xffffffff
	xor edx, edx
	syscall
	test rax, rax
	jnz die_fds
"""


def _asm_maps():
    return r"""
	mov eax, 2                  # open("/proc/self/maps", O_RDONLY|O_CLOEXEC)
	mov rdi, [rbx+0x18]
	mov esi, 0x80000
	xor edx, edx
	syscall
	test rax, rax
	js die_maps
	mov r13, rax                # r13 = fd, r14 = end of data, r15 = room
	mov r14, [rbx+0x20]
	mov r15, [rbx+0x28]
read_more:
	test r15, r15
	jz die_maps                 # buffer full: fail closed
	xor eax, eax                # read(fd, r14, r15)
	mov rdi, r13
	mov rsi, r14
	mov rdx, r15
	syscall
	cmp rax, -4                 # EINTR: again
	je read_more
	test rax, rax
	js die_maps
	jz read_done
	add r14, rax
	sub r15, rax
	jmp read_more
read_done:
	mov eax, 3                  # close(fd)
	mov rdi, r13
	syscall
	mov r12, [rbx+0x20]         # r12 = cursor
next_line:                      # "start-end perms offset dev inode path\n"
	cmp r12, r14
	jae lines_done
	mov cl, 0x2d                # '-'
	call hex
	mov r13, rax                # start
	mov cl, 0x20                # ' '
	call hex
	mov r15, rax                # end
	lea rax, [r12+4]
	cmp rax, r14
	ja die_maps
	cmp byte ptr [r12+3], 0x73  # 's': MAP_SHARED
	jne skip_line
	cmp byte ptr [r12+1], 0x77  # 'w': writable now
	jne skip_line
	xor edx, edx                # prot = the same, minus PROT_WRITE
	cmp byte ptr [r12], 0x72    # 'r'
	jne 1f
	or edx, 1
1:	cmp byte ptr [r12+2], 0x78  # 'x'
	jne 2f
	or edx, 4
2:	mov eax, 10                 # mprotect(start, end - start, prot)
	mov rdi, r13
	mov rsi, r15
	sub rsi, r13
	syscall
	test rax, rax
	jnz die_shared
skip_line:
	cmp r12, r14
	jae lines_done
	movzx eax, byte ptr [r12]
	inc r12
	cmp al, 0x0a
	jne skip_line
	jmp next_line
"""


def _asm_walls():
    return r"""
lines_done:
	mov eax, 2                  # open("/proc/self/oom_score_adj", O_WRONLY|O_CLOEXEC)
	mov rdi, [rbx+0x78]         # and write "1000": under memory pressure the
	mov esi, 0x80001            # kernel kills the child (whose copied pages are
	xor edx, edx                # charged to it), not the target; best effort
	syscall
	test rax, rax
	js oom_done
	mov r13, rax
	mov eax, 1
	mov rdi, r13
	mov rsi, [rbx+0x80]
	mov rdx, [rbx+0x88]
	syscall
	mov eax, 3
	mov rdi, r13
	syscall
oom_done:
	mov r12, [rbx+0x30]
	mov r13, [rbx+0x38]
limit_next:                     # prlimit64(0, resource, &{cur, max}, NULL)
	test r13, r13
	jz limits_done
	mov eax, 302
	xor edi, edi
	mov rsi, [r12]
	lea rdx, [r12+8]
	xor r10d, r10d
	syscall
	test rax, rax
	jnz die_limits
	add r12, 24
	dec r13
	jmp limit_next
limits_done:
	mov eax, 157                # prctl(PR_SET_DUMPABLE, 0): no core file
	mov edi, 4
	xor esi, esi
	syscall
	test rax, rax
	jnz die_seccomp
	mov eax, 157                # prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
	mov edi, 38
	mov esi, 1
	xor edx, edx
	xor r10d, r10d
	xor r8d, r8d
	syscall
	test rax, rax
	jnz die_seccomp
	mov eax, 157                # prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, fprog)
	mov edi, 22
	mov esi, 2
	mov rdx, [rbx+0x40]
	syscall
	test rax, rax
	jnz die_seccomp
	mov rax, [rbx+0x48]         # empty the child's copy of the after_in_child
	test rax, rax               # list: PyOS_AfterFork_Child then runs none
	jz keep_callbacks
	mov qword ptr [rax], 0
keep_callbacks:
	mov rcx, [rbx+0x60]         # unlink the other threads' states: the child
	test rcx, rcx               # leaks them instead of clearing them, so no
	jz keep_threads             # finalizer of what they hold runs
	mov rax, [rbx+0x58]
	test rax, rax               # 0: we are the head already
	jz 3f
	mov [rax], rcx              # interp's thread list head = our state
3:	mov qword ptr [rcx], 0      # our prev = NULL
	mov qword ptr [rcx+8], 0    # our next = NULL
keep_threads:
	mov rdi, [rbx+0x70]         # PyObject_CallObject(gc.disable, NULL): the
	xor esi, esi                # child never runs the cyclic collector, whose
	call [rbx+0x68]             # finalizers would be target code
	call [rbx+0x50]             # PyOS_AfterFork_Child(): new GIL, dead threads dropped
	xor eax, eax
	add rsp, 16
	pop r15
	pop r14
	pop r13
	pop r12
	pop rbx
	ret
hex:                            # rax = hex number at r12 up to byte cl; r12 after cl
	xor eax, eax
hex_next:
	cmp r12, r14
	jae die_maps
	movzx edx, byte ptr [r12]
	inc r12
	cmp dl, cl
	je hex_end
	sub edx, 0x30               # '0'..'9'
	cmp edx, 9
	jbe hex_digit
	sub edx, 0x27               # 'a'..'f'
	cmp edx, 15
	ja die_maps
	cmp edx, 10
	jb die_maps
hex_digit:
	shl rax, 4
	or rax, rdx
	jmp hex_next
hex_end:
	ret
die_parent:
	mov edi, 120
	jmp die
die_fds:
	mov edi, 121
	jmp die
die_maps:
	mov edi, 122
	jmp die
die_shared:
	mov edi, 123
	jmp die
die_limits:
	mov edi, 124
	jmp die
die_seccomp:
	mov edi, 125
die:
	mov eax, 231                # exit_group(code)
	syscall
	hlt
"""


FORK_STUB_ASM = _asm_fork() + _asm_maps() + _asm_walls()

_FORK_STUB = bytes.fromhex(
    "5341544155415641574883ec104889fb48c7442408ffffffffb80e000000bf02"
    "000000488d7424084889e241ba080000000f05b838000000bf1100000031f631"
    "d24531d24531c00f054885c0742b4989c4b80e000000bf020000004889e631d2"
    "41ba080000000f054c89e04883c410415f415e415d415c5bc3b89d000000bf01"
    "000000be090000000f05b86e0000000f05483b030f85a6020000b86d00000031"
    "ff31f60f05b88d00000031ff31f6ba130000000f054531e4b821000000488b7b"
    "084489e60f054885c00f887802000041ffc44183fc0372e04c8b63104983fc03"
    "761cb8b4010000bf03000000498d7424ff31d20f054885c00f8549020000b8b4"
    "010000498d7c2401beffffffff31d20f054885c00f852d020000b80200000048"
    "8b7b18be0000080031d20f054885c00f88190200004989c54c8b73204c8b7b28"
    "4d85ff0f840502000031c04c89ef4c89f64c89fa0f054883f8fc74e44885c00f"
    "88e901000074084901c64929c7ebd1b8030000004c89ef0f054c8b63204d39f4"
    "7375b12de8850100004989c5b120e87b0100004989c7498d4424044c39f00f87"
    "aa01000041807c240373753841807c240177753031d241803c2472750383ca01"
    "41807c240278750383ca04b80a0000004c89ef4c89fe4c29ee0f054885c00f85"
    "710100004d39f4730e410fb6042449ffc43c0a75efeb86b802000000488b7b78"
    "be0100080031d20f054885c078254989c5b8010000004c89ef488bb380000000"
    "488b93880000000f05b8030000004c89ef0f054c8b63304c8b6b384d85ed7427"
    "b82e01000031ff498b3424498d5424084531d20f054885c00f85fe0000004983"
    "c41849ffcdebd4b89d000000bf0400000031f60f054885c00f85e5000000b89d"
    "000000bf26000000be0100000031d24531d24531c00f054885c00f85c3000000"
    "b89d000000bf16000000be02000000488b53400f054885c00f85a5000000488b"
    "43484885c0740748c70000000000488b4b604885c9741b488b43584885c07403"
    "48890848c7010000000048c7410800000000488b7b7031f6ff5368ff535031c0"
    "4883c410415f415e415d415c5bc331c04d39f47339410fb6142449ffc438ca74"
    "1e83ea3083fa09760d83ea2783fa0f771d83fa0a721848c1e0044809d0ebd1c3"
    "bf78000000eb21bf79000000eb1abf7a000000eb13bf7b000000eb0cbf7c0000"
    "00eb05bf7d000000b8e70000000f05f4"
)

# The routine's exit codes when a wall cannot be raised (the child never runs
# Python then); the parent names the cause.
_CHILD_EXIT_CODES = {
    120: "the target ended during the fork",
    121: "the child could not close the target's descriptors (kernel < 5.9 has no "
         "close_range)",
    122: "the child could not read its memory map (/proc/self/maps)",
    123: "the child could not make a shared memory mapping read-only",
    124: "the child could not set its resource limits",
    125: "the child could not install its seccomp filter (no seccomp in this kernel or "
         "container?)",
}

# --- seccomp: what the child may do ------------------------------------------
# x86-64 system call numbers. Everything not listed fails with EPERM (so a
# query gets a clean PermissionError): open, kill, ptrace, process_vm_writev,
# shmat, clone, io_uring, mremap's relatives, msync, pkey_mprotect... Some
# calls are allowed only with safe arguments (see seccomp_program).
_ALLOWED_SYSCALLS = (
    0,    # read (the descriptors left: /dev/null and the result socket)
    3,    # close
    5,    # fstat
    8,    # lseek
    11,   # munmap
    12,   # brk
    13,   # rt_sigaction
    14,   # rt_sigprocmask
    15,   # rt_sigreturn
    24,   # sched_yield
    25,   # mremap (keeps a mapping's protection: cannot make shared memory writable)
    39,   # getpid
    60,   # exit
    131,  # sigaltstack
    186,  # gettid
    228,  # clock_gettime
    230,  # clock_nanosleep
    231,  # exit_group
    262,  # newfstatat
    318,  # getrandom
)
_NR_WRITE, _NR_SENDTO = 1, 44        # only on the result socket
_NR_MMAP, _NR_MPROTECT, _NR_MADVISE, _NR_FUTEX = 9, 10, 28, 202
_NR_SELECT, _NR_PSELECT6 = 23, 270  # only with no descriptor: time.sleep on 3.8-3.10
_MAP_TYPE, _MAP_PRIVATE = 0x0F, 0x02
_PROT_WRITE = 0x2
# MADV_NORMAL, RANDOM, SEQUENTIAL, WILLNEED, DONTNEED, FREE, HUGEPAGE, NOHUGEPAGE:
# none changes what another process sees. Refused among others: MADV_REMOVE
# (punches a hole in shared memory and files), MADV_HWPOISON / SOFT_OFFLINE
# (a root child would poison the target's pages), PAGEOUT, COLD, MERGEABLE.
_ALLOWED_MADVISE = (0, 1, 2, 3, 4, 8, 14, 15)
_FUTEX_PRIVATE_FLAG, _FUTEX_CLOCK_REALTIME = 0x80, 0x100
# FUTEX_WAIT, WAKE, WAIT_BITSET, WAKE_BITSET, only process-private: a shared
# futex could wake the target's threads.
_ALLOWED_FUTEX_OPS = (0, 1, 9, 10)
_AUDIT_ARCH_X86_64 = 0xC000003E
_RET_ALLOW = 0x7FFF0000
_RET_KILL = 0x80000000  # SECCOMP_RET_KILL_PROCESS
_RET_EPERM = 0x00050000 | 1
# struct seccomp_data offsets: nr, arch, then args[i] at 16 + 8 * i (low half).
_OFF_NR, _OFF_ARCH = 0, 4


def _arg(i):
    return 16 + 8 * i


# classic BPF opcodes
_LD_W_ABS, _ALU_AND_K, _RET_K = 0x20, 0x54, 0x06
_JEQ_K, _JGE_K, _JSET_K = 0x15, 0x35, 0x45


def seccomp_source(keep_fd):
    """The filter as a readable list: ("label:",) marks a label; instructions
    are (op, k) or (jump-op, k, true-label, false-label), None = next."""
    src = [
        ("ld", _OFF_ARCH),
        ("jeq", _AUDIT_ARCH_X86_64, None, "kill"),
        ("ld", _OFF_NR),
        ("jge", 0x40000000, "kill", None),           # the x32 ABI: never
    ]
    for nr in _ALLOWED_SYSCALLS:
        src.append(("jeq", nr, "allow", None))
    for nr, label in ((_NR_MMAP, "mmap"), (_NR_MPROTECT, "mprotect"),
                      (_NR_MADVISE, "madvise"), (_NR_FUTEX, "futex"),
                      (_NR_WRITE, "result_fd"), (_NR_SENDTO, "result_fd"),
                      (_NR_SELECT, "sleep"), (_NR_PSELECT6, "sleep")):
        src.append(("jeq", nr, label, None))
    src.append(("ret", _RET_EPERM))
    src += [
        ("mmap:",),                                  # private mappings only
        ("ld", _arg(3)),
        ("and", _MAP_TYPE),
        ("jeq", _MAP_PRIVATE, "allow", "deny"),
        ("mprotect:",),                              # never writable again
        ("ld", _arg(2)),
        ("jset", _PROT_WRITE, "deny", "allow"),
        ("madvise:",),
        ("ld", _arg(2)),
    ]
    src += [("jeq", advice, "allow", None) for advice in _ALLOWED_MADVISE]
    src += [
        ("ret", _RET_EPERM),
        ("futex:",),
        ("ld", _arg(1)),
        ("jset", _FUTEX_PRIVATE_FLAG, None, "deny"),
        ("and", 0xFFFFFFFF & ~(_FUTEX_PRIVATE_FLAG | _FUTEX_CLOCK_REALTIME)),
    ]
    src += [("jeq", op, "allow", None) for op in _ALLOWED_FUTEX_OPS]
    src += [
        ("ret", _RET_EPERM),
        ("sleep:",),                                 # (p)select(0, ...): a sleep
        ("ld", _arg(0)),
        ("jeq", 0, "allow", "deny"),
        ("result_fd:",),
        ("ld", _arg(0)),
        ("jeq", keep_fd, "allow", "deny"),
        ("allow:",),
        ("ret", _RET_ALLOW),
        ("deny:",),
        ("ret", _RET_EPERM),
        ("kill:",),
        ("ret", _RET_KILL),
    ]
    return src


def seccomp_program(keep_fd):
    """The BPF filter as (code, jt, jf, k) tuples, assembled from seccomp_source."""
    src = seccomp_source(keep_fd)
    labels = {}
    body = []
    for item in src:
        if len(item) == 1:
            labels[item[0][:-1]] = len(body)
        else:
            body.append(item)
    ops = {"ld": _LD_W_ABS, "and": _ALU_AND_K, "ret": _RET_K,
           "jeq": _JEQ_K, "jge": _JGE_K, "jset": _JSET_K}
    prog = []
    for pc, item in enumerate(body):
        if len(item) == 2:
            prog.append((ops[item[0]], 0, 0, item[1]))
            continue
        name, k, on_true, on_false = item
        offsets = []
        for label in (on_true, on_false):
            offset = 0 if label is None else labels[label] - pc - 1
            if not 0 <= offset <= 255:
                raise ValueError("seccomp jump out of range")
            offsets.append(offset)
        prog.append((ops[name], offsets[0], offsets[1], k))
    return prog


# --- the parent side -----------------------------------------------------------

def _vm_kilobytes(field):
    import posix

    fd = posix.open("/proc/self/status", posix.O_RDONLY | posix.O_CLOEXEC)
    try:
        data = posix.read(fd, 65536)
    finally:
        posix.close(fd)
    for line in data.split(b"\n"):
        if line.startswith(field + b":"):
            return int(line.split()[1])
    return 0


def check_possible(max_rss=MAX_RSS_BYTES):
    """Raise DeniedError saying why isolation is impossible or too costly."""
    import posix

    if sys.platform != "linux" or posix.uname().machine != "x86_64":
        raise DeniedError("isolated queries need x86-64 Linux (fork with a native helper); "
                          "use an in-process query instead")
    rss = _vm_kilobytes(b"VmRSS") * 1024
    if rss > max_rss:
        raise DeniedError(
            "isolated query refused: the target's RSS is %.1f GiB, above the %.1f GiB limit "
            "(forking copies its page tables and stalls it); use an in-process query, or "
            "raise the limit with max_isolated_rss" % (rss / 1024 ** 3, max_rss / 1024 ** 3))
    import _signal

    handler = _signal.getsignal(_signal.SIGCHLD)
    if handler not in (_signal.SIG_DFL, _signal.SIG_IGN, None):
        raise DeniedError("isolated query refused: the target handles SIGCHLD in Python, and "
                          "the child's exit would run its handler; use an in-process query")


_C_FUNCTIONS = {}


def _c_function(module, name):
    """The C function module.name, even if the target replaced the attribute
    or the module (census.builtin_module: no import hook runs)."""
    fn = _C_FUNCTIONS.get((module, name))
    if fn is not None:
        return fn
    from . import census

    fn = census._genuine(census.builtin_module(module, name), name)
    if fn is not None:
        _C_FUNCTIONS[module, name] = fn
    else:
        raise DeniedError("isolated query refused: %s.%s is not CPython's own" % (module, name))
    return fn


def _monotonic():
    return _c_function("time", "monotonic")()


def _sleep(seconds):
    _c_function("time", "sleep")(seconds)


_AFTER_IN_CHILD = []  # [the interpreter's after_in_child list], found once


def after_in_child_list():
    """The interpreter's own list of ``os.register_at_fork(after_in_child=)``
    callbacks. Found by registering a no-op marker and asking the collector
    which list holds it; the marker is removed at once."""
    if _AFTER_IN_CHILD:
        return _AFTER_IN_CHILD[0]
    register_at_fork = _c_function("posix", "register_at_fork")
    get_referrers = _c_function("gc", "get_referrers")

    def marker():
        return None

    register_at_fork(after_in_child=marker)
    found = [r for r in get_referrers(marker) if type(r) is list]
    holders = []
    for lst in found:
        for i in range(len(lst) - 1, -1, -1):
            if lst[i] is marker:
                del lst[i]
                if not holders or holders[-1] is not lst:
                    holders.append(lst)
    if len(holders) != 1:
        # Only when the list itself was frozen by gc.freeze(): the marker (a
        # no-op) then stays registered (README, Limits).
        raise DeniedError("isolated query refused: the target's at-fork callback list was "
                          "not found (frozen by gc.freeze()?), so it cannot be emptied in the "
                          "child; use an in-process query or --allow-calls")
    _AFTER_IN_CHILD.append(holders[0])
    return holders[0]


def _mapping_end(address):
    """End of the readable mapping holding `address`, from /proc/self/maps."""
    import posix

    fd = posix.open("/proc/self/maps", posix.O_RDONLY | posix.O_CLOEXEC)
    try:
        chunks = []
        while True:
            chunk = posix.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        posix.close(fd)
    for line in b"".join(chunks).split(b"\n"):
        fields = line.split()
        if len(fields) < 2 or not fields[1].startswith(b"r"):
            continue
        start, _, end = fields[0].partition(b"-")
        if int(start, 16) <= address < int(end, 16):
            return int(end, 16)
    return None


class _Native:
    """ctypes handles, created on first use (importing ctypes is a cost)."""

    def __init__(self):
        import ctypes

        self.ctypes = ctypes
        self.libc = ctypes.CDLL(None, use_errno=True)
        vp = ctypes.c_void_p
        # our own handle: setting restype on ctypes.pythonapi's functions
        # would change them for the target too
        self.api = api = ctypes.PyDLL(None)
        self.after_fork_child = ctypes.cast(api.PyOS_AfterFork_Child, vp).value
        self.call_object = ctypes.cast(api.PyObject_CallObject, vp).value
        self.head_field = 0
        for name, argtypes in (("PyThreadState_Get", ()), ("PyInterpreterState_Main", ()),
                               ("PyInterpreterState_ThreadHead", (vp,)),
                               ("PyThreadState_Next", (vp,))):
            func = getattr(api, name)
            func.restype, func.argtypes = vp, argtypes
        self.libc.mmap.restype = vp
        self.libc.mmap.argtypes = (vp, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                                   ctypes.c_int, ctypes.c_long)
        self.libc.mprotect.argtypes = (vp, ctypes.c_size_t, ctypes.c_int)
        self.libc.munmap.argtypes = (vp, ctypes.c_size_t)

    def _map(self, size, prot, flags):
        page = self.libc.mmap(None, size, prot, flags, -1, 0)
        if page in (None, self.ctypes.c_void_p(-1).value):
            raise QueryError("OSError", "mmap failed for the isolation helper")
        return page

    def _word(self, address):
        return self.ctypes.c_void_p.from_address(address).value or 0

    def thread_links(self):
        """(address of the interpreter's thread-list head field or 0 when we
        are the head, our PyThreadState), or None when the layout is not the
        one we know.

        PyThreadState starts with prev, next, interp on 3.8-3.13; the head
        field's offset in PyInterpreterState differs per version and build, so
        it is found: the one word in the interpreter (within its mapping)
        that holds the list's head, which is not itself a thread state. When
        we are the head (the usual case: the agent's thread is the newest),
        3.12+ also keep us as the GIL's last holder, and only our own next
        link needs cutting."""
        api = self.api
        me = api.PyThreadState_Get()
        interp = api.PyInterpreterState_Main()
        if not me or not interp or self._word(me + 16) != interp:
            return None
        head = api.PyInterpreterState_ThreadHead(interp)
        states, prev, ts = set(), 0, head
        while ts:
            if len(states) > 100000 or self._word(ts) != prev or self._word(ts + 16) != interp:
                return None
            nxt = api.PyThreadState_Next(ts) or 0
            if self._word(ts + 8) != nxt:
                return None
            states.add(ts)
            prev, ts = ts, nxt
        if me not in states:
            return None
        if head == me:
            return 0, me
        if self.head_field and self._word(self.head_field) == head:
            return self.head_field, me
        end = _mapping_end(interp)
        if end is None:
            return None
        found = [interp + off for off in range(0, min(8192, end - interp) - 7, 8)
                 if interp + off not in states and self._word(interp + off) == head]
        if len(found) != 1:
            return None
        self.head_field = found[0]  # the interpreter lives as long as the process
        return found[0], me

    def _hard_limit(self, resource):
        ctypes = self.ctypes
        pair = (ctypes.c_uint64 * 2)()
        if self.libc.getrlimit(resource, pair) != 0:
            raise QueryError("OSError", "getrlimit(%d) failed" % resource)
        return pair[1]

    def plan(self, devnull_fd, keep_fd, timeout, allow_calls):
        """The routine's ForkData words and the ctypes objects they point into
        (kept alive by the caller until the fork returned)."""
        import posix

        ctypes = self.ctypes
        forkers_size = 0
        if not allow_calls:
            callbacks = after_in_child_list()
            size_field = ctypes.c_ssize_t.from_address(id(callbacks) + 16)
            if size_field.value != len(callbacks):  # not the list layout we know
                raise DeniedError("isolated query refused: unknown list layout in this "
                                  "interpreter; use an in-process query")
            forkers_size = id(callbacks) + 16
        cpu = max(1, min(CHILD_CPU_SECONDS, int(timeout) + 1))
        address_space = (_vm_kilobytes(b"VmSize") * 1024 + MAPS_BUFFER_BYTES
                         + CHILD_EXTRA_ADDRESS_SPACE)
        files = max(CHILD_MAX_FILES, keep_fd + 1)
        # RLIMIT_CPU=0, RLIMIT_FSIZE=1, RLIMIT_CORE=4, RLIMIT_NOFILE=7, RLIMIT_AS=9;
        # never above the target's hard limit (raising it needs privilege)
        limits = tuple((resource, min(value, self._hard_limit(resource)))
                       for resource, value in ((0, cpu), (1, 0), (4, 0), (7, files),
                                               (9, address_space)))
        rlimits = (ctypes.c_uint64 * (3 * len(limits)))(
            *[v for resource, value in limits for v in (resource, value, value)])
        prog = seccomp_program(keep_fd)
        filters = (ctypes.c_uint64 * len(prog))(
            *[code | jt << 16 | jf << 24 | k << 32 for code, jt, jf, k in prog])
        fprog = (ctypes.c_uint64 * 2)(len(prog), ctypes.addressof(filters))
        maps_path = ctypes.create_string_buffer(b"/proc/self/maps")
        oom_path = ctypes.create_string_buffer(b"/proc/self/oom_score_adj")
        oom_value = ctypes.create_string_buffer(b"1000")
        links = self.thread_links()
        if links is None and not allow_calls:
            raise DeniedError("isolated query refused: this interpreter's thread list is not "
                              "laid out as expected, so the child could run finalizers of "
                              "other threads' data; use an in-process query")
        gc_disable = _c_function("gc", "disable")
        words = [posix.getpid(), devnull_fd, keep_fd, ctypes.addressof(maps_path), 0, 0,
                 ctypes.addressof(rlimits), len(limits), ctypes.addressof(fprog),
                 forkers_size, self.after_fork_child, links[0] if links else 0,
                 links[1] if links else 0, self.call_object, id(gc_disable),
                 ctypes.addressof(oom_path), ctypes.addressof(oom_value), 4]
        return words, (rlimits, filters, fprog, maps_path, gc_disable, oom_path, oom_value)

    def fork_isolated(self, words):
        """clone() through the routine; the child returns 0 behind its walls.

        Returns (pid or -errno, seconds the parent was stalled)."""
        ctypes = self.ctypes
        pid = -1
        page = self._map(4096, 0x3, 0x22)  # RW, private anonymous
        try:
            # the child reads its memory map here; reserved, never touched by the parent
            buf = self._map(MAPS_BUFFER_BYTES, 0x3, 0x22 | 0x4000)  # MAP_NORESERVE
        except BaseException:
            self.libc.munmap(page, 4096)
            raise
        try:
            ctypes.memmove(page, _FORK_STUB, len(_FORK_STUB))
            if self.libc.mprotect(page, 4096, 0x5) != 0:  # RX: never writable and executable
                raise DeniedError("isolated queries need executable memory (mprotect refused: "
                                  "a W^X policy?)")
            words = list(words)
            words[4], words[5] = buf, MAPS_BUFFER_BYTES
            data = (ctypes.c_uint64 * len(words))(*words)
            # PYFUNCTYPE: the GIL stays held across the call, so no other
            # thread runs between the fork and our return in the parent.
            stub = ctypes.PYFUNCTYPE(ctypes.c_long, ctypes.c_void_p)(page)
            acquire, release = (_c_function("_imp", "acquire_lock"),
                                _c_function("_imp", "release_lock"))
            clock = _c_function("time", "monotonic")
            acquire()
            try:
                started = clock()
                pid = stub(ctypes.addressof(data))
                elapsed = clock() - started  # the parent's stall: page tables copied
            finally:
                if pid != 0:
                    release()
            return pid, (elapsed if pid != 0 else 0.0)
        finally:
            if pid != 0:
                self.libc.munmap(buf, MAPS_BUFFER_BYTES)
                self.libc.munmap(page, 4096)


_native = None


def _get_native():
    global _native
    if _native is None:
        _native = _Native()
    return _native


def _high_fd(fd):
    """Keep our descriptors above 2 so dup2() onto 0..2 cannot clobber them."""
    import posix

    moved = []
    while fd < 3:
        moved.append(fd)
        fd = posix.dup(fd)
    for old in moved:
        posix.close(old)
    return fd


def run(job, *, timeout, max_rss=MAX_RSS_BYTES, allow_calls=False):
    """Run `job()` (returns a JSON-able value) in a hardened fork; return its value.

    Without `allow_calls` the target's after_in_child callbacks do not run in
    the child; with it they run there, behind the walls.

    Raises the job's AgentError in the parent, or QueryError if the child
    crashed, timed out or exited without answering.
    """
    import posix

    check_possible(max_rss)
    native = _get_native()
    parent_end, child_end = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    devnull = _high_fd(posix.open("/dev/null", posix.O_RDWR | posix.O_CLOEXEC))
    keep = child_end.detach()
    keep = _high_fd(keep)
    child_end = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, keep)
    try:
        words, keep_alive = native.plan(devnull, keep, timeout, allow_calls)
        pid, stall = native.fork_isolated(words)
        del keep_alive
    except BaseException:
        parent_end.close()
        child_end.close()
        posix.close(devnull)
        raise
    if pid == 0:
        _child(child_end, job)  # never returns
    posix.close(devnull)
    child_end.close()
    if pid < 0:
        parent_end.close()
        raise QueryError("OSError", "fork failed (process limit or memory?)")
    reply = None
    try:
        reply = _await_reply(parent_end, timeout + WAIT_MARGIN)
    finally:
        parent_end.close()
        status = _reap(pid, patient=reply is not None)
    if reply is None:
        raise QueryError("IsolatedChildError", _describe_exit(status))
    if reply.get("ok"):
        value = reply.get("value")
        if type(value) is dict:
            value["isolated"] = {"fork_ms": round(stall * 1000.0, 3)}
        return value
    error = reply.get("error") or {}
    err = AgentError(str(error.get("message", "isolated query failed")))
    err.kind = str(error.get("kind", "eval"))
    raise err


def _await_reply(sock, timeout):
    """The child's reply frame, or None. One deadline for the whole frame: a
    child dripping a byte at a time cannot keep the agent waiting longer."""
    deadline = _monotonic() + timeout
    try:
        header = _recv_by(sock, wire.HEADER_SIZE, deadline)
        if header is None:
            return None
        body = _recv_by(sock, wire.frame_length(header), deadline)
        return None if body is None else wire.decode_body(body)
    except (OSError, EOFError, wire.ProtocolError):
        return None


def _recv_by(sock, n, deadline):
    """Exactly n bytes before the deadline, or None."""
    chunks = []
    while n:
        remaining = deadline - _monotonic()
        if remaining <= 0:
            return None
        sock.settimeout(remaining)
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _reap(pid, patient):
    """Wait for the child; kill its process group if it lingers (at once when it
    never answered). Returns the wait status, or None if it was reaped already."""
    import posix

    deadline = _monotonic() + (1.0 if patient else 0.0)
    while True:
        try:
            done, status = posix.waitpid(pid, posix.WNOHANG)
        except ChildProcessError:
            return None  # SIGCHLD ignored by the target: reaped automatically
        if done:
            return status
        if _monotonic() >= deadline:
            for kill in (lambda: posix.killpg(pid, 9), lambda: posix.kill(pid, 9)):
                try:
                    kill()
                except OSError:
                    pass
            try:
                return posix.waitpid(pid, 0)[1]
            except ChildProcessError:
                return None
        _sleep(0.005)


def _describe_exit(status):
    import posix

    if status is None:
        return "the isolated child gave no answer (the target is unaffected)"
    if posix.WIFSIGNALED(status):
        sig = posix.WTERMSIG(status)
        names = {9: "SIGKILL (time limit)", 6: "SIGABRT", 7: "SIGBUS",
                 11: "SIGSEGV (a write to read-only shared memory?)",
                 24: "SIGXCPU (CPU limit)", 31: "SIGSYS (forbidden system call)"}
        return ("the isolated child died of %s; the target is unaffected"
                % names.get(sig, "signal %d" % sig))
    if posix.WIFEXITED(status) and posix.WEXITSTATUS(status) in _CHILD_EXIT_CODES:
        return ("isolated query refused: %s; the target is unaffected"
                % _CHILD_EXIT_CODES[posix.WEXITSTATUS(status)])
    if posix.WIFEXITED(status):
        return ("the isolated child exited with code %d before answering; the target is "
                "unaffected" % posix.WEXITSTATUS(status))
    return "the isolated child ended without an answer; the target is unaffected"


# --- the child side ------------------------------------------------------------

def explore_eval(expr, scope):
    """Explore mode (``--allow-calls``), only ever called in the isolated child:
    Python's own eval over the child's copy of the scope. Here the OS wall
    (fork, closed descriptors, rlimits, seccomp) is what protects the target."""
    globals_ = dict(scope.globals)
    code = compile(expr, "<isolated-query>", "eval", dont_inherit=True)
    return eval(code, globals_, dict(scope.locals) if scope.locals is not None else None)


def _child(sock, job):
    """Run the job behind the walls the routine raised, send the reply, _exit.
    Never returns, never raises."""
    import posix

    try:
        try:
            reply = {"ok": True, "value": job()}
        except AgentError as e:
            reply = {"ok": False, "error": {"kind": e.kind, "message": e.message}}
        except BaseException as e:
            reply = {"ok": False, "error": {"kind": "eval", "message": safe_error_text(e)}}
        try:
            frame = wire.encode_frame(reply)
        except BaseException as e:
            message = "cannot encode the result: %s" % safe_error_text(e)
            frame = wire.encode_frame({"ok": False,
                                       "error": {"kind": "internal", "message": message}})
        sock.sendall(frame)
    finally:
        posix._exit(0)  # no atexit handlers, no flushing of the target's buffers
