"""Greenlets (and gevent's hubs) of the target, read without running its code.

py-spy sees only the stack a thread is running now; a gevent service's other
greenlets are suspended, their frames parked off the thread. This module lists
every greenlet, its state and its stack, and each gevent hub (one per thread
that ran gevent) with its loop.

How, and what runs:

* Nothing is imported: the greenlet type is taken from ``greenlet._greenlet``
  (greenlet 1.x/3.x) or ``greenlet`` (0.4) in ``sys.modules``, and only if it
  is a C type named ``greenlet.greenlet``; gevent's ``Hub`` class from
  ``gevent.hub`` if the target imported it. ``greenlet.getcurrent()`` is never
  called (on our thread it would create a main greenlet and thread state).
* The greenlets are found by one walk of ``gc.get_objects()`` per generation,
  chunked and offering the GIL between chunks like the census (census.py);
  an object is a greenlet if ``greenlet.greenlet`` is in its type's MRO
  (identity). Subclasses' code never runs.
* Per greenlet, only greenlet's own C getters run (policy.GREENLET_GETSETS,
  policy.GREENLET_SLOTS): ``dead``, ``gr_frame``, ``parent``, ``run``
  (getsets that return a stored field or raise AttributeError) and
  greenlet's ``__bool__`` slot (``active``), each called on
  greenlet.greenlet's descriptor, never a subclass's override.
  State: dead; not started (neither active nor dead); suspended (active, its
  saved top frame in ``gr_frame``); running (active, no saved frame: its
  frames are its thread's stack right now).
* A suspended greenlet's stack is its ``gr_frame`` and ``f_back`` chain (the
  frames greenlet keeps while it is switched out; what gevent's own
  ``format_run_info`` walks). A running greenlet's stack is its thread's.
* The greenlet's function: gevent's ``Greenlet._run`` from the instance dict
  (the spawned callable), else the callable greenlet keeps until it starts,
  else a ``run`` function of its class, else its outermost frame.
* A hub's thread is its ``thread_ident`` (instance dict); its loop is the
  ``loop`` attribute (a Cython ``public`` member of gevent's C greenlet
  primitives, listed in policy.GREENLET_GETSETS, or the instance dict in pure
  Python mode). The pending-callback count is reported only where it is
  plain data: libuv's loop keeps a ``deque`` in its instance dict; libev's
  (corecext) keeps a C FIFO whose length only its own code can compute.
"""
from __future__ import annotations

from . import frames, policy, static
from .census import (
    CHUNK,
    HOLD_SECONDS,
    MAX_OBJECTS_NO_CLOCK,
    _gc,
    _yielder,
    genuine_clock,
    loaded_module,
    no_clock,
)
from .errors import QueryError
from .snapshot import type_name

MAX_SECONDS = 10.0        # wall-clock budget of the heap walk
MAX_SECONDS_CAP = 120.0
MAX_GREENLETS = 2_000     # greenlets described (the count of all is reported)
MAX_STACK = 50            # frames per greenlet

_FUNCTION_QUALNAME = policy.FUNCTION.__dict__["__qualname__"].__get__
_METHOD_FUNC = policy.METHOD.__dict__["__func__"].__get__
_BUILTIN_NAME = policy.BUILTIN_FUNCTION.__dict__["__name__"].__get__


class _Env:
    """The target's greenlet type and gevent's Hub class, found statically."""

    def __init__(self, greenlet_type, hub_class):
        self.greenlet_type = greenlet_type
        self.hub_class = hub_class
        self.getsets = {}
        for name in ("dead", "gr_frame", "parent", "run"):
            desc = static.class_dict_get(greenlet_type, name, None)
            if policy.greenlet_getset_allowed(desc):
                self.getsets[name] = desc
        active = static.class_dict_get(greenlet_type, "__bool__", None)
        self.active = active if policy.greenlet_slot_allowed(greenlet_type, active) else None

    def read(self, name, obj, default=None):
        desc = self.getsets.get(name)
        if desc is None:
            return default
        try:
            return static.read_getset(desc, obj)
        except Exception:
            return default


def _namespace(name):
    module = loaded_module(name)
    return static.instance_dict(module) if module is not None else None


def _find_greenlet_type():
    for module in ("greenlet._greenlet", "greenlet"):
        namespace = _namespace(module)
        if namespace is None:
            continue
        cls = static.dict_get_str(namespace, "greenlet", None)
        if cls is not None and policy.c_type_name(cls) == "greenlet.greenlet":
            return cls
    return None


