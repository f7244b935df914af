"""The benchmark target: a small CPython program driven through stdin/stdout.

Runs unchanged on CPython 3.8-3.13 (stdlib only; no f-string `=`, no walrus).
Start it as ``python target.py [--heartbeat | --heartbeats N] [--threads N]
[--objects N] [--work]``; it prints ``ready`` and then answers one line per
command read from stdin (the main thread is parked in ``read``, like an idle
service):

    reset            forget the heartbeats' gaps         -> ok
    gap              largest gap since reset, ms (any heartbeat) -> 12.3
    gap_by_thread    largest gap of each heartbeat: "tid:ms tid:ms"
    gaps             every gap >= GAP_EVENT_MS since reset: "end_monotonic:ms:tid ..."
    ops SECONDS      CPU-work operations per second over SECONDS (needs --work)
    quit             exit

A heartbeat thread sleeps 1 ms in a loop and records the largest interval
between two wake-ups: any time the process was stopped (ptrace) or another
thread held the GIL shows up as a gap. With several heartbeats each keeps its
own (an injector that borrows one thread is judged by the others). Times are
CLOCK_MONOTONIC, comparable with the bench process's `time.monotonic()`.
"""
import sys
import threading
import time

GAP_EVENT_MS = 4.0  # gaps at least this long are also kept as events (at most MAX_EVENTS)
MAX_EVENTS = 1000


class Heartbeat:
    def __init__(self):
        self.max_gap = 0.0
        self.events = []
        self.lock = threading.Lock()
        self.tid = 0

    def reset(self):
        with self.lock:
            self.max_gap = 0.0
            self.events = []

    def run(self):
        self.tid = threading.get_native_id()
        last = time.monotonic()
        sleep = time.sleep
        clock = time.monotonic
        while True:
            sleep(0.001)
            now = clock()
            gap = now - last
            last = now
            if gap > self.max_gap:
                self.max_gap = gap
            if gap * 1000.0 >= GAP_EVENT_MS and len(self.events) < MAX_EVENTS:
                self.events.append((now, gap))


class Work:
    """Fixed CPU work in a thread: a small pure-Python loop, counted."""

    def __init__(self):
        self.ops = 0

    def run(self):
        while True:
            total = 0
            for i in range(200):
                total += i * i % 7
            self.ops += 1


class Node:
    __slots__ = ("key", "value")

    def __init__(self, key, value):
        self.key = key
        self.value = value


def build_objects(count):
    """`count` objects the garbage collector tracks: half small instances,
    half one-item lists, held by one list (`data`)."""
    out = []
    half = count // 2
    for i in range(half):
        out.append(Node(i, None))
    for i in range(count - half):
        out.append([i])
    return out


def sleeper(depth, event):
    if depth:
        return sleeper(depth - 1, event)
    event.wait()


def main(argv):
    beats = int(argv[argv.index("--heartbeats") + 1]) if "--heartbeats" in argv else 0
    if "--heartbeat" in argv:
        beats = max(beats, 1)
    heartbeats = [Heartbeat() for _ in range(beats)]
    work = Work() if "--work" in argv else None
    threads = int(argv[argv.index("--threads") + 1]) if "--threads" in argv else 0
    objects = int(argv[argv.index("--objects") + 1]) if "--objects" in argv else 0

    g = globals()
    g["data"] = build_objects(objects) if objects else []
    g["items_10k"] = list(range(10000))
    g["config"] = {"name": "bench", "port": 8080, "workers": 4}
    if objects:
        import gc

        gc.collect()
    stop = threading.Event()
    for i in range(threads):
        threading.Thread(target=sleeper, args=(i % 8, stop), name="sleeper-%d" % i,
                         daemon=True).start()
    for i, beat in enumerate(heartbeats):
        threading.Thread(target=beat.run, name="heartbeat-%d" % i, daemon=True).start()
    while any(not beat.tid for beat in heartbeats):
        time.sleep(0.001)
    if work is not None:
        threading.Thread(target=work.run, name="work", daemon=True).start()
    g["heartbeats"] = heartbeats
    g["work"] = work

    out = sys.stdout
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        words = line.split()
        cmd = words[0] if words else ""
        if cmd == "reset" and heartbeats:
            for beat in heartbeats:
                beat.reset()
            reply = "ok"
        elif cmd == "gap" and heartbeats:
            reply = "%.3f" % (max(beat.max_gap for beat in heartbeats) * 1000.0)
        elif cmd == "gap_by_thread" and heartbeats:
            reply = " ".join("%d:%.3f" % (beat.tid, beat.max_gap * 1000.0)
                             for beat in heartbeats)
        elif cmd == "gaps" and heartbeats:
            reply = " ".join("%.6f:%.3f:%d" % (t, g * 1000.0, beat.tid) for beat in heartbeats
                             for t, g in list(beat.events))
        elif cmd == "ops" and work is not None:
            seconds = float(words[1])
            before, t0 = work.ops, time.monotonic()
            time.sleep(seconds)
            after, t1 = work.ops, time.monotonic()
            reply = "%.3f" % ((after - before) / (t1 - t0))
        elif cmd == "quit":
            break
        else:
            reply = "error unknown command %r" % line.strip()
        out.write(reply + "\n")
        out.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
