"""The second wall: run one query in a disposable copy-on-write fork.

``inspector eval PID EXPR --isolated``: the agent forks the target, the child
runs the query (with the normal evaluator, or - explore mode, ``--allow-calls``
- with Python's own ``eval``, because in the child only the OS wall matters),
sends the snapshot back over a socketpair and exits with ``os._exit``. The
parent's state is untouched whatever the child does.

How we fork without running target code in the parent (docs/DESIGN.md,
"Isolated queries"): ``os.fork()`` runs the target's ``os.register_at_fork``
callbacks in the parent (and warns on 3.12+ when threads exist), so we call
libc ``fork`` ourselves. But any Python bytecode the child runs right after
``fork`` may hang: if another thread had asked for the GIL, the child honours
the drop request and waits forever for a thread that does not exist. So
``fork`` is called from a tiny x86-64 routine (built below, mapped read+exec
through ctypes) that, in the child and before returning to Python, points
0/1/2 at /dev/null, closes every other descriptor except the result socket
(``close_range``) and calls ``PyOS_AfterFork_Child`` (which rebuilds the GIL,
drops the dead threads' states and resets the import lock). The parent holds
the import lock across ``fork`` (``_imp.acquire_lock``), as ``os.fork`` does;
3.13's ``PyOS_AfterFork_Child`` expects it held. The target's
``after_in_child`` callbacks then run in the child, with no descriptor of the
parent left to write to.

Then the child hardens itself (own process group, die with the parent,
``PR_SET_NO_NEW_PRIVS``, rlimits: CPU seconds, address space, file size 0,
few files, and a seccomp filter that allows memory management, the result
socket and exiting) and runs the query.

Costs and limits: importing ctypes loads ``ctypes``/``_ctypes``/``struct`` into
the target (once); the fork copies page tables, stalling the target in
proportion to its memory (a size limit refuses big targets); the target gets
one SIGCHLD per query (refused when the target installed a Python SIGCHLD
handler, which would run). x86-64 Linux with glibc >= 2.34 only.
"""
from __future__ import annotations

import _socket
import sys
import time

from . import wire
from .errors import AgentError, DeniedError, QueryError, safe_error_text

MAX_RSS_BYTES = 1024 ** 3  # refuse to fork bigger targets: ~25 ms stall at 1 GiB (README)
CHILD_CPU_SECONDS = 10
CHILD_EXTRA_ADDRESS_SPACE = 512 * 1024 ** 2  # on top of the parent's current size
CHILD_MAX_FILES = 16
WAIT_MARGIN = 2.0  # seconds beyond the query's wall budget before we kill the child

# x86-64: int fork_isolated(struct data *d), struct data = {fork, dup2,
# close_range, PyOS_AfterFork_Child, devnull_fd, keep_fd}. Parent: returns
# fork()'s value. Child: dup2(devnull, 0..2); close_range(3, keep-1);
# close_range(keep+1, ~0); PyOS_AfterFork_Child(); returns 0.
_FORK_STUB = bytes.fromhex(
    "53"                # push rbx
    "4889fb"            # mov  rbx, rdi
    "ff13"              # call [rbx]            ; fork()
    "85c0"              # test eax, eax
    "7548"              # jnz  parent           ; parent (pid) or error (-1)
    "488b7b20"          # mov  rdi, [rbx+0x20]  ; devnull
    "31f6"              # xor  esi, esi
    "ff5308"            # call [rbx+0x08]       ; dup2(devnull, 0)
    "488b7b20"          # mov  rdi, [rbx+0x20]
    "be01000000"        # mov  esi, 1
    "ff5308"            # call [rbx+0x08]       ; dup2(devnull, 1)
    "488b7b20"          # mov  rdi, [rbx+0x20]
    "be02000000"        # mov  esi, 2
    "ff5308"            # call [rbx+0x08]       ; dup2(devnull, 2)
    "bf03000000"        # mov  edi, 3
    "488b7328"          # mov  rsi, [rbx+0x28]  ; keep
    "48ffce"            # dec  rsi
    "31d2"              # xor  edx, edx
    "ff5310"            # call [rbx+0x10]       ; close_range(3, keep - 1, 0)
    "488b7b28"          # mov  rdi, [rbx+0x28]
    "48ffc7"            # inc  rdi
    "beffffffff"        # mov  esi, 0xffffffff
    "31d2"              # xor  edx, edx
    "ff5310"            # call [rbx+0x10]       ; close_range(keep + 1, ~0U, 0)
    "ff5318"            # call [rbx+0x18]       ; PyOS_AfterFork_Child()
    "31c0"              # xor  eax, eax         ; child: 0
    "5b"                # parent: pop rbx
    "c3"                # ret
)

