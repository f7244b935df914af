"""A threaded service: a work queue, worker threads, caches and a config.

Run it, then look inside it:
    python examples/threaded_service.py &
    inspector stack $!
    inspector eval $! "len(queue.queue)"
    inspector eval $! "config"            # the api_key is shown redacted
Works on CPython 3.8+. Prints one "ready" line once everything runs.
"""

import os
import queue
import random
import sys
import threading
import time


class Config:
    def __init__(self):
        self.host = "127.0.0.1"
        self.port = 8080
        self.timeout = 2.5
        self.retries = 3
        self.api_key = "sk-fake-0123456789abcdef"  # a fake secret: inspector redacts it
        self.features = {"fast_path": True, "beta": False}

    @property
    def url(self):  # a property: a query reading it is refused (exit 3) unless --allow-properties
        return "http://%s:%d" % (self.host, self.port)


class LRUCache:
    def __init__(self, capacity):
        self.capacity = capacity
        self._data = {}
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._data:
                self.hits += 1
                return self._data[key]
            self.misses += 1
            return None

    def put(self, key, value):
        with self._lock:
            if len(self._data) >= self.capacity:
                self._data.pop(next(iter(self._data)))
            self._data[key] = value


class Worker(threading.Thread):
    def __init__(self, index, jobs, cache):
        super().__init__(name="worker-%d" % index, daemon=True)
        self.jobs = jobs
        self.cache = cache
        self.done = 0
        self.alive = True
        self.current = None

    def run(self):
        while True:
            job = self.jobs.get()
            self.current = job
            self.handle(job)
            self.done += 1
            self.current = None
            self.jobs.task_done()

    def handle(self, job):
        key = job["id"] % 50
        if self.cache.get(key) is None:
            self.cache.put(key, {"id": key, "payload": "x" * (key % 7)})
        time.sleep(0.01 + random.random() * 0.02)


config = Config()
queue = queue.Queue()
cache = LRUCache(capacity=100)
orders = [{"id": i, "qty": i % 5 + 1, "item": "sku-%03d" % (i % 17)} for i in range(200)]
registry = {"svc-%02d" % i: {"healthy": i % 4 != 0} for i in range(12)}
workers = [Worker(i, queue, cache) for i in range(4)]
started_at = time.time()


def producer():
    n = 0
    while True:
        queue.put({"id": n, "created": time.time()})
        n += 1
        time.sleep(0.005)


def main():
    for w in workers:
        w.start()
    threading.Thread(target=producer, name="producer", daemon=True).start()
    print("ready pid=%d" % os.getpid(), flush=True)
    while True:
        time.sleep(0.5)
        if len(sys.argv) > 1 and sys.argv[1] == "--once":
            break


if __name__ == "__main__":
    main()
