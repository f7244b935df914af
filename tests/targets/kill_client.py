"""Kill inspector clients mid-injection, many times, against one target.

    python kill_client.py PID sweep        # SIGKILL after the 1st, 2nd ... ptrace request
    python kill_client.py PID random N     # SIGKILL at a random instant, N times

Runs as its own process (never inside pytest, which has threads): it imports
inspector once, then forks one client per trial. A "sweep" child kills
itself right after its N-th ptrace request, for every N an attach makes: the
client dies at every step of the injection in turn. A "random" child is
killed by the parent after a random delay of up to 25 ms. After each trial
the target must be running and traced by no one. Prints one JSON line:
{"trials": n, "requests": per-attach count, "problems": [...]}.
"""

import ctypes
import json
import os
import random
import signal
import sys
import time

import inspector
from inspector._inject import ptrace


def target_problem(pid):
    """Why the target is not running free (stopped or traced), or None."""
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        if int(fields["TracerPid"]) != 0:
            return "thread %s traced by %s" % (tid, fields["TracerPid"].strip())
        state = fields["State"].split()[0]
        if state in ("T", "t", "Z", "X"):
            return "thread %s in state %s" % (tid, state)
    return None


def attach_once(pid, kill_after=None):
    if kill_after is not None:
        real = ptrace._request
        count = [0]

        def counted(*args, **kwargs):
            result = real(*args, **kwargs)
            count[0] += 1
            if count[0] >= kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        ptrace._request = counted
    try:
        with inspector.attach(pid, timeout=5.0) as session:
            session.ping()
    except inspector.InspectorError:
        pass


def count_requests(pid):
    real = ptrace._request
    count = [0]

    def counted(*args, **kwargs):
        count[0] += 1
        return real(*args, **kwargs)

    ptrace._request = counted
    try:
        attach_once(pid)
    finally:
        ptrace._request = real
    return count[0]


def trial(pid, kill_after=None, delay=None):
    ready_r, ready_w = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the client
        os.close(ready_r)
        os.write(ready_w, b"x")
        attach_once(pid, kill_after)
        os._exit(0)
    os.close(ready_w)
    os.read(ready_r, 1)
    os.close(ready_r)
    if delay is not None:
        time.sleep(delay)
        os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
    time.sleep(0.02)
    return target_problem(pid)


def main():
    pid, mode = int(sys.argv[1]), sys.argv[2]
    ctypes.CDLL(None)  # warm: every child starts with everything loaded
    requests = count_requests(pid)
    problems = []
    if mode == "sweep":
        plan = [(n, None) for n in range(1, requests + 1)]
    else:
        plan = [(None, random.uniform(0.0, 0.025)) for _ in range(int(sys.argv[3]))]
    for kill_after, delay in plan:
        problem = trial(pid, kill_after, delay)
        if problem:
            problems.append("after %s/%s: %s" % (kill_after, delay, problem))
    print(json.dumps({"trials": len(plan), "requests": requests, "problems": problems}),
          flush=True)


if __name__ == "__main__":
    main()
