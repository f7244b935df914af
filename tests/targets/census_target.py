"""A target for the census/memory tests (CPython 3.8+, stdlib only).

    python census_target.py [--objects N] [--hostile N] [--tracemalloc] [--control]

Holds N small `Record` instances (default 0), N `Hostile` instances whose
dunder methods record any call in CANARY (so do their metaclass's), and a
heartbeat thread that sleeps 1 ms in a loop and remembers the longest gap
between two beats (the longest time it could not get the GIL back).

With --control a daemon thread answers commands on stdin with one JSON line:
"state" -> {"canary", "beats", "max_gap", "records", "hostile"};
"reset" -> clears the heartbeat's counters (then answers like "state").
"""

import json
import os
import sys
import threading
import time

CANARY = []


class HostileMeta(type):
    """A metaclass whose every hook records: type names must come from C slots."""

    def __getattribute__(cls, name):
        CANARY.append("Meta.__getattribute__:" + name)
        return type.__getattribute__(cls, name)

    def __eq__(cls, other):
        CANARY.append("Meta.__eq__")
        return type.__eq__(cls, other)

    def __hash__(cls):
        CANARY.append("Meta.__hash__")
        return type.__hash__(cls)

    def __repr__(cls):
        CANARY.append("Meta.__repr__")
        return "HostileMeta"

    @property
    def __name__(cls):
        CANARY.append("Meta.__name__")
        return "Fake"

    @property
    def __module__(cls):
        CANARY.append("Meta.__module__")
        return "fake"


class Hostile(metaclass=HostileMeta):
    def __init__(self, i):
        self.i = i
        self.items = [i]

    def __sizeof__(self):
        CANARY.append("__sizeof__")
        return 1

    def __repr__(self):
        CANARY.append("__repr__")
        return "Hostile()"

    def __eq__(self, other):
        CANARY.append("__eq__")
        return False

    def __hash__(self):
        CANARY.append("__hash__")
        return 42

    def __getattr__(self, name):
        CANARY.append("__getattr__:" + name)
        return 1

    def __del__(self):
        CANARY.append("__del__")


class Record:
    __slots__ = ("i",)

    def __init__(self, i):
        self.i = i


class Heartbeat:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.beats = 0
            self.max_gap = 0.0

    def run(self):
        last = time.perf_counter()
        while True:
            time.sleep(0.001)
            now = time.perf_counter()
            with self.lock:
                self.beats += 1
                self.max_gap = max(self.max_gap, now - last)
            last = now


def _arg(name, default):
    if name in sys.argv:
        return int(sys.argv[sys.argv.index(name) + 1])
    return default


def main():
    api_token = "tok-SECRET-VALUE-123"  # a secret-looking local: dumps must redact it
    records = [Record(i) for i in range(_arg("--objects", 0))]
    hostile = [Hostile(i) for i in range(_arg("--hostile", 100))]
    del CANARY[:]  # creating them ran nothing hostile, but start clean anyway
    if "--tracemalloc" in sys.argv:
        import tracemalloc

        tracemalloc.start()
        tracemalloc_blocks = [bytearray(4096) for _ in range(64)]  # a visible site
    heartbeat = Heartbeat()
    threading.Thread(target=heartbeat.run, name="heartbeat", daemon=True).start()

    def control():
        for line in sys.stdin:
            cmd = line.strip()
            if cmd == "reset":
                heartbeat.reset()
            with heartbeat.lock:
                out = {"canary": list(CANARY), "beats": heartbeat.beats,
                       "max_gap": heartbeat.max_gap, "records": len(records),
                       "hostile": len(hostile)}
            sys.stdout.write(json.dumps(out) + "\n")
            sys.stdout.flush()

    if "--control" in sys.argv:
        threading.Thread(target=control, name="control", daemon=True).start()
    print("ready %d" % os.getpid(), flush=True)
    while True:
        time.sleep(3600)
    return api_token, tracemalloc_blocks  # keeps the locals alive (never reached)


if __name__ == "__main__":
    main()
