"""Object census, memory summary and census diffs, in-process (payloads/census.py,
inspector/census.py). The cross-process versions are in
tests/integration/test_census_tasks.py."""
from __future__ import annotations

import gc
import json
import subprocess
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from inspector.census import census_diff, growth_rate
from inspector.diagnostics import Census, CensusEntry
from inspector.diagnostics import parse_census as _census
from inspector.diagnostics import parse_memory_summary as _memory_summary
from inspector.render import census_rows, render_census, render_census_diff
from payloads import census
from payloads.errors import QueryError
from tests.pythons import interpreters

ROOT = Path(__file__).resolve().parents[2]
CALLS: list[str] = []


class Counted:
    def __init__(self, i: int) -> None:
        self.i = i


class Meta(type):
    """Every hook records: the census must read type names from the C slots."""

    def __getattribute__(cls, name):
        CALLS.append("Meta.__getattribute__ " + name)
        return type.__getattribute__(cls, name)

    def __eq__(cls, other):
        CALLS.append("Meta.__eq__")
        return type.__eq__(cls, other)

    def __hash__(cls):
        CALLS.append("Meta.__hash__")
        return type.__hash__(cls)

    @property
    def __name__(cls):
        CALLS.append("Meta.__name__")
        return "Fake"


class Hostile(metaclass=Meta):
    def __init__(self) -> None:
        self.data = [1, 2, 3]

    def __sizeof__(self):
        CALLS.append("__sizeof__")
        return 1

    def __repr__(self):
        CALLS.append("__repr__")
        return "Hostile()"

    def __eq__(self, other):
        CALLS.append("__eq__")
        return False

    def __hash__(self):
        CALLS.append("__hash__")
        return 42

    def __getattr__(self, name):
        CALLS.append("__getattr__ " + name)
        return 1


class PlainDict(dict):
    pass


class SizeofOverride(list):
    def __sizeof__(self):
        CALLS.append("SizeofOverride.__sizeof__")
        return 1


class BorrowedSizeof(list):
    __sizeof__ = list.clear  # a C method under the name: must never be called


def _row(result: dict, name: str) -> dict | None:
    return next((r for r in result["types"] if r["type"] == name), None)


def test_counts_instances_by_qualified_name():
    # Given 5000 live instances of a class
    keep = [Counted(i) for i in range(5000)]
    # When a census lists every type
    result = census.census(0)
    # Then the class is counted under module + qualname, with a size
    row = _row(result, __name__ + ".Counted")
    assert row is not None and row["count"] >= 5000
    assert row["size"] >= 5000 * object.__sizeof__(keep[0])
    assert result["complete"] is True and result["stopped"] is None
    assert result["total_objects"] >= 5000
    assert sum(result["generations"]) >= 5000
    assert result["distinct_types"] == len(result["types"])


def test_hostile_class_is_counted_without_running_its_code():
    # Given instances of a class whose dunders and metaclass record every call
    keep = [Hostile() for _ in range(300)]
    CALLS.clear()
    # When a census runs
    result = census.census(0)
    # Then they are counted under their real name, and nothing of theirs ran
    row = _row(result, __name__ + ".Hostile")
    assert row is not None and row["count"] == 300
    assert CALLS == []
    del keep


def test_sizes_come_from_c_sizeof_only():
    assert census.sizer(list) is list.__dict__["__sizeof__"]
    assert census.sizer(dict) is dict.__dict__["__sizeof__"]
    # a Python subclass that does not override: the C base's __sizeof__
    assert census.sizer(PlainDict) is dict.__dict__["__sizeof__"]
    # Python overrides, and C methods planted under the name, fall back to object's
    assert census.sizer(Hostile) is object.__dict__["__sizeof__"]
    assert census.sizer(SizeofOverride) is object.__dict__["__sizeof__"]
    assert census.sizer(BorrowedSizeof) is object.__dict__["__sizeof__"]
    victim = BorrowedSizeof([1, 2, 3])
    CALLS.clear()
    census.census(0)
    assert victim == [1, 2, 3] and CALLS == []


