"""The isolated fork's machine code and seccomp filter (payloads/isolate.py).

- The fork routine's bytes are what GNU as makes of its source, FORK_STUB_ASM.
- The seccomp program, run by an independent classic-BPF interpreter written
  here, allows and refuses exactly the policy tabulated here.
- Both run for real in scratch processes (never a target) on every
  interpreter: the child's raw system calls get the answers the policy says,
  shared memory is read-only there, and no at-fork callback runs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from payloads import isolate
from tests.pythons import interpreters

ROOT = Path(__file__).resolve().parents[2]
_ALL = list(interpreters())


# --- the fork routine: source and bytes agree ---------------------------------

def test_fork_routine_bytes_are_its_assembled_source(tmp_path: Path) -> None:
    as_, objcopy = shutil.which("as"), shutil.which("objcopy")
    if as_ is None or objcopy is None:
        pytest.skip("binutils (as, objcopy) not installed")
    (tmp_path / "stub.s").write_text(isolate.FORK_STUB_ASM)
    subprocess.run([as_, "--64", "-o", str(tmp_path / "stub.o"), str(tmp_path / "stub.s")],
                   check=True, capture_output=True)
    subprocess.run([objcopy, "-O", "binary", "-j", ".text", str(tmp_path / "stub.o"),
                    str(tmp_path / "stub.bin")], check=True, capture_output=True)
    assert (tmp_path / "stub.bin").read_bytes() == isolate._FORK_STUB
    assert len(isolate._FORK_STUB) < 4096  # it is copied into one page


def test_every_child_exit_code_of_the_routine_is_named() -> None:
    codes = {int(line.split()[-1]) for line in isolate.FORK_STUB_ASM.splitlines()
             if line.strip().startswith("mov edi, 12")}
    assert codes == set(isolate._CHILD_EXIT_CODES)


# --- the seccomp program: an independent interpreter --------------------------

KEEP = 7
ALLOW, EPERM, KILL = "allow", "EPERM", "kill"
X86_64 = 0xC000003E


def run_bpf(prog: list[tuple[int, int, int, int]], nr: int, args: tuple[int, ...] = (),
            arch: int = X86_64) -> str:
    """Classic BPF as the kernel runs a seccomp filter, decoded from the
    opcode bit fields (class, size, mode, op, source) - only what a seccomp
    filter may use; anything else fails the test."""
    full = list(args) + [0] * (6 - len(args))
    data = nr.to_bytes(4, "little") + arch.to_bytes(4, "little") + bytes(8)
    data += b"".join((a & (2**64 - 1)).to_bytes(8, "little") for a in full)
    acc, pc = 0, 0
    while True:
        assert 0 <= pc < len(prog), "fell off the program"
        code, jt, jf, k = prog[pc]
        cls = code & 0x07
        if cls == 0x00:  # BPF_LD
            assert code & 0x18 == 0x00 and code & 0xE0 == 0x20, "only ld w abs"
            assert k % 4 == 0 and k + 4 <= len(data)
            acc = int.from_bytes(data[k:k + 4], "little")
        elif cls == 0x04:  # BPF_ALU, constant operand
            assert code & 0x08 == 0 and code & 0xF0 == 0x50, "only and k"
            acc &= k
        elif cls == 0x05:  # BPF_JMP, constant operand
            assert code & 0x08 == 0
            op = code & 0xF0
            if op == 0x10:
                taken = acc == k
            elif op == 0x30:
                taken = acc >= k
            elif op == 0x40:
                taken = bool(acc & k)
            else:
                raise AssertionError("unexpected jump %#x" % code)
            pc += 1 + (jt if taken else jf)
            continue
        elif cls == 0x06:  # BPF_RET k
            action = k & 0xFFFF0000
            if action == 0x7FFF0000:
                return ALLOW
            if action == 0x00050000:
                assert k & 0xFFFF == 1  # errno EPERM
                return EPERM
            if k == 0x80000000:
                return KILL
            raise AssertionError("unexpected return %#x" % k)
        else:
            raise AssertionError("unexpected opcode %#x" % code)
        pc += 1


# (name, nr, args, expected): the policy, written out independently.
POLICY = [
    ("read", 0, (), ALLOW), ("close", 3, (), ALLOW), ("munmap", 11, (), ALLOW),
    ("brk", 12, (), ALLOW), ("mremap", 25, (), ALLOW), ("exit_group", 231, (), ALLOW),
    ("getrandom", 318, (), ALLOW), ("clock_gettime", 228, (), ALLOW),
    ("write result", 1, (KEEP,), ALLOW), ("write stdout", 1, (1,), EPERM),
    ("write other", 1, (KEEP + 1,), EPERM), ("sendto result", 44, (KEEP,), ALLOW),
    ("sendto other", 44, (3,), EPERM), ("sendmsg result", 46, (KEEP,), EPERM),
    ("mmap private anon", 9, (0, 4096, 3, 0x22), ALLOW),
    ("mmap private", 9, (0, 4096, 1, 0x02), ALLOW),
    ("mmap shared", 9, (0, 4096, 1, 0x01), EPERM),
    ("mmap shared anon", 9, (0, 4096, 3, 0x21), EPERM),
    ("mmap shared validate", 9, (0, 4096, 1, 0x03), EPERM),
    ("mmap droppable", 9, (0, 4096, 3, 0x08), EPERM),
    ("mprotect read", 10, (0, 4096, 1), ALLOW), ("mprotect none", 10, (0, 4096, 0), ALLOW),
    ("mprotect rx", 10, (0, 4096, 5), ALLOW), ("mprotect rw", 10, (0, 4096, 3), EPERM),
    ("mprotect w", 10, (0, 4096, 2), EPERM), ("mprotect rwx", 10, (0, 4096, 7), EPERM),
    ("madvise dontneed", 28, (0, 4096, 4), ALLOW), ("madvise normal", 28, (0, 4096, 0), ALLOW),
    ("madvise willneed", 28, (0, 4096, 3), ALLOW), ("madvise free", 28, (0, 4096, 8), ALLOW),
    ("madvise hugepage", 28, (0, 4096, 14), ALLOW),
    ("madvise remove", 28, (0, 4096, 9), EPERM), ("madvise hwpoison", 28, (0, 4096, 100), EPERM),
    ("madvise soft offline", 28, (0, 4096, 101), EPERM),
    ("madvise pageout", 28, (0, 4096, 21), EPERM), ("madvise cold", 28, (0, 4096, 20), EPERM),
    ("madvise mergeable", 28, (0, 4096, 12), EPERM),
    ("futex wait private", 202, (0, 0x80), ALLOW), ("futex wake private", 202, (0, 0x81), ALLOW),
    ("futex wait bitset private realtime", 202, (0, 0x189), ALLOW),
    ("futex wake bitset private", 202, (0, 0x8A), ALLOW),
    ("futex wait shared", 202, (0, 0x00), EPERM), ("futex wake shared", 202, (0, 0x01), EPERM),
    ("futex wake_op private", 202, (0, 0x85), EPERM),
    ("futex lock_pi private", 202, (0, 0x86), EPERM),
    ("futex cmp_requeue private", 202, (0, 0x84), EPERM),
    ("futex bad high bits", 202, (0, 0x10081), EPERM),
    ("select as a sleep", 23, (0,), ALLOW), ("select on descriptors", 23, (KEEP + 1,), EPERM),
    ("pselect6 as a sleep", 270, (0,), ALLOW), ("pselect6 on descriptors", 270, (1,), EPERM),
]
DENIED = {
    "open": 2, "openat": 257, "openat2": 437, "kill": 62, "tkill": 200, "tgkill": 234,
    "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297, "pidfd_send_signal": 424,
    "pidfd_open": 434, "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311,
    "shmget": 29, "shmat": 30, "shmctl": 31, "msync": 26, "pkey_mprotect": 329,
    "remap_file_pages": 216, "clone": 56, "fork": 57, "vfork": 58, "clone3": 435,
    "execve": 59, "memfd_create": 319, "userfaultfd": 323, "io_uring_setup": 425,
    "mbind": 237, "migrate_pages": 256, "move_pages": 279, "process_madvise": 440,
    "futex_waitv": 449, "set_robust_list": 273, "prctl": 157, "seccomp": 317, "ioctl": 16,
    "fcntl": 72, "ftruncate": 77, "socket": 41, "connect": 42, "mlock": 149,
    "setrlimit": 160, "prlimit64": 302, "unlink": 87, "rename": 82, "sendmsg": 46,
}


@pytest.mark.parametrize(("name", "nr", "args", "expected"), POLICY,
                         ids=[p[0] for p in POLICY])
def test_filter_decides_as_the_policy_says(name: str, nr: int, args: tuple[int, ...],
                                           expected: str) -> None:
    assert run_bpf(isolate.seccomp_program(KEEP), nr, args) == expected


def test_filter_refuses_every_other_channel() -> None:
    prog = isolate.seccomp_program(KEEP)
    wrong = {name: run_bpf(prog, nr, (KEEP, 0, 3)) for name, nr in DENIED.items()
             if run_bpf(prog, nr, (KEEP, 0, 3)) != EPERM}
    assert wrong == {}


def test_filter_kills_other_abis_and_architectures() -> None:
    prog = isolate.seccomp_program(KEEP)
    assert run_bpf(prog, 0x40000000 | 39) == KILL  # x32 getpid
    assert run_bpf(prog, 0, arch=0x40000003) == KILL  # i386
    assert run_bpf(prog, 39, arch=0xC00000B7) == KILL  # aarch64


def test_filter_allows_nothing_unlisted() -> None:
    """Every syscall number the kernel knows of, at any argument, is refused
    unless it is one of the allowed or argument-checked ones."""
    prog = isolate.seccomp_program(KEEP)
    checked = {1, 9, 10, 23, 28, 44, 202, 270}
    allowed = {nr for nr in range(600) if run_bpf(prog, nr, (KEEP, 0x81, 1, 0x22)) == ALLOW
               or run_bpf(prog, nr, (0, 0x81, 1, 0x22)) == ALLOW}
    assert allowed == set(isolate._ALLOWED_SYSCALLS) | checked


# --- both, for real, in scratch processes -------------------------------------

SCRATCH = r"""
import ctypes, json, mmap, os, sys, threading, time
sys.path.insert(0, sys.argv[1])
from payloads import isolate
from payloads.errors import QueryError

