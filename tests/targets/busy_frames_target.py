"""A busy thread for the frame-pinning tests (CPython 3.8+, stdlib only).

Thread "worker" runs serve() (frame 1, a long-lived call) which calls
step_a()/step_b() in a tight loop, so frame 0 is another function from one
moment to the next. The main thread sits in phase_one() until a line arrives
on stdin, then returns from it and sits in phase_two() (a call that has
returned, for --frame-id).
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


def serve():
    served = 0
    while not STOP.is_set():
        step_a(served)
        step_b(served)
        served += 1


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