# --- seccomp: what the child may do ------------------------------------------
# x86-64 syscall numbers the evaluator, CPython's allocator and the result
# socket need; everything else fails with EPERM (so a query gets a clean
# PermissionError). `write`/`sendto`/`sendmsg` only on the result socket.
_ALLOWED_SYSCALLS = (
    0,    # read
    3,    # close
    5,    # fstat
    8,    # lseek
    9,    # mmap
    10,   # mprotect
    11,   # munmap
    12,   # brk
    13,   # rt_sigaction
    14,   # rt_sigprocmask
    15,   # rt_sigreturn
    24,   # sched_yield
    25,   # mremap
    28,   # madvise
    39,   # getpid
    60,   # exit
    131,  # sigaltstack
    186,  # gettid
    202,  # futex
    228,  # clock_gettime
    230,  # clock_nanosleep
    231,  # exit_group
    262,  # newfstatat
    318,  # getrandom
)
_WRITE_SYSCALLS = (1, 44, 46)  # write, sendto, sendmsg: result socket only
_AUDIT_ARCH_X86_64 = 0xC000003E
_RET_ALLOW = 0x7FFF0000
_RET_KILL = 0x80000000
_RET_EPERM = 0x00050000 | 1
_PR_SET_PDEATHSIG = 1
_PR_SET_SECCOMP = 22
_PR_SET_NO_NEW_PRIVS = 38
_SECCOMP_MODE_FILTER = 2


def seccomp_program(keep_fd):
    """The BPF filter as (code, jt, jf, k) tuples."""
    ld_abs, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    prog = [
        (ld_abs, 0, 0, 4),                       # A = arch
        (jeq, 1, 0, _AUDIT_ARCH_X86_64),
        (ret, 0, 0, _RET_KILL),
        (ld_abs, 0, 0, 0),                       # A = syscall number
        (jge, 0, 1, 0x40000000),                 # x32 ABI: never
        (ret, 0, 0, _RET_KILL),
    ]
    for nr in _ALLOWED_SYSCALLS:
        prog.append((jeq, 0, 1, nr))
        prog.append((ret, 0, 0, _RET_ALLOW))
    for nr in _WRITE_SYSCALLS:
        prog.append((jeq, 0, 4, nr))
        prog.append((ld_abs, 0, 0, 16))          # A = low 32 bits of args[0]
        prog.append((jeq, 0, 1, keep_fd))
        prog.append((ret, 0, 0, _RET_ALLOW))
        prog.append((ret, 0, 0, _RET_EPERM))
    prog.append((ret, 0, 0, _RET_EPERM))
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


class _Native:
    """ctypes handles, created on first use (importing ctypes is a cost)."""

    def __init__(self):
        import ctypes

        self.ctypes = ctypes
        self.libc = ctypes.CDLL(None, use_errno=True)
        if not hasattr(self.libc, "close_range"):
            raise DeniedError("isolated queries need glibc >= 2.34 (close_range)")
        addr = ctypes.cast
        vp = ctypes.c_void_p
        self.fork = addr(self.libc.fork, vp).value
        self.dup2 = addr(self.libc.dup2, vp).value
        self.close_range = addr(self.libc.close_range, vp).value
        self.after_fork_child = addr(ctypes.pythonapi.PyOS_AfterFork_Child, vp).value
        self.libc.mmap.restype = vp
        self.libc.mmap.argtypes = (vp, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                                   ctypes.c_int, ctypes.c_long)
        self.libc.mprotect.argtypes = (vp, ctypes.c_size_t, ctypes.c_int)
        self.libc.munmap.argtypes = (vp, ctypes.c_size_t)
        self.libc.prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong,
                                    ctypes.c_ulong, ctypes.c_ulong)

    def fork_isolated(self, devnull_fd, keep_fd):
        """fork() through the stub; the child returns 0 with a clean interpreter."""
        ctypes = self.ctypes
        page = self.libc.mmap(None, 4096, 0x3, 0x22, -1, 0)  # RW, private anonymous
        if page in (None, ctypes.c_void_p(-1).value):
            raise QueryError("OSError", "mmap failed for the isolation helper")
        try:
            ctypes.memmove(page, _FORK_STUB, len(_FORK_STUB))
            if self.libc.mprotect(page, 4096, 0x5) != 0:  # RX: never writable and executable
                raise DeniedError("isolated queries need executable memory (mprotect refused: "
                                  "a W^X policy?)")
            data = (ctypes.c_uint64 * 6)(self.fork, self.dup2, self.close_range,
                                         self.after_fork_child, devnull_fd, keep_fd)
            # PYFUNCTYPE: the GIL stays held across the call, so no other
            # thread runs between fork() and our return in the parent.
            stub = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_void_p)(page)
            import _imp

            pid = -1
            _imp.acquire_lock()
            try:
                started = time.monotonic()
                pid = stub(ctypes.addressof(data))
                elapsed = time.monotonic() - started  # the parent's stall: page tables copied
            finally:
                if pid != 0:
                    _imp.release_lock()
            return pid, (elapsed if pid != 0 else 0.0)
        finally:
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