marks = []
os.register_at_fork(before=lambda: marks.append("before"),
                    after_in_parent=lambda: marks.append("after_in_parent"),
                    after_in_child=lambda: marks.append("after_in_child"))
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
shm = mmap.mmap(-1, 4096)
shm[:4] = b"real"
shm_addr = ctypes.addressof(ctypes.c_char.from_buffer(shm))
private = mmap.mmap(-1, 4096, flags=mmap.MAP_PRIVATE)
priv_addr = ctypes.addressof(ctypes.c_char.from_buffer(private))
ppid = os.getpid()
L = ctypes.c_long

def errno_of(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(L(nr), *[L(a) for a in args])
    return ctypes.get_errno() if r == -1 else 0

def probes():
    path = ctypes.c_char_p(b"/proc/self/mem")
    return {
        "mmap shared": errno_of(9, 0, 4096, 3, 0x21, -1, 0),
        "mmap private": errno_of(9, 0, 4096, 3, 0x22, -1, 0),
        "mprotect shm rw": errno_of(10, shm_addr, 4096, 3),
        "mprotect private rw": errno_of(10, priv_addr, 4096, 3),
        "mprotect private r": errno_of(10, priv_addr, 4096, 1),
        "madvise shm remove": errno_of(28, shm_addr, 4096, 9),
        "madvise shm dontneed": errno_of(28, shm_addr, 4096, 4),
        "madvise hwpoison": errno_of(28, priv_addr, 4096, 100),
        "futex shm wake shared": errno_of(202, shm_addr, 1, 1, 0, 0, 0),
        "futex shm wake private": errno_of(202, shm_addr, 0x81, 1, 0, 0, 0),
        "kill parent": errno_of(62, ppid, 0),
        "tgkill parent": errno_of(234, ppid, ppid, 0),
        "open mem": errno_of(257, -100, ctypes.cast(path, ctypes.c_void_p).value, 2, 0),
        "process_vm_writev": errno_of(311, ppid, 0, 0, 0, 0, 0),
        "ptrace attach": errno_of(101, 16, ppid, 0, 0),
        "shmget": errno_of(29, 0, 4096, 0o600),
        "msync shm": errno_of(26, shm_addr, 4096, 4),
        "fork": errno_of(57),
        "write stdout": errno_of(1, 1, shm_addr, 1),
        "prctl": errno_of(157, 4, 1, 0, 0, 0),
    }

import signal
out = {}
mask_before = sorted(signal.pthread_sigmask(signal.SIG_BLOCK, []))
out["probes"] = isolate.run(probes, timeout=2)
out["probes"].pop("isolated", None)
out["child mask"] = isolate.run(
    lambda: {"m": sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))},
    timeout=2)["m"]