def test_sort_top_and_size_ordering():
    keep = [[i] for i in range(3000)]  # noqa: F841 - alive during the census
    by_count = census.census(5)
    assert len(by_count["types"]) == 5
    counts = [r["count"] for r in by_count["types"]]
    assert counts == sorted(counts, reverse=True)
    by_size = census.census(5, sort="size")
    sizes = [r["size"] for r in by_size["types"]]
    assert sizes == sorted(sizes, reverse=True)
    assert by_size["sort"] == "size"


def test_time_budget_stops_the_walk_and_says_so():
    keep = [Counted(i) for i in range(50_000)]  # noqa: F841
    result = census.census(0, {"max_seconds": 1e-9, "chunk": 100})
    assert result["complete"] is False and result["stopped"] == "max_seconds"
    assert result["total_objects"] < sum(result["generations"])


def test_a_replaced_clock_is_never_called(monkeypatch):
    # Given a target whose time functions were replaced (freezegun does this)
    def fake() -> float:
        CALLS.append("fake clock")
        return 0.0

    monkeypatch.setattr(time, "monotonic", fake)
    monkeypatch.setattr(time, "perf_counter", fake)
    monkeypatch.setattr(time, "sleep", lambda s: CALLS.append("fake sleep"))
    CALLS.clear()
    # When a census runs
    result = census.census(3)
    monkeypatch.undo()
    # Then it used a genuine clock (posix.times) and yielder, not the fakes
    assert CALLS == []
    assert result["complete"] and result["duration"] >= 0.0


@pytest.mark.parametrize("top, limits, sort", [
    (-1, None, "count"), ("5", None, "count"), (5, None, "name"),
    (5, {"max_seconds": 0}, "count"), (5, {"max_seconds": 10_000}, "count"),
    (5, {"chunk": 1}, "count"), (5, {"steps": 5}, "count"), (5, [1], "count"),
])
def test_bad_arguments_are_refused(top, limits, sort):
    with pytest.raises(QueryError):
        census.census(top, limits, sort)


def test_walk_lets_other_threads_run():
    # Given 300k objects and a thread that counts 1 ms sleeps
    keep = [Counted(i) for i in range(300_000)]  # noqa: F841
    beats = []
    stop = threading.Event()

    def beat():
        while not stop.is_set():
            time.sleep(0.001)
            beats.append(time.perf_counter())

    thread = threading.Thread(target=beat)
    thread.start()
    time.sleep(0.05)
    try:
        # When a census runs
        start = time.perf_counter()
        result = census.census(5)
        end = time.perf_counter()
    finally:
        stop.set()
        thread.join()
    # Then the other thread kept beating during the walk (a coarse check)
    during = [b for b in beats if start < b < end]
    assert result["complete"]
    assert result["yields"] >= 1
    assert len(during) >= 3, (len(during), end - start)


def test_memory_summary_shape():
    summary = census.memory_summary()
    gc_info = summary["gc"]
    assert gc_info["enabled"] is gc.isenabled()
    assert gc_info["thresholds"] == list(gc.get_threshold())
    assert len(gc_info["generations"]) == 3
    assert {"index", "count", "threshold", "collections", "collected", "uncollectable"} <= set(
        gc_info["generations"][0])
    assert gc_info["garbage"] == len(gc.garbage)
    json.dumps(summary)  # plain JSON data
    parsed = _memory_summary(summary, None)
    assert parsed.gc_thresholds == tuple(gc.get_threshold())
    assert len(parsed.generations) == 3


def test_tracemalloc_top_sites_only_while_tracing():
    was_tracing = tracemalloc.is_tracing()
    if was_tracing:
        pytest.skip("tracemalloc already tracing in this test process")
    # tracemalloc is imported here (pytest imports it), but not tracing
    assert census.memory_summary()["tracemalloc"] == {"tracing": False}
    assert not tracemalloc.is_tracing()  # and the summary did not start it
    tracemalloc.start()
    try:
        blocks = [bytearray(10_000) for _ in range(50)]
        tm = census.memory_summary(tracemalloc_top=5)["tracemalloc"]
    finally:
        tracemalloc.stop()
    assert tm["tracing"] is True and tm["current"] > 0 and tm["peak"] >= tm["current"]
    assert 0 < len(tm["top"]) <= 5
    assert any(site["file"] == __file__ and site["size"] >= 400_000 for site in tm["top"]), \
        tm["top"]
    del blocks


