"""Object census and GC/memory summary, read inside the target without running its code.

``census(top, limits)`` counts the objects the garbage collector tracks, by
type, with approximate sizes. ``memory_summary()`` reports the collector's
state and, only if the target is already tracing, tracemalloc's top
allocation sites.

What runs, and what never does:

* ``gc.get_objects(generation)`` is called once per generation, youngest
  first. It is one C call that holds the GIL while it builds its list (the
  longest pause a census causes; docs/DESIGN.md has the numbers). The list
  is walked from its end in chunks of ``CHUNK`` objects, each chunk cut off
  the list (``del objects[-n:]``, cheap at the end) so our references are
  dropped as we go, and the GIL is offered to other threads between chunks.
  Young objects, the ones most likely to die, are listed and released first.
* Per object: ``type(o)`` and ``id(...)`` (C), and a size from the type's own
  ``__sizeof__`` only when that is C code: the first ``__sizeof__`` in the
  MRO must be a method descriptor named ``__sizeof__`` owned by a C type
  (whose dict Python code cannot change). Otherwise ``object.__sizeof__``
  (basic size + item size, C). User ``__sizeof__``/``__repr__``/``__eq__``/
  ``__hash__`` never run; type objects are never hashed or compared (counts
  are keyed by ``id(type)``).
* Type names come from the C slots (``snapshot.type_name``): module +
  qualname, the same string in every census, so the client can diff two.
* ``gc`` and ``_tracemalloc`` are taken from ``sys.modules`` when the target
  imported them, else created with ``_imp.create_builtin`` (no import hooks
  run) and not left in ``sys.modules``. ``tracemalloc`` is never imported
  and tracing never started; ``_tracemalloc`` answers for tracing started
  at startup too (``-X tracemalloc``, ``PYTHONTRACEMALLOC``), when neither
  module is in ``sys.modules``.

What a census cannot see: objects the collector does not track (str, int,
float, bytes, and tuples/dicts the collector untracked because they hold only
such values), objects moved to the permanent generation by ``gc.freeze()``
(counted, not walked), and memory outside Python objects. Sizes are shallow
(like ``sys.getsizeof``: an instance's ``__dict__`` is a separate object).
"""
from __future__ import annotations

import time

from . import policy, static
from .cmodules import builtin_module, loaded_module
from .cmodules import genuine as _genuine
from .errors import QueryError
from .snapshot import type_name

MAX_SECONDS = 10.0       # default wall-clock budget of one census
MAX_SECONDS_CAP = 120.0  # the most a client may ask for
CHUNK = 2_000            # objects walked between clock checks
HOLD_SECONDS = 0.005     # hold the GIL this long at most, then let others run
YIELD_SLEEP = 0.0005     # how long we let them run
MAX_TYPES = 5_000        # types returned at most (top=0 asks for all, up to this)
MAX_OBJECTS_NO_CLOCK = 20_000_000  # the budget when the target left us no genuine clock
TRACEMALLOC_TOP = 10     # allocation sites reported
AGENT_FILE_PREFIX = "<inspector-agent"  # the filenames our code is compiled under

# _tracemalloc._get_traces() copies every live trace in one C call; above this
# much tracemalloc bookkeeping memory the copy is too big to make in a target.
MAX_TRACEMALLOC_MEMORY = 256 * 1024 * 1024

_OBJECT_SIZEOF = policy.OBJECT.__dict__["__sizeof__"]
_METHOD_NAME = policy.METHOD_DESCRIPTOR.__dict__["__name__"].__get__
_LIST_LEN = policy.LIST.__dict__["__len__"]
# PyGC_Head in front of every tracked object (sys.getsizeof adds it too).
def _gc_header_size() -> int:
    try:
        return max(0, policy.sys_function("getsizeof")([]) -
                   policy.LIST.__dict__["__sizeof__"]([]))
    except policy.SysReplaced:
        return 16      # sizeof(PyGC_Head) on 64-bit 3.8-3.13


_GC_HEADER = _gc_header_size()


def _gc():
    return builtin_module("gc", "get_objects")


def _time_function(name: str):
    return _genuine(time, name)


def genuine_clock():
    """A monotonic clock that is C code, or None.

    freezegun and friends replace ``time.monotonic``/``perf_counter``; then
    ``posix.times()`` (elapsed real time in clock ticks, 10 ms) is used.
    """
    fn = _time_function("monotonic") or _time_function("perf_counter")
    if fn is not None:
        return fn
    times = _genuine(loaded_module("posix"), "times")
    if times is None:
        return None

    def elapsed():
        return times()[4]

    return elapsed


def no_clock() -> float:
    return 0.0


def _yielder():
    """A callable that releases the GIL long enough for a waiting thread to take it.

    Not ``time.sleep(0)``: a thread waiting for the GIL asks for it only after
    a switch interval (5 ms) *without any switch*; releasing and retaking it
    every millisecond counts as a switch, so the waiter may never ask (on 3.8,
    1M objects, sleep(0) per 2000: heartbeat gaps of 16-333 ms over runs). A
    real sleep lets the waiter, woken by the release, take the GIL.
    """
    sleep = _time_function("sleep")
    if sleep is not None:
        return lambda: sleep(YIELD_SLEEP)
    import _thread

    lock = _thread.allocate_lock()
    lock.acquire()
    # waiting on a held lock with a timeout releases the GIL (C), like a sleep
    return lambda: lock.acquire(True, YIELD_SLEEP)