out["parent mask unchanged"] = sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])) == mask_before
import gc
out["gc enabled in the child"] = isolate.run(lambda: {"on": gc.isenabled()}, timeout=2)["on"]
out["gc enabled in the parent"] = gc.isenabled()
seen = []

done = threading.Event()

def watch():  # the child's oom_score_adj, read from outside while it runs
    while not done.is_set():
        for tid in os.listdir("/proc/self/task"):
            for pid in open("/proc/self/task/%s/children" % tid).read().split():
                try:
                    nice = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()[16]
                    seen.append((open("/proc/%s/oom_score_adj" % pid).read().strip(), nice))
                except (OSError, IndexError):
                    pass
        time.sleep(0.01)

watcher = threading.Thread(target=watch, daemon=True)
watcher.start()
def busy():  # time.sleep: pselect6() with no descriptor on 3.8-3.10
    time.sleep(0.5)
    return {}

isolate.run(busy, timeout=2)
done.set()
watcher.join()
out["child oom_score_adj, nice"] = seen[-1:]

def write_shared():
    shm[:4] = b"fake"
    return {}

def x32_call():
    libc.syscall(L(0x40000000 | 39))
    return {}

for name, job in (("write shared", write_shared), ("x32", x32_call)):
    try:
        isolate.run(job, timeout=2)
        out[name] = "answered"
    except QueryError as e:
        out[name] = e.message
