"""A target that keeps making cyclic garbage whose __del__ and weakref
callbacks record the thread they run on.

    python finalizer_target.py [--gc-off] --control

Prints "ready PID". Control commands (one JSON line each):
"counts" -> {"foreign": finalizer runs on a thread that is not the target's
own, "total": all runs, "gc_enabled": gc.isenabled()}; "gc_off" disables
automatic collection (the target's own choice).
Runs on CPython 3.8+ with the standard library only.
"""

import _thread
import gc
import json
import os
import sys
import threading
import time
import weakref

OWN = set()
COUNTS = {"foreign": 0, "total": 0}
REFS = []


def _record():
    COUNTS["total"] += 1
    if _thread.get_ident() not in OWN:
        COUNTS["foreign"] += 1


class Cyclic:
    def __init__(self):
        self.me = self
        self.payload = [object() for _ in range(20)]

    def __del__(self):
        _record()


def produce():
    OWN.add(_thread.get_ident())
    while True:
        for _ in range(50):
            obj = Cyclic()
            REFS.append(weakref.ref(obj, lambda _r: _record()))
            del obj
        del REFS[:-1000]
        time.sleep(0.002)


def control():
    OWN.add(_thread.get_ident())
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "counts":
            out = dict(COUNTS, gc_enabled=gc.isenabled())
        elif cmd == "gc_off":
            gc.disable()
            out = {"gc_enabled": gc.isenabled()}
        else:
            out = {"error": cmd}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


OWN.add(_thread.get_ident())
if "--gc-off" in sys.argv:
    gc.disable()
threading.Thread(target=produce, name="producer", daemon=True).start()
threading.Thread(target=control, name="control", daemon=True).start()
print("ready %d" % os.getpid(), flush=True)
threading.Event().wait()
