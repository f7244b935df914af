"""A target that monkeypatches what agents usually rely on, and traces itself.

    python hostile_target.py MODE [--control]

MODE: sleep (main thread sleeps: the agent comes on its own thread) | busy
(main thread computes, no thread is parked: stage 1 comes as a pending call
on the main thread; the state is written to $HOSTILE_STATE_FILE every 0.2 s).

Before it says "ready" it replaces functions of ``threading``, ``socket``,
``json`` and ``builtins`` (``print``, ``open``, ``__import__``) with wrappers
that record each call (the wrapper's name and the caller's file name) and then
call the original, and it
installs trace and profile hooks (``sys.settrace``/``sys.setprofile`` on the
main thread, ``threading.settrace``/``setprofile`` for later threads, and on
3.12+ ``threading.settrace_all_threads``) that record the file name of every
frame they are called with. The control thread answers "state" with one
JSON line made by the *original* ``json.dumps``: the recorded calls, the
recorded file names, and whether every hook is still the one installed.
"""

import builtins
import json
import os
import socket
import sys
import threading
import time

CALLS = []  # names of patched functions that were called
SEEN = set()  # file names of frames the hooks saw
_dumps = json.dumps
_open = open
_ORIGINALS = {}


def _record(name, original):
    getframe = sys._getframe

    def wrapper(*args, **kwargs):
        # Who called: the file name of the calling frame.
        CALLS.append("%s@%s" % (name, getframe(1).f_code.co_filename))
        return original(*args, **kwargs)

    wrapper.__name__ = name
    _ORIGINALS[name] = original
    return wrapper


def _patch(owner, attr, label):
    setattr(owner, attr, _record(label, getattr(owner, attr)))


def tracer(frame, event, arg):
    SEEN.add(frame.f_code.co_filename)
    return tracer


def profiler(frame, event, arg):
    SEEN.add(frame.f_code.co_filename)


def hooks_in_place():
    checks = {
        "settrace": sys.gettrace() is tracer,
        "setprofile": sys.getprofile() is profiler,
    }
    if hasattr(threading, "gettrace"):  # 3.10+
        checks["threading.settrace"] = threading.gettrace() is tracer
        checks["threading.setprofile"] = threading.getprofile() is profiler
    return checks


def state():
    return {
        "calls": list(CALLS),
        "seen": sorted(SEEN),
        "hooks": hooks_in_place(),
        "patched": {
            "print": builtins.print.__name__ == "builtins.print",
            "json.dumps": json.dumps.__name__ == "json.dumps",
            "socket.socket": socket.socket.__name__ == "socket.socket",
        },
        "os_threads": len(os.listdir("/proc/self/task")),
        "fds": sorted(os.listdir("/proc/self/fd")),
        "modules_named_inspector": sorted(m for m in list(sys.modules) if "inspector" in m),
    }


def control():
    # Runs under the hooks too (they were set for all threads); its own frames
    # are this file's, which the test ignores.
    for line in sys.stdin:
        cmd = line.strip()
        out = state() if cmd == "state" else {"error": cmd}
        sys.stdout.write(_dumps(out) + "\n")
        sys.stdout.flush()


def install():
    for attr in ("Thread", "current_thread", "enumerate", "get_ident", "Lock", "RLock",
                 "Event", "local", "main_thread", "active_count"):
        _patch(threading, attr, "threading." + attr)
    for attr in ("socket", "socketpair", "create_connection", "fromfd", "getaddrinfo"):
        _patch(socket, attr, "socket." + attr)
    for attr in ("dumps", "loads", "dump", "load"):
        _patch(json, attr, "json." + attr)
    for attr in ("print", "open", "__import__"):
        _patch(builtins, attr, "builtins." + attr)
    sys.settrace(tracer)
    sys.setprofile(profiler)
    threading.settrace(tracer)
    threading.setprofile(profiler)


def main():
    mode = sys.argv[1]
    install()
    if "--control" in sys.argv:
        # The patched threading.Thread: recorded, and that is the target's own call.
        threading.Thread(target=control, name="control", daemon=True).start()
        if hasattr(threading, "settrace_all_threads"):  # 3.12+
            threading.settrace_all_threads(tracer)
    del CALLS[:]  # from here on, only calls made by someone else count
    sys.stdout.write("ready %d\n" % os.getpid())
    sys.stdout.flush()
    if mode == "sleep":
        while True:
            time.sleep(3600)
    elif mode == "busy":
        # No thread is parked (no control thread either), so stage 1 comes as
        # a pending call on this traced thread. The state goes to a file.
        report = os.environ.get("HOSTILE_STATE_FILE")
        x = 0
        next_report = 0.0
        while True:
            x += 1
            if report and x % 5000 == 0 and time.monotonic() >= next_report:
                with _open(report + ".tmp", "w") as f:
                    f.write(_dumps(state()))
                os.rename(report + ".tmp", report)
                next_report = time.monotonic() + 0.2
    raise SystemExit("unknown mode " + mode)


if __name__ == "__main__":
    main()
