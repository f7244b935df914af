"""A service that leaks on purpose: every request leaves a LeakedRecord behind.

Find the leak with an object census diff:
    python examples/leaky_service.py &
    inspector census $! --diff-after 10     # LeakedRecord grows by ~100 per second
    inspector census $! --top 10            # the biggest types right now
    inspector memory $!                     # gc state, RSS, fds
Works on CPython 3.8+. Prints one "ready pid=N" line once it runs.
"""

import os
import threading
import time


class LeakedRecord:
    """What a request leaves behind in the module-level history (the leak)."""

    __slots__ = ("request_id", "payload", "created")

    def __init__(self, request_id):
        self.request_id = request_id
        self.payload = {"id": request_id, "tags": ["a", "b"]}
        self.created = time.time()


class Session:
    """Short-lived per-request state: created and dropped (no leak)."""

    def __init__(self, request_id):
        self.request_id = request_id
        self.buffer = [0] * 16


history = []  # never trimmed: this is the leak
stats = {"requests": 0}
RATE = 100  # requests (and leaked records) per second


def handle(request_id):
    session = Session(request_id)
    history.append(LeakedRecord(request_id))
    stats["requests"] += 1
    return len(session.buffer)


def serve():
    request_id = 0
    while True:
        for _ in range(RATE // 10):
            handle(request_id)
            request_id += 1
        time.sleep(0.1)


def main():
    threading.Thread(target=serve, name="server", daemon=True).start()
    print("ready pid=%d" % os.getpid(), flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
