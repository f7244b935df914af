"""A target for isolated (forked) queries: state a query could change, an
inherited socket it could write to, shared memory of every kind a forked
child would keep (anonymous, file-backed, memfd, SysV, a multiprocessing
lock and value), at-fork callbacks (Python's, and a native library's if
$ISOLATION_ATFORK_LIB names one) that leave marker files, and a heartbeat.

$ISOLATION_DIR: where the mapped file and the markers live.
Prints "ready PID"; answers "state" on stdin with one JSON line.
Runs on CPython 3.8+ with the standard library only.
"""

import ctypes
import hashlib
import json
import mmap
import multiprocessing
import os
import socket
import sys
import threading
import time

DIR = os.environ["ISOLATION_DIR"]
if os.environ.get("ISOLATION_ATFORK_LIB"):
    # its constructor registers pthread_atfork handlers writing DIR/native-*
    atfork_lib = ctypes.CDLL(os.environ["ISOLATION_ATFORK_LIB"])
    atfork_lib.register_markers(DIR.encode())

forked_child_ran = False


def _mark(name):
    with open(os.path.join(DIR, name), "w") as f:
        f.write("ran in %d" % os.getpid())


def _in_child():
    global forked_child_ran
    forked_child_ran = True
    _mark("py-after-in-child")


os.register_at_fork(before=lambda: _mark("py-before"),
                    after_in_parent=lambda: _mark("py-after-in-parent"),
                    after_in_child=_in_child)

PATTERN = bytes(range(256)) * 16  # 4096 bytes
shm = mmap.mmap(-1, 4096)  # MAP_SHARED | MAP_ANONYMOUS
shm.write(PATTERN)
with open(os.path.join(DIR, "mapped.bin"), "wb") as f:
    f.write(PATTERN)
mapped_fd = os.open(os.path.join(DIR, "mapped.bin"), os.O_RDWR)
fmap = mmap.mmap(mapped_fd, 4096)  # MAP_SHARED on a file: writes reach the disk
memfd = os.memfd_create("isolation-target")
os.ftruncate(memfd, 4096)
mfd_map = mmap.mmap(memfd, 4096)
mfd_map.write(PATTERN)
mp_lock = multiprocessing.Lock()  # a semaphore in shared memory
mp_value = multiprocessing.Value("i", 7)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.shmat.restype = ctypes.c_void_p
_shmid = _libc.shmget(0, 4096, 0o600)  # IPC_PRIVATE
sysv_addr = _libc.shmat(_shmid, None, 0)
_libc.shmctl(_shmid, 0, None)  # IPC_RMID: gone when we exit
ctypes.memmove(sysv_addr, PATTERN, 4096)
shm_addr = ctypes.addressof(ctypes.c_char.from_buffer(shm))


finalizer_ran = []  # pids of the processes where a _Finalized object was finalized


class _Finalized:
    def __del__(self):
        finalizer_ran.append(os.getpid())


_thread_data = threading.local()


def _holder():
    """Holds objects only through its thread state: a thread-local and the
    exception being handled. A fork's child drops dead threads' states."""
    _thread_data.value = _Finalized()
    try:
        raise ValueError(_Finalized())
    except ValueError:
        threading.Event().wait()


def _digest(data):
    return hashlib.sha256(bytes(data)).hexdigest()

cache = {"k%d" % i: i for i in range(50)}
orders = [{"id": i} for i in range(10)]


def _gen():
    yield 1
    yield 2


gen = _gen()
peer, conn = socket.socketpair()  # `conn` is the target's; a query must not write to it
received = []
heartbeat = {"beats": 0, "max_gap": 0.0}


def _read_peer():
    while True:
        data = peer.recv(4096)
        if not data:
            return
        received.append(len(data))


def _beat():
    last = time.monotonic()
    while True:
        time.sleep(0.001)
        now = time.monotonic()
        heartbeat["max_gap"] = max(heartbeat["max_gap"], now - last)
        heartbeat["beats"] += 1
        last = now


def state():
    frame = gen.gi_frame
    return {
        "cache": sorted(cache.items()),
        "orders": orders,
        "gen_lasti": frame.f_lasti if frame is not None else None,
        "peer_received": list(received),
        "conn_open": conn.fileno() >= 0,
        "os_threads": len(os.listdir("/proc/self/task")),
        "fds": sorted(os.listdir("/proc/self/fd")),
        "main_names": sorted(k for k in globals() if k != "line"),
        "shm": _digest(shm[:]),
        "file_mapping": _digest(fmap[:]),
        "file_on_disk": _digest(_read(os.path.join(DIR, "mapped.bin"))),
        "memfd": _digest(mfd_map[:]),
        "sysv": _digest(ctypes.string_at(sysv_addr, 4096)),
        "mp_value": mp_value.value,
        "mp_lock_free": _lock_free(),
        "markers": sorted(n for n in os.listdir(DIR) if n != "mapped.bin"),
        "forked_child_ran": forked_child_ran,
        "finalizer_ran": list(finalizer_ran),
    }


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _lock_free():
    if not mp_lock.acquire(False):
        return False
    mp_lock.release()
    return True


def control():
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "state":
            out = state()
        elif cmd == "heartbeat":
            out = dict(heartbeat)
            heartbeat["max_gap"] = 0.0
        else:
            out = {"error": cmd}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


for fn, name in ((_read_peer, "peer"), (_beat, "heartbeat"), (control, "control"),
                 (_holder, "holder")):
    threading.Thread(target=fn, name=name, daemon=True).start()
print("ready %d" % os.getpid(), flush=True)
threading.Event().wait()
