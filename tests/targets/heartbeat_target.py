"""A target that checks its own health while injectors borrow its threads.

    python heartbeat_target.py idle|busy|churn [--control]

Every thread loops on one kind of blocking call and records anything
unexpected: an exception (e.g. OSError 514, a leaked ERESTARTNOHAND), a
floating-point result that differs from the reference (FPU state not put
back). "idle": the main thread sleeps;
"busy": the main thread computes without pause (no parked main thread);
"churn": threads are started and end all the time (a chosen thread may exit
before it is borrowed). On stdin, "health" answers one JSON line:
{"errors": [...], "beats": {thread: count}}.
"""

import json
import math
import os
import select
import socket
import sys
import threading
import time

ERRORS = []
BEATS = {}
REFERENCE = sum(math.sin(i * 0.001) * math.sqrt(i + 0.5) for i in range(2000))


def beat(name):
    BEATS[name] = BEATS.get(name, 0) + 1


def guarded(name, step):
    def run():
        while True:
            try:
                step()
                beat(name)
            except BaseException as e:  # recorded for the test, never fatal
                ERRORS.append("%s: %r" % (name, e))
                time.sleep(0.01)
    return run


def sleeper():
    time.sleep(0.003)


EVENT = threading.Event()
PAIR = socket.socketpair()


def waiter():
    EVENT.wait(0.004)


def reader():
    select.select([PAIR[0]], [], [], 0.005)


def fpu():
    value = sum(math.sin(i * 0.001) * math.sqrt(i + 0.5) for i in range(2000))
    if value != REFERENCE:
        ERRORS.append("fpu: %r != %r" % (value, REFERENCE))


def churn():
    t = threading.Thread(target=time.sleep, args=(0.001,))
    t.start()
    t.join()


def control():
    for line in sys.stdin:
        if line.strip() == "health":
            print(json.dumps({"errors": ERRORS[:20], "beats": dict(BEATS)}), flush=True)


def main():
    mode = sys.argv[1]
    steps = {"sleeper": sleeper, "waiter": waiter, "reader": reader, "fpu": fpu}
    if mode == "churn":
        steps["churn"] = churn
    for name, step in steps.items():
        threading.Thread(target=guarded(name, step), name=name, daemon=True).start()
    if "--control" in sys.argv:
        threading.Thread(target=control, name="control", daemon=True).start()
    print("ready %d" % os.getpid(), flush=True)
    if mode == "busy":
        guarded("main", fpu)()
    guarded("main", sleeper)()


if __name__ == "__main__":
    main()
