"""A target whose __main__ holds the evaluator test scope (tests/payload_cases.py).

    python cases_target.py

Prints "ready PID", then answers one command per stdin line with one JSON
line: "fingerprint" -> payload_cases.fingerprint() plus process facts.
Runs on CPython 3.8+ with the standard library only.
"""

import json
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from tests import payload_cases  # noqa: E402

globals().update(payload_cases.build_scope())


def control():
    for line in sys.stdin:
        if line.strip() == "fingerprint":
            out = payload_cases.fingerprint()
            out["os_threads"] = len(os.listdir("/proc/self/task"))
            out["fds"] = sorted(os.listdir("/proc/self/fd"))
            out["main_names"] = sorted(k for k in globals() if k != "line")
        else:
            out = {"error": line.strip()}
        sys.stdout.write(json.dumps(out, default=repr) + "\n")
        sys.stdout.flush()


threading.Thread(target=control, name="control", daemon=True).start()
print("ready %d" % os.getpid(), flush=True)
threading.Event().wait()