# ---------------------------------------------------------------------------
# Census
# ---------------------------------------------------------------------------
def _options(limits):
    """(max_seconds, chunk) from the client's overrides (a dict or None)."""
    max_seconds, chunk = MAX_SECONDS, CHUNK
    if limits is None:
        return max_seconds, chunk
    if type(limits) is not dict:
        raise QueryError("ValueError", "limits must be an object")
    for key, value in list(limits.items()):
        if key == "max_seconds":
            if type(value) not in (int, float) or not 0 < value <= MAX_SECONDS_CAP:
                raise QueryError("ValueError", "max_seconds must be in (0, %g]"
                                 % MAX_SECONDS_CAP)
            max_seconds = float(value)
        elif key == "chunk":
            if type(value) is not int or not 100 <= value <= 100_000:
                raise QueryError("ValueError", "chunk must be an integer in [100, 100000]")
            chunk = value
        else:
            raise QueryError("ValueError", "unknown census limit %r" % (key,))
    return max_seconds, chunk


def sizer(cls):
    """The function giving the shallow size of an instance of `cls`, C code only."""
    try:
        desc, owner = static.find_in_mro(cls, "__sizeof__")
        if type(desc) is policy.METHOD_DESCRIPTOR and _METHOD_NAME(desc) == "__sizeof__" \
                and owner is not None and policy.is_c_type(owner):
            return desc
    except Exception:
        pass
    return _OBJECT_SIZEOF


def census(top=20, limits=None, sort="count"):
    """Counts and shallow sizes of gc-tracked objects by type (see module doc)."""
    if type(top) is not int or top < 0:
        raise QueryError("ValueError", "top must be a non-negative integer (0 = all)")
    if sort not in ("count", "size"):
        raise QueryError("ValueError", "sort must be 'count' or 'size'")
    max_seconds, chunk = _options(limits)
    gc = _gc()
    clock = genuine_clock() or no_clock
    offer_gil = _yielder()
    yields = 0
    started = clock()
    deadline = started + max_seconds
    stats = {}            # id(type) -> [type, count, size, sizer]
    young_ids = set()     # ids seen in generations 0/1: a collection between our
                          # get_objects calls may promote them (no double count)
    walked = 0            # objects listed and looked at
    skipped = 0           # of which already counted in a younger generation
    per_generation = []
    list_pause = 0.0      # longest single gc.get_objects() call
    max_hold = 0.0        # longest stretch between offers of the GIL
    stopped = None
    get = stats.get
    kind = type
    ident = id
    for generation in (0, 1, 2):
        t0 = clock()
        objects = gc.get_objects(generation)
        list_pause = max(list_pause, clock() - t0)
        hold_start = t0
        per_generation.append(_LIST_LEN(objects))
        remember = generation < 2
        skip = young_ids if generation > 0 else None
        while objects:
            part = objects[-chunk:]
            del objects[-chunk:]
            for o in part:
                if skip is not None and ident(o) in skip:
                    skipped += 1
                    continue
                if remember:
                    young_ids.add(ident(o))
                cls = kind(o)
                entry = get(ident(cls))
                if entry is None:
                    entry = stats[ident(cls)] = [cls, 0, 0, sizer(cls)]
                entry[1] += 1
                try:
                    entry[2] += entry[3](o)
                except Exception:
                    entry[2] += _OBJECT_SIZEOF(o)
            walked += _LIST_LEN(part)
            o = None
            del part
            now = clock()
            max_hold = max(max_hold, now - hold_start)
            if now > deadline:
                stopped = "max_seconds"
                break
            if clock is no_clock and walked >= MAX_OBJECTS_NO_CLOCK:
                stopped = "max_objects"
                break
            if now - hold_start >= HOLD_SECONDS or clock is no_clock:
                offer_gil()
                yields += 1
                hold_start = clock()
        del objects
        if stopped:
            break
    young_ids = None
    rows = _merge_by_name(stats)
    stats = None
    total_size = 0
    for row in rows:
        row["size"] += row["count"] * _GC_HEADER
        total_size += row["size"]
    key = "count" if sort == "count" else "size"
    rows.sort(key=lambda r: (-r[key], r["type"]))
    limit = MAX_TYPES if top == 0 else min(top, MAX_TYPES)
    return {
        "types": rows[:limit],
        "distinct_types": len(rows),
        "total_objects": walked - skipped,
        "total_size": total_size,
        "generations": per_generation,
        "frozen": gc.get_freeze_count(),
        "duration": clock() - started,
        "list_pause": list_pause,
        "max_hold": max_hold,
        "yields": yields,
        "complete": stopped is None,
        "stopped": stopped,
        "max_seconds": max_seconds,
        "sort": sort,
        "gc_header": _GC_HEADER,
    }


