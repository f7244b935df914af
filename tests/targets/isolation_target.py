"""A target for isolated (forked) queries: state a query could change, an
inherited socket it could write to, and a heartbeat to see stalls.

Prints "ready PID"; answers "state" on stdin with one JSON line.
Runs on CPython 3.8+ with the standard library only.
"""

import json
import os
import socket
import sys
import threading
import time

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
    }


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


for fn, name in ((_read_peer, "peer"), (_beat, "heartbeat"), (control, "control")):
    threading.Thread(target=fn, name=name, daemon=True).start()
print("ready %d" % os.getpid(), flush=True)
threading.Event().wait()
