"""A busy thread for the frame-pinning tests (CPython 3.8+, stdlib only).

Thread "worker" runs serve() (a long-lived call, frame 1 or 2) under
run_steps(), which calls step_a()/step_b() in a tight loop, so frame 0 is
another function from one moment to the next and serve() is never frame 0.
The main thread sits in phase_one() until a line arrives on stdin, then
returns from it and sits in phase_two() (a call that has returned, for
--frame-id).
"""

import sys
import threading

STOP = threading.Event()


def step_a(n):
    total = 0
    for i in range(200):
        total += i * n
    return total


def step_b(n):
    return sum(range(n % 50))


def run_steps(served):
    while True:
        step_a(served[0])
        step_b(served[0])
        served[0] += 1


def serve():
    served = [0]
    run_steps(served)  # never returns: serve() is never frame 0


def phase_one():
    marker = "first"
    sys.stdin.readline()
    return marker


def phase_two():
    marker = "second"
    STOP.wait()
    return marker


def main():
    threading.Thread(target=serve, name="worker", daemon=True).start()
    print("ready", flush=True)
    phase_one()
    print("phase two", flush=True)
    phase_two()


if __name__ == "__main__":
    main()
