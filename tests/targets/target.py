"""A test target for the integration tests (runs on CPython 3.8+, stdlib only).

    python target.py MODE [--control]

MODE is what the main thread does: sleep | busy | idle (Event().wait()) |
pause (signal.pause()) | asyncio (idle loop) | gilhog (another thread holds
the GIL in a long C call while main sleeps) | threads (20 extra parked
threads) | deep (a 200-frame recursion, then sleep) | secrets (sleeps in
login(user, password): a secret-looking frame local, from $TARGET_PASSWORD).

With --control a daemon thread reads commands from stdin and answers on
stdout with one JSON line: "state" -> a fingerprint of what an agent must
leave unchanged (threads, fds, __main__ names, sys.path, hooks, canary);
"fork PATH" -> fork a child that reports what it inherited to PATH;
"blocks" -> sys.getallocatedblocks() after a full collection.
The canary objects record any call of their dunder methods, properties or
__getattr__: the sandbox must never run them.
"""

import json
import os
import signal
import sys
import threading
import time

CANARY = []


class Canary:
    """Every hook appends to CANARY: a query must never trigger one."""

    def __init__(self, name):
        self.name = name
        self.items = [1, 2, 3]
        self.password = "hunter2-canary"

    def __repr__(self):
        CANARY.append("__repr__")
        return "Canary()"

    def __str__(self):
        CANARY.append("__str__")
        return "Canary"

    def __eq__(self, other):
        CANARY.append("__eq__")
        return False

    def __hash__(self):
        CANARY.append("__hash__")
        return 42

    def __len__(self):
        CANARY.append("__len__")
        return 3

    def __iter__(self):
        CANARY.append("__iter__")
        return iter(self.items)

    def __bool__(self):
        CANARY.append("__bool__")
        return True

    def __format__(self, spec):
        CANARY.append("__format__")
        return "Canary"

    def __index__(self):
        CANARY.append("__index__")
        return 1

    def __lt__(self, other):
        CANARY.append("__lt__")
        return True

    def __getattr__(self, name):
        CANARY.append("__getattr__:" + name)
        return 1

    @property
    def prop(self):
        CANARY.append("prop")
        return 1


class Config:
    def __init__(self):
        self.timeout = 30
        self.host = "db.internal"
        self.api_key = "sk-test-secret"


canary = Canary("c")
config = Config()
cache = {"k%d" % i: i for i in range(100)}
cache["canary"] = canary
colliding = {canary: "canary-key"}  # canary hashes to 42: d[42] must not run its __eq__
colliding[42] = "int-key"
orders = [{"id": i, "qty": i % 4 + 1} for i in range(10)]
del CANARY[:]  # building `colliding` ran __hash__/__eq__; start clean
marker_file = os.environ.get("TARGET_MARKER_FILE")


def _hooks():
    return {
        "trace": repr(sys.gettrace()),
        "profile": repr(sys.getprofile()),
        "signals": {str(s): repr(signal.getsignal(s))
                    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGCHLD)},
        "stdout": id(sys.stdout),
        "stderr": id(sys.stderr),
        "excepthook": repr(sys.excepthook),
    }


def fingerprint():
    main = sys.modules["__main__"]
    return {
        "threads": sorted(t.name for t in threading.enumerate()),
        "os_threads": len(os.listdir("/proc/self/task")),
        "fds": sorted(os.listdir("/proc/self/fd")),
        "main_names": sorted(vars(main)),
        "sys_path": list(sys.path),
        "canary": list(CANARY),
        "cache_len": len(cache),
        "config": dict(vars(config)),
        "orders": orders,
        "hooks": _hooks(),
        "last_exc": [hasattr(sys, n) for n in ("last_type", "last_value", "last_traceback")],
        "modules_named_inspector": sorted(m for m in sys.modules if "inspector" in m),
    }


def fork_child(report_path):
    """Fork from this (control) thread. The child writes what it inherited to
    `report_path` (JSON), then sleeps until killed; it never touches the pipes."""
    import warnings

    had_registry = "__warningregistry__" in globals()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
    if not had_registry:  # even an ignored warning leaves a registry in __main__
        globals().pop("__warningregistry__", None)
    if pid:
        return pid
    try:
        fds = {}
        for fd in os.listdir("/proc/self/fd"):
            try:
                fds[fd] = os.readlink("/proc/self/fd/" + fd)
            except OSError:
                pass
        report = {"pid": os.getpid(), "os_threads": len(os.listdir("/proc/self/task")),
                  "fds": fds, "threads": sorted(t.name for t in threading.enumerate()),
                  "canary": list(CANARY), "cache_len": len(cache)}
        with open(report_path + ".tmp", "w") as f:
            f.write(json.dumps(report))
        os.rename(report_path + ".tmp", report_path)
        while True:
            time.sleep(3600)
    finally:
        os._exit(0)


def control():
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "state":
            out = fingerprint()
        elif cmd == "ping":
            out = {"pong": True}
        elif cmd.startswith("fork "):
            out = {"child": fork_child(cmd.split(" ", 1)[1])}
        elif cmd == "blocks":
            import gc
            gc.collect()  # the test's request: count what survives a full collection
            out = {"blocks": sys.getallocatedblocks()}
        else:
            out = {"error": cmd}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


def login(user, password):
    """A frame with a secret-looking local (mode "secrets")."""
    while True:
        time.sleep(3600)


def recurse(n):
    if n == 0:
        time.sleep(3600)
    return recurse(n - 1)


def main():
    mode = sys.argv[1]
    if "--control" in sys.argv:
        threading.Thread(target=control, name="control", daemon=True).start()
    if mode == "threads":
        for i in range(20):
            threading.Thread(target=threading.Event().wait, name="parked-%d" % i,
                             daemon=True).start()
    if mode == "asyncio":
        import asyncio  # before "ready": importing it keeps the main thread busy
    print("ready %d" % os.getpid(), flush=True)
    if mode == "gilhog":
        # From here on no other thread gets the GIL: sum() never releases it.
        threading.Thread(target=lambda: sum(range(10 ** 11)), name="hog", daemon=True).start()
    if mode in ("sleep", "gilhog", "threads"):
        while True:
            time.sleep(3600)
    elif mode == "busy":
        x = 0
        while True:
            x += 1
    elif mode == "idle":
        threading.Event().wait()
    elif mode == "pause":
        while True:
            signal.pause()
    elif mode == "asyncio":
        asyncio.run(asyncio.sleep(3600))
    elif mode == "deep":
        recurse(200)
    elif mode == "secrets":
        login("admin", os.environ.get("TARGET_PASSWORD", "hunter2-local"))
    else:
        raise SystemExit("unknown mode " + mode)


if __name__ == "__main__":
    main()
