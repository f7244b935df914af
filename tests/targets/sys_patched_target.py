"""A target that replaced the sys attributes an agent might read.

    python sys_patched_target.py --control

Replaces sys._current_frames, sys._getframe, sys.getsizeof with Python
functions, sys.version_info with a tuple subclass and sys.implementation with
an object whose hooks record every use, then prints "ready PID". Control
commands (one JSON line each): "calls" -> {"calls": [...]} (must stay empty:
the inspector never calls what the target put there), "fingerprint" -> the
process facts (threads, fds, sys attribute types).
Runs on CPython 3.8+ with the standard library only.
"""

import json
import os
import sys
import threading

CALLS = []
_real_frames = sys._current_frames
_real_getframe = sys._getframe
_real_getsizeof = sys.getsizeof


def fake_current_frames():
    CALLS.append("_current_frames")
    return _real_frames()


def fake_getframe(depth=0):
    CALLS.append("_getframe")
    return _real_getframe(depth + 1)


def fake_getsizeof(obj, *default):
    CALLS.append("getsizeof")
    return _real_getsizeof(obj, *default)


class HookedVersion(tuple):
    def __getitem__(self, index):
        CALLS.append("version_info[]")
        return tuple.__getitem__(self, index)


class HookedNamespace:
    def __getattr__(self, name):
        CALLS.append("implementation." + name)
        return "cpython"


def state():
    return {"threads": len(os.listdir("/proc/self/task")),
            "fds": sorted(os.listdir("/proc/self/fd")),
            "types": [type(sys._current_frames).__name__, type(sys.version_info).__name__]}


def control():
    for line in sys.stdin:
        cmd = line.strip()
        out = {"calls": list(CALLS)} if cmd == "calls" else state()
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


threading.Thread(target=control, name="control", daemon=True).start()
sys._current_frames = fake_current_frames
sys._getframe = fake_getframe
sys.getsizeof = fake_getsizeof
sys.version_info = HookedVersion(sys.version_info)
sys.implementation = HookedNamespace()
the_answer = 42
print("ready %d" % os.getpid(), flush=True)
threading.Event().wait()