isolate.MAPS_BUFFER_BYTES = 64
try:
    isolate.run(dict, timeout=2)
    out["small buffer"] = "answered"
except QueryError as e:
    out["small buffer"] = e.message
isolate.MAPS_BUFFER_BYTES = 32 * 1024 ** 2
import resource  # a target with low hard limits: the child's stay at or under them
resource.setrlimit(resource.RLIMIT_AS, (3 * 1024 ** 3, 3 * 1024 ** 3))
resource.setrlimit(resource.RLIMIT_CPU, (100, 100))
out["low hard limits"] = sorted(isolate.run(lambda: {"ok": 1}, timeout=2))
out["shm"] = shm[:4].decode()
out["marks"] = marks
out["children"] = open("/proc/self/task/%d/children" % ppid).read()
print(json.dumps(out))
"""

EXPECTED_ERRNO = {
    "mmap shared": 1, "mmap private": 0, "mprotect shm rw": 1, "mprotect private rw": 1,
    "mprotect private r": 0, "madvise shm remove": 1, "madvise shm dontneed": 0,
    "madvise hwpoison": 1, "futex shm wake shared": 1, "futex shm wake private": 0,
    "kill parent": 1, "tgkill parent": 1, "open mem": 1, "process_vm_writev": 1,
    "ptrace attach": 1, "shmget": 1, "msync shm": 1, "fork": 1, "write stdout": 1, "prctl": 1,
}


@pytest.mark.parametrize("interp", _ALL, ids=["py" + i.label for i in _ALL])
def test_routine_and_filter_in_a_scratch_process(interp) -> None:  # type: ignore[no-untyped-def]
    if interp.path is None:
        pytest.skip(interp.missing_reason)
    proc = subprocess.run([interp.path, "-c", SCRATCH, str(ROOT)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["probes"] == EXPECTED_ERRNO
    assert "SIGSEGV" in out["write shared"]
    assert "SIGSYS" in out["x32"]
    assert "could not read its memory map" in out["small buffer"]
    assert out["shm"] == "real"
    assert out["low hard limits"] == ["isolated", "ok"]
    assert out["marks"] == []  # no at-fork callback ran, in the parent or the child
    # the child blocks every signal (all but SIGKILL and SIGSTOP, which cannot be)
    assert set(out["child mask"]) == set(range(1, 65)) - {9, 19}
    assert out["parent mask unchanged"]
    assert out["gc enabled in the child"] is False and out["gc enabled in the parent"] is True
    # the OOM killer takes the child first; the target's threads run first
    assert out["child oom_score_adj, nice"] == [["1000", "19"]]
    assert out["children"] == ""


TAMPERED = r"""
import _imp, ctypes, gc, os, posix, sys, threading, time  # (imports need the real _imp)
sys.path.insert(0, sys.argv[1])
from payloads import census, isolate, static
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
called = []
time.monotonic = lambda: called.append("monotonic") or 0.0  # freezegun does this
time.sleep = lambda s: called.append("sleep")
_imp.acquire_lock = lambda: called.append("acquire_lock")
gc.get_referrers = lambda *a: called.append("get_referrers") or []
gc.disable = lambda: called.append("disable")
posix.register_at_fork = os.register_at_fork = lambda **k: called.append("register_at_fork")
isolate.run(dict, timeout=2)
print(called)
"""


@pytest.mark.parametrize("interp", _ALL, ids=["py" + i.label for i in _ALL])
def test_replaced_gc_posix_time_and_imp_functions_are_not_called(interp) -> None:  # type: ignore[no-untyped-def]
    if interp.path is None:
        pytest.skip(interp.missing_reason)
    proc = subprocess.run([interp.path, "-c", TAMPERED, str(ROOT)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


DRIP = r"""
import os, sys, time
sys.path.insert(0, sys.argv[1])
from payloads import isolate
from payloads.errors import QueryError