def _merge_by_name(stats) -> list:
    """[{type, count, size}] with types of the same qualified name merged."""
    by_name = {}
    for cls, count, size, _sizer in list(stats.values()):
        name = type_name(cls)
        row = by_name.get(name)
        if row is None:
            by_name[name] = {"type": name, "count": count, "size": size}
        else:
            row["count"] += count
            row["size"] += size
    return list(by_name.values())


# ---------------------------------------------------------------------------
# GC and tracemalloc summary
# ---------------------------------------------------------------------------
def memory_summary(tracemalloc_top=TRACEMALLOC_TOP):
    """The collector's state, and tracemalloc's top sites if already tracing."""
    if type(tracemalloc_top) is not int or not 0 <= tracemalloc_top <= 1000:
        raise QueryError("ValueError", "tracemalloc_top must be an integer in [0, 1000]")
    gc = _gc()
    counts = list(gc.get_count())
    thresholds = list(gc.get_threshold())
    stats = gc.get_stats()
    generations = []
    for index, entry in enumerate(list(stats)):
        row = {"index": index,
               "count": counts[index] if index < len(counts) else None,
               "threshold": thresholds[index] if index < len(thresholds) else None}
        if type(entry) is dict:
            for field in ("collections", "collected", "uncollectable"):
                value = entry.get(field)
                row[field] = value if type(value) is int else None
        generations.append(row)
    garbage = static.dict_get_str(static.instance_dict(gc), "garbage", None)
    return {
        "gc": {
            "enabled": gc.isenabled() is True,
            "counts": counts,
            "thresholds": thresholds,
            "generations": generations,
            "garbage": _LIST_LEN(garbage) if type(garbage) is policy.LIST else None,
            "frozen": gc.get_freeze_count(),
        },
        "tracemalloc": tracemalloc_summary(tracemalloc_top),
        "python": policy.python_version(),
    }


def _tracemalloc_module():
    """The target's _tracemalloc, or a private instance of the builtin
    (cmodules.builtin_module: nothing imported, nothing left in sys.modules).
    Its state is the interpreter's: tracing started by ``-X tracemalloc`` or
    ``PYTHONTRACEMALLOC`` shows, though neither module is in sys.modules then."""
    try:
        return builtin_module("_tracemalloc", "is_tracing")
    except QueryError:
        return None


def tracemalloc_summary(top=TRACEMALLOC_TOP):
    """None if the target is not tracing and never imported tracemalloc; else
    what it is tracing.

    Never imports tracemalloc and never starts tracing. The top sites are
    aggregated here from ``_tracemalloc._get_traces()`` (what
    ``tracemalloc.take_snapshot()`` calls), by the innermost frame, without
    running the target's (Python) tracemalloc module.
    """
    imported = loaded_module("tracemalloc") is not None
    tm = _tracemalloc_module()
    fns = {name: _genuine(tm, name) for name in (
        "is_tracing", "get_traced_memory", "get_tracemalloc_memory", "get_traceback_limit")}
    if None in fns.values():
        return {"tracing": None, "note": "the target's _tracemalloc is not genuine"}
    if fns["is_tracing"]() is not True:
        return {"tracing": False} if imported else None
    current, peak = fns["get_traced_memory"]()
    overhead = fns["get_tracemalloc_memory"]()
    out = {"tracing": True, "current": current, "peak": peak, "overhead": overhead,
           "traceback_limit": fns["get_traceback_limit"](), "top": [], "note": None,
           "imported": imported}
    if top == 0:
        return out
    if overhead > MAX_TRACEMALLOC_MEMORY:
        out["note"] = ("top sites skipped: tracemalloc holds %d MB of traces, too many to "
                       "copy inside the target" % (overhead >> 20))
        return out
    get_traces = _genuine(tm, "_get_traces")
    if get_traces is None:
        out["note"] = "top sites unavailable: no _tracemalloc._get_traces"
        return out
    traces = get_traces()
    sites = {}
    offer_gil = _yielder()
    clock = genuine_clock() or no_clock
    hold_start = clock()
    while traces:
        part = traces[-CHUNK:]
        del traces[-CHUNK:]
        for trace in part:
            frames = trace[2]
            site = frames[0] if frames else ("<unknown>", 0)
            if type(site[0]) is str and site[0].startswith(AGENT_FILE_PREFIX):
                continue  # the agent's own memory is not the target's
            entry = sites.get(site)
            if entry is None:
                sites[site] = [trace[1], 1]
            else:
                entry[0] += trace[1]
                entry[1] += 1
        del part
        if clock() - hold_start >= HOLD_SECONDS or clock is no_clock:
            offer_gil()
            hold_start = clock()
    rows = [{"file": site[0], "line": site[1], "size": size, "count": count}
            for site, (size, count) in sites.items()]
    rows.sort(key=lambda r: (-r["size"], r["file"], r["line"]))
    out["top"] = rows[:top]
    out["sites"] = len(rows)
    return out