def run(job, *, timeout, max_rss=MAX_RSS_BYTES):
    """Run `job()` (returns a JSON-able value) in a hardened fork; return its value.

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
        pid, stall = native.fork_isolated(devnull, keep)
    except BaseException:
        parent_end.close()
        child_end.close()
        posix.close(devnull)
        raise
    if pid == 0:
        _child(native, child_end, job, timeout)  # never returns
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
    sock.settimeout(timeout)
    try:
        length = wire.frame_length(wire.recv_exact(sock, wire.HEADER_SIZE))
        return wire.decode_body(wire.recv_exact(sock, length))
    except (OSError, EOFError, wire.ProtocolError):
        return None


def _reap(pid, patient):
    """Wait for the child; kill its process group if it lingers (at once when it
    never answered). Returns the wait status, or None if it was reaped already."""
    import posix

    deadline = time.monotonic() + (1.0 if patient else 0.0)
    while True:
        try:
            done, status = posix.waitpid(pid, posix.WNOHANG)
        except ChildProcessError:
            return None  # SIGCHLD ignored by the target: reaped automatically
        if done:
            return status
        if time.monotonic() >= deadline:
            for kill in (lambda: posix.killpg(pid, 9), lambda: posix.kill(pid, 9)):
                try:
                    kill()
                except OSError:
                    pass
            try:
                return posix.waitpid(pid, 0)[1]
            except ChildProcessError:
                return None
        time.sleep(0.005)


def _describe_exit(status):
    import posix

    if status is None:
        return "the isolated child gave no answer (the target is unaffected)"
    if posix.WIFSIGNALED(status):
        sig = posix.WTERMSIG(status)
        names = {9: "SIGKILL (time limit)", 11: "SIGSEGV", 6: "SIGABRT", 24: "SIGXCPU (CPU "
                 "limit)", 31: "SIGSYS (forbidden system call)", 7: "SIGBUS"}
        return ("the isolated child died of %s; the target is unaffected"
                % names.get(sig, "signal %d" % sig))
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


def _child(native, sock, job, timeout):
    """Harden, run the job, send the reply, _exit. Never returns, never raises."""
    import posix

    try:
        try:
            posix.setpgid(0, 0)
            _harden(native, sock.fileno(), timeout)
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


def _harden(native, keep_fd, timeout):
    ctypes, libc = native.ctypes, native.libc
    libc.prctl(_PR_SET_PDEATHSIG, 9, 0, 0, 0)

    class Rlimit(ctypes.Structure):
        _fields_ = [("cur", ctypes.c_ulong), ("max", ctypes.c_ulong)]

    cpu = max(1, min(CHILD_CPU_SECONDS, int(timeout) + 1))
    address_space = _vm_kilobytes(b"VmSize") * 1024 + CHILD_EXTRA_ADDRESS_SPACE
    for resource, value in ((0, cpu), (9, address_space), (1, 0),
                            (7, max(CHILD_MAX_FILES, keep_fd + 1))):
        # RLIMIT_CPU=0, RLIMIT_AS=9, RLIMIT_FSIZE=1, RLIMIT_NOFILE=7
        if libc.setrlimit(resource, ctypes.byref(Rlimit(value, value))) != 0:
            raise QueryError("OSError", "setrlimit(%d) failed in the isolated child" % resource)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise QueryError("OSError", "PR_SET_NO_NEW_PRIVS failed in the isolated child")

    class SockFilter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8),
                    ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]

    prog = seccomp_program(keep_fd)
    filters = (SockFilter * len(prog))(*[SockFilter(*ins) for ins in prog])
    fprog = SockFprog(len(prog), filters)
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER,
                  ctypes.cast(ctypes.pointer(fprog), ctypes.c_void_p).value, 0, 0) != 0:
        raise QueryError("OSError", "installing the seccomp filter failed in the isolated child")
