"""A CPU-busy worker that rarely releases the GIL: one thread crunching
numbers in pure Python, with a big C-level call now and then.

    python examples/cpu_worker.py &
    inspector eval $! "progress"
Works on CPython 3.8+.
"""

import os
import sys

progress = {"rounds": 0, "last": 0}


def crunch(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def main():
    print("ready pid=%d" % os.getpid(), flush=True)
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else -1
    while rounds != 0:
        progress["last"] = crunch(200000)
        progress["rounds"] += 1
        sorted(range(200000), key=None, reverse=True)  # a C call that holds the GIL
        rounds -= 1


if __name__ == "__main__":
    main()