_PROBE = r'''
import sys, json
sys.path.insert(0, ROOT)
import warnings
before = set(sys.modules)
from payloads import census, greenlets, tasks
loaded = set(sys.modules)
result = census.census(3)
memory = census.memory_summary()
listed = tasks.list_tasks()
found = greenlets.list_greenlets()
new = sorted(m for m in set(sys.modules) - loaded)
print(json.dumps({"new": new, "complete": result["complete"], "types": len(result["types"]),
                  "tracemalloc": memory["tracemalloc"], "asyncio": listed["asyncio"],
                  "greenlet": found["greenlet"],
                  "gc_loaded_before": "gc" in before}))
'''


@pytest.mark.parametrize("interp", interpreters(), ids=lambda i: i.label)
def test_runs_on_every_interpreter_and_imports_nothing(interp):
    """Given a bare interpreter (no gc, tracemalloc or asyncio imported), a census,
    a memory summary and a task listing work and leave sys.modules as they were."""
    if interp.path is None:
        pytest.skip(interp.missing_reason)
    code = "ROOT = %r\n" % str(ROOT) + _PROBE
    out = subprocess.run([interp.path, "-I", "-S", "-W", "error", "-c", code],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    report = json.loads(out.stdout)
    assert report["gc_loaded_before"] is False
    assert report["new"] == []  # not gc, not tracemalloc, not asyncio
    assert report["complete"] is True and report["types"] == 3
    assert report["tracemalloc"] is None and report["asyncio"] is False
    assert report["greenlet"] is False


# -- the client side: parsing, diffs, rendering ---------------------------------


def _census_of(counts: dict[str, int], taken_at: float = 0.0) -> Census:
    entries = tuple(CensusEntry(name, n, n * 48) for name, n in counts.items())
    return Census(entries=entries, total_objects=sum(counts.values()),
                  total_size=sum(e.size for e in entries), distinct_types=len(entries),
                  generations=(0, 0, sum(counts.values())), frozen=0, duration=0.1,
                  list_pause=0.01, max_hold=0.01, complete=True, taken_at=taken_at)


def test_census_diff_sorts_growth_and_drops_shrinkage():
    before = _census_of({"app.Leak": 100, "dict": 500, "app.Gone": 10, "list": 50})
    after = _census_of({"app.Leak": 400, "dict": 520, "list": 40, "app.New": 7}, 30.0)
    deltas = census_diff(before, after, top=10)
    assert [d.type for d in deltas] == ["app.Leak", "dict", "app.New"]
    assert deltas[0].count_delta == 300 and deltas[0].size_delta == 300 * 48
    assert deltas[2].new and deltas[2].count_before == 0
    assert growth_rate(deltas[0], 30.0) == 10.0
    every = census_diff(before, after, top=0, growth_only=False)
    assert {d.type for d in every} == {"app.Leak", "dict", "app.New", "list", "app.Gone"}
    assert census_diff(before, after, top=1)[0].type == "app.Leak"
    text = render_census_diff(deltas, before, after)
    assert "Growth over 30.0 s" in text and "+300" in text and "app.New  (new)" in text


def test_census_reply_parses_and_renders():
    keep = [Counted(i) for i in range(2000)]  # noqa: F841
    parsed = _census(census.census(10), taken_at=123.0)
    assert len(parsed.entries) == 10 and parsed.taken_at == 123.0
    assert not parsed.has_all_types
    assert parsed.by_type()[parsed.entries[0].type] == parsed.entries[0]
    rows = census_rows(parsed)
    assert len(rows) == 10 and all(len(r) == 3 for r in rows)
    text = render_census(parsed)
    assert "objects tracked by the GC" in text and "(top 10 of" in text