def drip():  # a reply header promising 100 bytes, then one byte every 0.2 s
    for fd in range(3, 64):
        try:
            os.write(fd, b"\0\0\0\x64")
            break
        except OSError:
            pass
    while True:
        time.sleep(0.2)
        os.write(fd, b" ")

started = time.monotonic()
try:
    isolate.run(drip, timeout=1)
except QueryError as e:
    print("%.1f %s" % (time.monotonic() - started, e.message))
"""


@pytest.mark.parametrize("interp", [i for i in _ALL if i.label in ("3.13", "system")],
                         ids=lambda i: "py" + i.label)
def test_a_dripping_child_is_cut_off_at_the_deadline(interp) -> None:  # type: ignore[no-untyped-def]
    """(time.sleep is clock_nanosleep from 3.11 on: the child uses no CPU, so
    only the parent's deadline ends it.)"""
    if interp.path is None:
        pytest.skip(interp.missing_reason)
    proc = subprocess.run([interp.path, "-c", DRIP, str(ROOT)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    seconds, message = proc.stdout.split(" ", 1)
    assert float(seconds) < 4.0  # timeout 1 s + the 2 s margin
    assert "SIGKILL" in message


FROZEN = r"""
import gc, os, sys
sys.path.insert(0, sys.argv[1])
from payloads import isolate
from payloads.errors import DeniedError
os.register_at_fork(after_in_child=lambda: None)
gc.freeze()  # a pre-fork server's habit: the at-fork list is frozen with the rest
try:
    isolate.run(dict, timeout=2)
    print("answered")
except DeniedError as e:
    print("refused:", e.message)
print(sorted(isolate.run(dict, timeout=2, allow_calls=True)))
"""


@pytest.mark.parametrize("interp", _ALL, ids=["py" + i.label for i in _ALL])
def test_a_frozen_at_fork_list_is_refused_without_allow_calls(interp) -> None:  # type: ignore[no-untyped-def]
    if interp.path is None:
        pytest.skip(interp.missing_reason)
    proc = subprocess.run([interp.path, "-c", FROZEN, str(ROOT)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    refused, answered = proc.stdout.splitlines()
    assert refused.startswith("refused: ") and "gc.freeze" in refused
    assert answered == "['isolated']"