def _find_env():
    greenlet_type = _find_greenlet_type()
    if greenlet_type is None:
        return None
    hub_class = None
    hub_ns = _namespace("gevent.hub")
    if hub_ns is not None:
        candidate = static.dict_get_str(hub_ns, "Hub", None)
        if static.is_class(candidate) and static.is_subclass(candidate, greenlet_type):
            hub_class = candidate
    return _Env(greenlet_type, hub_class)


def _options(limits):
    if limits is None:
        return MAX_SECONDS
    if type(limits) is not dict:
        raise QueryError("ValueError", "limits must be an object")
    for key in list(limits):
        if key != "max_seconds":
            raise QueryError("ValueError", "unknown greenlets limit %r" % (key,))
    value = limits.get("max_seconds", MAX_SECONDS)
    kind = type(value)
    if not (kind is int or kind is float) or not 0 < value <= MAX_SECONDS_CAP:
        raise QueryError("ValueError", "max_seconds must be in (0, %g]" % MAX_SECONDS_CAP)
    return float(value)


def _walk(env, max_seconds):
    """([greenlet, ...], complete) from one chunked heap walk (like the census)."""
    gc = _gc()
    clock = genuine_clock() or no_clock
    offer_gil = _yielder()
    deadline = clock() + max_seconds
    verdicts = {}                         # id(type) -> (type, is a greenlet type)
    found = {}
    base = env.greenlet_type
    complete = True
    walked = 0
    for generation in (0, 1, 2):
        objects = gc.get_objects(generation)
        hold_start = clock()
        while objects:
            part = objects[-CHUNK:]
            del objects[-CHUNK:]
            for o in part:
                cls = type(o)
                verdict = verdicts.get(id(cls))
                if verdict is None:
                    verdict = verdicts[id(cls)] = (cls, static.is_subclass(cls, base))
                if verdict[1]:
                    found[id(o)] = o
            o = None
            walked += len(part)
            del part
            now = clock()
            if now > deadline or (clock is no_clock and walked >= MAX_OBJECTS_NO_CLOCK):
                complete = False
                break
            if now - hold_start >= HOLD_SECONDS or clock is no_clock:
                offer_gil()
                hold_start = clock()
        del objects
        if not complete:
            break
    verdicts = None
    greenlets = list(found.values())
    return greenlets, complete


def _callable_name(fn):
    kind = type(fn)
    if kind is policy.METHOD:
        fn = _METHOD_FUNC(fn)
        kind = type(fn)
    if kind is policy.FUNCTION:
        name = _FUNCTION_QUALNAME(fn)
        return name if type(name) is str else "?"
    if kind is policy.BUILTIN_FUNCTION:
        name = _BUILTIN_NAME(fn)
        return name if type(name) is str else "?"
    if fn is None:
        return None
    return type_name(kind)


def _function(env, greenlet, stack):
    """The greenlet's function: gevent's spawned callable (``_run``), the
    callable given to greenlet (its ``run`` getset: a C field, kept until
    the greenlet starts), a ``run`` method of its class, or else its
    outermost frame."""
    namespace = static.instance_dict(greenlet)
    if namespace is not None:
        for key in ("_run", "run"):
            fn = static.dict_get_str(namespace, key, None)
            if fn is not None:
                return _callable_name(fn)
    fn = env.read("run", greenlet)
    if fn is not None:
        return _callable_name(fn)
    run, _owner = static.find_in_mro(type(greenlet), "run")
    if type(run) is policy.FUNCTION:
        return _callable_name(run)
    if stack:
        return stack[-1]["qualname"]
    return None


def _state(env, greenlet, frame):
    if env.read("dead", greenlet) is True:
        return "dead"
    active = None
    if env.active is not None:
        try:
            active = env.active(greenlet)
        except Exception:
            active = None
    if active is not True:
        return "not started" if active is False else "?"
    return "suspended" if frame is not None else "running"


def _stack(frame):
    chain, cut = frames.frame_chain(frame, MAX_STACK)
    out = [frames.describe_frame(f, i) for i, f in enumerate(chain)]
    return out, cut


def _hub_info(env, hub, thread_names):
    namespace = static.instance_dict(hub)
    ident = static.dict_get_str(namespace, "thread_ident", None) if namespace is not None \
        else None
    ident = ident if type(ident) is int else None
    loop = _hub_loop(env, hub)
    return {
        "id": id(hub),
        "type": type_name(type(hub)),
        "thread": ident,
        "thread_name": thread_names.get(ident) if ident is not None else None,
        "loop_type": type_name(type(loop)) if loop is not None else None,
        "pending_callbacks": _pending_callbacks(loop),
    }


def _hub_loop(env, hub):
    try:
        kind, value = static.lookup(hub, "loop")
    except Exception:
        return None
    if kind == "value" or kind == "slot":
        return value
    if kind == "getset" and policy.greenlet_getset_allowed(value):
        try:
            return static.read_getset(value, hub)
        except Exception:
            return None
    return None


def _pending_callbacks(loop):
    """len(loop._callbacks) when it is a deque in the instance dict (libuv)."""
    if loop is None:
        return None
    namespace = static.instance_dict(loop)
    if namespace is None:
        return None
    callbacks = static.dict_get_str(namespace, "_callbacks", None)
    deque = policy.deque_type()
    if deque is not None and type(callbacks) is deque:
        return static.class_dict_get(deque, "__len__")(callbacks)
    if type(callbacks) is policy.LIST:
        return policy.LIST.__dict__["__len__"](callbacks)
    return None


def _thread_of(greenlet, hub_threads, parents, hub_parents):
    """The ident of the hub's thread that a greenlet belongs to, if known:
    its own (a hub), its nearest hub ancestor's, or (a main greenlet) the
    thread of the hub it is the parent of."""
    seen = set()
    g = greenlet
    while g is not None and id(g) not in seen and len(seen) < 1000:
        seen.add(id(g))
        if id(g) in hub_threads:
            return hub_threads[id(g)]
        g = parents.get(id(g))
    return hub_parents.get(id(greenlet))


def list_greenlets(agent_ident=None, limits=None):
    """{"greenlet": bool, "gevent": bool, "greenlets": [...], "hubs": [...], ...}."""
    max_seconds = _options(limits)
    env = _find_env()
    if env is None:
        return {"greenlet": False, "gevent": False, "greenlets": [], "hubs": [],
                "total": 0, "complete": True}
    greenlets, complete = _walk(env, max_seconds)
    thread_names = {t["ident"]: t["name"] for t in frames.list_threads(agent_ident)}
    hubs = []
    hub_threads = {}
    parents = {}
    for g in greenlets:
        parent = env.read("parent", g)
        parents[id(g)] = parent if parent is not None and \
            static.is_subclass(type(parent), env.greenlet_type) else None
        if env.hub_class is not None and static.is_subclass(type(g), env.hub_class):
            info = _hub_info(env, g, thread_names)
            hubs.append(info)
            if info["thread"] is not None:
                hub_threads[id(g)] = info["thread"]
    hub_parents = {id(parents[h]): t for h, t in hub_threads.items() if parents.get(h)}
    current = policy.sys_function("_current_frames")()
    rows = []
    running_by_thread = {}
    for g in greenlets[:MAX_GREENLETS]:
        frame = env.read("gr_frame", g)
        if type(frame) is not policy.FRAME:
            frame = None
        state = _state(env, g, frame)
        thread = _thread_of(g, hub_threads, parents, hub_parents)
        parent = parents.get(id(g))
        stack, cut = _stack(frame) if frame is not None else ([], False)
        row = {"id": id(g), "type": type_name(type(g)), "function": _function(env, g, stack),
               "state": state, "parent": id(parent) if parent is not None else None,
               "is_hub": env.hub_class is not None and static.is_subclass(type(g),
                                                                          env.hub_class),
               "is_main": parent is None,
               "thread": thread,
               "thread_name": thread_names.get(thread) if thread is not None else None,
               "frames": [], "frames_cut": False, "frames_from": None}
        if frame is not None:
            row["frames"], row["frames_cut"] = stack, cut
            row["frames_from"] = "gr_frame"
        elif state == "running" and thread is not None:
            running_by_thread.setdefault(thread, []).append(row)
        frame = parent = None
        rows.append(row)
    for thread, running in running_by_thread.items():
        top = current.get(thread)
        if len(running) == 1 and top is not None:
            running[0]["frames"], running[0]["frames_cut"] = _stack(top)
            running[0]["frames_from"] = "thread"
        top = None
    current = None
    return {"greenlet": True, "gevent": env.hub_class is not None, "greenlets": rows,
            "hubs": hubs, "total": len(greenlets), "complete": complete,
            "python": policy.python_version()}
