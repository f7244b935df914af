"""asyncio event loops and tasks of the target, read without calling into any loop.

Where the tasks live (CPython 3.8-3.13; 3.14 moved them into per-thread
linked lists):

* 3.8-3.11: ``asyncio.tasks._all_tasks``, a ``WeakSet`` (the C ``_asyncio``
  module exports its own as ``_asyncio._all_tasks`` and ``asyncio.tasks``
  rebinds the name to it);
* 3.12-3.13: ``asyncio.tasks._scheduled_tasks`` (a ``WeakSet``) plus
  ``asyncio.tasks._eager_tasks`` (a plain ``set``; eager tasks, PEP-less
  3.12 feature, are held strongly while they run eagerly);
* the task running right now in each loop: ``asyncio.tasks._current_tasks``,
  a dict ``{loop: task}`` on every version.

How they are read: the module dicts statically; a WeakSet's ``.data`` (a set
of weak references) copied in one C call and each reference dereferenced by
calling it (C) only if it is exactly ``_weakref.ref``. Never ``WeakSet.__iter__``
(Python code that mutates ``_iterating`` and may run ``_commit_removals``),
never ``asyncio.all_tasks()``, ``Task.get_stack()``, ``repr(task)`` or
anything on the loop. Task fields come from the instance dict (pure-Python
``Task``) or from the C getsets of ``_asyncio.Future``/``_asyncio.Task``
(``_state``, ``_coro``, ``_loop``, ``_fut_waiter``, ``_callbacks``), read
only when the getset really belongs to those C types. The C task's name has
no getset: we call ``_asyncio.Task.get_name`` (the C method, never a
subclass override); on 3.12+ that formats a lazily numbered name
("Task-7") and caches the string in the task, the one write this module
makes (the name the task would report anyway).

The await chain of a task: its coroutine, then ``cr_await`` (for generator-
based coroutines ``gi_yieldfrom``) link by link to the innermost awaitable,
each coroutine with its qualname and its suspended frame's file and line. A
coroutine that is running right now (``cr_running``: its loop thread is in a
C call with the GIL released) is not descended into.

Which task waits on which: a task's ``_fut_waiter`` may be another task, or
a ``gather()`` future whose ``_children`` are tasks; a ``TaskGroup`` (3.11+)
child carries the group's ``_on_task_done`` callback, and the group knows its
``_parent_task``. These become each task's ``awaiting`` list, from which the
client draws a tree like CPython 3.14's ``python -m asyncio pstree``.

Which thread runs each loop, for every loop implementation (uvloop keeps
its thread and running flag in C): ``loop_threads`` below, and
docs/DESIGN.md, "Real services".
"""
from __future__ import annotations

from . import frames, policy, static
from .census import genuine_clock, loaded_module, no_clock
from .snapshot import type_name

MAX_TASKS = 10_000     # tasks reported at most
MAX_CHAIN = 64         # links of one await chain
MAX_AWAITING = 1_000   # children of one gather() reported
MAX_SECONDS = 5.0      # wall-clock budget; past it the answer is marked truncated

_COROUTINE = policy.COROUTINE
_GENERATOR = policy.GENERATOR
_CR_AWAIT = _COROUTINE.__dict__["cr_await"].__get__
_CR_FRAME = _COROUTINE.__dict__["cr_frame"].__get__
_CR_RUNNING = _COROUTINE.__dict__["cr_running"].__get__
_CR_CODE = _COROUTINE.__dict__["cr_code"].__get__
_CR_QUALNAME = _COROUTINE.__dict__["__qualname__"].__get__
_GI_YIELDFROM = _GENERATOR.__dict__["gi_yieldfrom"].__get__
_GI_FRAME = _GENERATOR.__dict__["gi_frame"].__get__
_GI_RUNNING = _GENERATOR.__dict__["gi_running"].__get__
_GI_CODE = _GENERATOR.__dict__["gi_code"].__get__
_GI_QUALNAME = _GENERATOR.__dict__["__qualname__"].__get__
_FRAME_LINENO = policy.FRAME.__dict__["f_lineno"].__get__
_CODE_FILENAME = policy.CODE.__dict__["co_filename"].__get__
_CODE_FIRSTLINE = policy.CODE.__dict__["co_firstlineno"].__get__
_METHOD_SELF = policy.METHOD.__dict__["__self__"].__get__
_METHOD_FUNC = policy.METHOD.__dict__["__func__"].__get__
_FUNCTION_QUALNAME = policy.FUNCTION.__dict__["__qualname__"].__get__
_DICT_ITEMS = policy.DICT.__dict__["items"]
_GENERIC_GETATTR = policy.OBJECT.__dict__["__getattribute__"]

_STATES = {"PENDING": "pending", "CANCELLED": "cancelled", "FINISHED": "done"}


class _Asyncio:
    """What this module needs from the target's asyncio, found statically."""

    def __init__(self, tasks_ns, c_types, py_task, ref_type, group_on_done):
        self.tasks_ns = tasks_ns
        self.c_types = c_types            # (_asyncio.Future, _asyncio.Task) or ()
        self.py_task = py_task            # asyncio.tasks._PyTask (pure Python) or None
        self.ref_type = ref_type          # _weakref.ref
        self.c_task = c_types[1] if c_types else None
        self.group_on_done = group_on_done  # TaskGroup._on_task_done function or None


def _module_ns(name):
    module = loaded_module(name)
    return static.instance_dict(module) if module is not None else None


def _c_type(namespace, name):
    value = static.dict_get_str(namespace, name, None) if namespace is not None else None
    if type(value) is policy.TYPE and policy.is_c_type(value):
        return value
    return None


def _find_asyncio():
    """None when the target never imported asyncio (nothing is imported here)."""
    tasks_ns = _module_ns("asyncio.tasks")
    if tasks_ns is None:
        return None
    c_ns = _module_ns("_asyncio")
    c_future, c_task = _c_type(c_ns, "Future"), _c_type(c_ns, "Task")
    c_types = (c_future, c_task) if c_future is not None and c_task is not None else ()
    py_task = static.dict_get_str(tasks_ns, "_PyTask", None)
    if not static.is_class(py_task):
        py_task = None
    ref_type = _c_type(_module_ns("_weakref"), "ref")
    group_on_done = None
    groups_ns = _module_ns("asyncio.taskgroups")
    if groups_ns is not None:
        group = static.dict_get_str(groups_ns, "TaskGroup", None)
        if static.is_class(group):
            fn = static.class_dict_get(group, "_on_task_done", None)
            group_on_done = fn if type(fn) is policy.FUNCTION else None
    return _Asyncio(tasks_ns, c_types, py_task, ref_type, group_on_done)


def _field(env, obj, name, default=None):
    """obj.name from the instance dict, or from a C getset of _asyncio's types."""
    try:
        kind, value = static.lookup(obj, name)
    except Exception:
        return default
    if kind == "value" or kind == "slot":
        return value
    if kind == "getset":
        owner = static.getset_owner(value)
        for c_type in env.c_types:
            if owner is c_type:
                try:
                    return static.read_getset(value, obj)
                except Exception:
                    return default
    if kind == "missing" and env.c_types:
        return _future_dict_attr(env, obj, name, default)
    return default


def _future_dict_attr(env, obj, name, default):
    """An instance attribute of a Python subclass of _asyncio.Future/Task.

    The C future keeps its instance dict at ``tp_dictoffset`` but defines no
    ``__dict__`` descriptor, so ``static.instance_dict`` cannot see it (e.g.
    ``_GatheringFuture._children``). ``object.__getattribute__`` reads that
    dict in C; it would run code only for a descriptor of that name on the
    class (checked absent here) and never calls ``__getattr__``.
    """
    cls = type(obj)
    if not any(static.is_subclass(cls, c_type) for c_type in env.c_types):
        return default
    if static.find_in_mro(cls, name)[0] is not static.MISSING:
        return default
    try:
        return _GENERIC_GETATTR(obj, name)
    except Exception:
        return default


def _is_task(env, obj) -> bool:
    for klass in static.mro(type(obj)):
        if klass is env.c_task or (env.py_task is not None and klass is env.py_task):
            return True
    return False


def _task_name(env, task):
    name = _field(env, task, "_name")
    if type(name) is str:
        return name
    if env.c_task is not None and static.is_subclass(type(task), env.c_task):
        get_name = static.class_dict_get(env.c_task, "get_name", None)
        if type(get_name) is policy.METHOD_DESCRIPTOR:
            try:
                name = get_name(task)
            except Exception:
                return None
            return name if type(name) is str else None
    return None


def _all_task_objects(env):
    """{id: task} from the registries (see module doc), without iterating WeakSets."""
    found = {}
    ns = env.tasks_ns
    for registry in ("_all_tasks", "_scheduled_tasks"):
        weakset = static.dict_get_str(ns, registry, None)
        if weakset is None:
            continue
        data = static.getattr_static(weakset, "data", None)
        if type(data) is not policy.SET:
            continue
        for ref in list(data):             # one C call: a consistent copy
            if env.ref_type is None or type(ref) is not env.ref_type:
                continue
            task = ref()                   # C: the referent or None
            if task is not None:
                found[id(task)] = task
    eager = static.dict_get_str(ns, "_eager_tasks", None)
    if type(eager) is policy.SET:
        for task in list(eager):
            found[id(task)] = task
    return found


def _current_tasks(env):
    """{id(loop): task} of the task each loop is running right now."""
    current = static.dict_get_str(env.tasks_ns, "_current_tasks", None)
    if type(current) is not policy.DICT:
        return {}
    return {id(loop): task for loop, task in list(_DICT_ITEMS(current))}


def _location(code, frame):
    try:
        filename = _CODE_FILENAME(code)
        line = _FRAME_LINENO(frame) if frame is not None else _CODE_FIRSTLINE(code)
    except Exception:
        return "?", 0
    return (filename if type(filename) is str else "?"), (line if type(line) is int else 0)


def await_chain(coro, limit=MAX_CHAIN):
    """[link, ...] from the task's coroutine to the innermost awaitable."""
    chain = []
    seen = set()
    obj = coro
    while obj is not None and len(chain) < limit and id(obj) not in seen:
        seen.add(id(obj))
        kind = type(obj)
        if kind is _COROUTINE or kind is _GENERATOR:
            is_coro = kind is _COROUTINE
            frame = (_CR_FRAME if is_coro else _GI_FRAME)(obj)
            running = (_CR_RUNNING if is_coro else _GI_RUNNING)(obj) is True
            qualname = (_CR_QUALNAME if is_coro else _GI_QUALNAME)(obj)
            filename, line = _location((_CR_CODE if is_coro else _GI_CODE)(obj), frame)
            chain.append({"kind": "coroutine" if is_coro else "generator",
                          "qualname": qualname if type(qualname) is str else "?",
                          "file": filename, "line": line, "running": running,
                          "finished": frame is None})
            nxt = None
            if frame is not None and not running:
                nxt = (_CR_AWAIT if is_coro else _GI_YIELDFROM)(obj)
            del frame
            obj = nxt
        else:
            chain.append({"kind": "awaitable", "type": type_name(kind), "id": id(obj)})
            obj = None
    if obj is not None and len(chain) >= limit:
        chain.append({"kind": "cut", "type": "", "id": 0})
    return chain


def _awaiting(env, task, waiter):
    """Ids of the tasks `task` waits on through its _fut_waiter (task or gather)."""
    if waiter is None:
        return []
    if _is_task(env, waiter):
        return [id(waiter)]
    children = _field(env, waiter, "_children")
    if type(children) is policy.LIST:
        return [id(c) for c in list(children)[:MAX_AWAITING] if _is_task(env, c)]
    return []


def _group_parent(env, task):
    """The parent task of a TaskGroup child (3.11+), found via its done callback."""
    if env.group_on_done is None:
        return None
    callbacks = _field(env, task, "_callbacks")
    if type(callbacks) is not policy.LIST:
        return None
    for entry in list(callbacks):
        callback = entry[0] if type(entry) is policy.TUPLE and entry else entry
        if type(callback) is not policy.METHOD:
            continue
        if _METHOD_FUNC(callback) is not env.group_on_done:
            continue
        parent = _field(env, _METHOD_SELF(callback), "_parent_task")
        if parent is not None and _is_task(env, parent):
            return parent
    return None


def _describe_waiter(env, waiter):
    if waiter is None:
        return None
    return {"type": type_name(type(waiter)), "id": id(waiter),
            "is_task": _is_task(env, waiter)}


def describe_task(env, task, current_ids):
    state = _field(env, task, "_state")
    loop = _field(env, task, "_loop")
    waiter = _field(env, task, "_fut_waiter")
    exception = _field(env, task, "_exception") if state == "FINISHED" else None
    return {
        "id": id(task),
        "name": _task_name(env, task),
        "type": type_name(type(task)),
        "state": _STATES.get(state, "?") if type(state) is str else "?",
        "loop": id(loop) if loop is not None else None,
        "current": current_ids.get(id(loop)) == id(task),
        "exception": type_name(type(exception)) if exception is not None else None,
        "chain": await_chain(_field(env, task, "_coro")),
        "waiter": _describe_waiter(env, waiter),
        "awaiting": _awaiting(env, task, waiter),
    }


# How a loop is found running, and on which thread (docs/DESIGN.md, "Which
# thread runs an event loop"): asyncio's own answer, the per-thread running
# loop, is C state out of static reach on most versions (3.8-3.11: a
# non-gc _RunningLoopHolder in the thread state's dict, which stays
# untracked; 3.13: a field of the C thread state); so the loop's own
# _thread_id (pure-Python loops), else the thread running its current task,
# else the thread whose stack is inside a call of its run_forever /
# run_until_complete (uvloop's are C: no frame of their own).
_RUN_NAMES = ("run_forever", "run_until_complete")
_CO_GENERATOR_FLAGS = 0x20 | 0x80 | 0x100 | 0x200   # generator, coroutine, iterable
                                                     # coroutine, async generator
_CODE_NAMES = policy.CODE.__dict__["co_names"].__get__
_CODE_NAME = policy.CODE.__dict__["co_name"].__get__
_CODE_FLAGS = policy.CODE.__dict__["co_flags"].__get__
_FRAME_CODE = policy.FRAME.__dict__["f_code"].__get__


def _thread_chains(agent_ident):
    """{ident: [frame, ...] innermost first} of every thread but the agents'."""
    out = {}
    for ident, frame in list(policy.sys_function("_current_frames")().items()):
        if ident == agent_ident or frames.runs_agent_code(frame):
            continue
        out[ident] = frames.frame_chain(frame)[0]
    return out


def _names_a_run_call(code):
    names = _CODE_NAMES(code)
    if type(names) is not policy.TUPLE:
        return False
    for name in names:
        if type(name) is policy.STR and (name == _RUN_NAMES[0] or name == _RUN_NAMES[1]):
            return True
    return False


def _refers_to(value, loop):
    """value is the loop, or an object whose own `_loop` attribute is (asyncio.Runner)."""
    if value is loop:
        return True
    if static.is_class(value):
        return False
    namespace = static.instance_dict(value)
    return namespace is not None and static.dict_get_str(namespace, "_loop", None) is loop


def _inside_run_call(chain, index, loop):
    """Whether chain[index] is in a call of loop.run_*() right now:

    "own": the frame is a (Python) run_forever/run_until_complete whose
    `self` is the loop; "caller": the frame's code calls a run_* name, a
    local refers to the loop, and the thread is in that call (the frame is
    the innermost, or the next inner one is a coroutine or generator - a
    task step of the loop - or a run_* method); else None."""
    frame = chain[index]
    code = _FRAME_CODE(frame)
    name = _CODE_NAME(code)
    if type(name) is policy.STR and (name == _RUN_NAMES[0] or name == _RUN_NAMES[1]):
        try:
            local_self = frames.frame_locals(frame).get("self")
        except Exception:
            return None
        return "own" if local_self is loop else None
    if not _names_a_run_call(code):
        return None
    if index > 0:
        inner = _CODE_FLAGS(_FRAME_CODE(chain[index - 1]))
        inner_name = _CODE_NAME(_FRAME_CODE(chain[index - 1]))
        if not (type(inner) is int and inner & _CO_GENERATOR_FLAGS) and not (
                type(inner_name) is policy.STR and inner_name in _RUN_NAMES):
            return None
    try:
        values = list(frames.frame_locals(frame).values())
    except Exception:
        return None
    for value in values:
        if _refers_to(value, loop):
            return "caller"
    return None


def _running_frame_thread(chains, frame):
    for ident, chain in chains.items():
        for candidate in chain:
            if candidate is frame:
                return ident
    return None


def _exact_thread(env, loop, chains, current_tasks):
    """(thread ident or None, how, running) when the loop says, or its
    current task shows, where it runs; None when only its stack can tell."""
    try:
        kind, thread_id = static.lookup(loop, "_thread_id")
    except Exception:
        kind, thread_id = "missing", None
    if kind == "value" and type(thread_id) is int:
        return thread_id, "loop._thread_id", True
    task = current_tasks.get(id(loop))
    if task is not None:
        coro = _field(env, task, "_coro")
        frame = _CR_FRAME(coro) if type(coro) is _COROUTINE else None
        ident = _running_frame_thread(chains, frame) if frame is not None else None
        del frame
        if ident is not None:
            return ident, "current task", True
    if kind == "value" and thread_id is None:
        return None, None, False       # a pure-Python loop that is not running
    return None


def _stack_threads(chains, loop):
    """{ident: "own"|"caller"} of the threads whose stack is inside a call of
    the loop's run methods (the strongest evidence per thread)."""
    found = {}
    for ident, chain in chains.items():
        for index in range(len(chain)):
            kind = _inside_run_call(chain, index, loop)
            if kind == "own" or (kind == "caller" and ident not in found):
                found[ident] = kind
            if kind == "own":
                break
    return found


def _place(placed, unplaced, candidates, strength):
    """Give each unplaced loop the one thread that only it claims with
    evidence of this strength, among the threads no loop holds yet."""
    taken = {where[0] for where in placed.values() if where[0] is not None}
    claims = {}
    for loop in unplaced:
        for ident, kind in candidates[id(loop)].items():
            if kind == strength and ident not in taken:
                claims[ident] = claims.get(ident, 0) + 1
    for loop in list(unplaced):
        idents = [i for i, kind in candidates[id(loop)].items()
                  if kind == strength and claims.get(i) == 1]
        if len(idents) == 1:
            placed[id(loop)] = (idents[0], "stack", True)
            unplaced.remove(loop)


def loop_threads(env, loops, chains, current_tasks):
    """{id(loop): (thread ident or None, how it was found, running: True/False/None)}.

    A thread runs one loop at a time (asyncio refuses to run a loop in a
    thread that is running one): a thread placed exactly is not offered to
    the loops found by their stack, a loop's own run frame outranks a caller
    holding it in a local, and a thread two loops claim alike is given to
    neither."""
    placed = {}
    unplaced = []
    for loop in loops:
        exact = _exact_thread(env, loop, chains, current_tasks)
        if exact is None:
            unplaced.append(loop)
        else:
            placed[id(loop)] = exact
    candidates = {id(loop): _stack_threads(chains, loop) for loop in unplaced}
    _place(placed, unplaced, candidates, "own")
    _place(placed, unplaced, candidates, "caller")
    for loop in unplaced:
        placed[id(loop)] = (None, None, None)
    return placed


def _loop_closed(loop):
    closed = static.getattr_static(loop, "_closed", None)
    if type(closed) is bool:
        return closed
    if type(closed) is policy.GETSET_DESCRIPTOR and policy.loop_getset_allowed(closed):
        try:
            closed = static.read_getset(closed, loop)
        except Exception:
            return None
        return closed if type(closed) is bool else None
    return None


def describe_loop(loop, where, current_ids, thread_names):
    thread_id, how, running = where
    closed = _loop_closed(loop)
    if closed is True:
        running = False
    return {
        "id": id(loop),
        "type": type_name(type(loop)),
        "thread": thread_id,
        "thread_name": thread_names.get(thread_id) if thread_id is not None else None,
        "thread_found_by": how,
        "running": running,
        "closed": closed,
        "current_task": current_ids.get(id(loop)),
    }


def list_tasks(agent_ident=None, max_seconds=MAX_SECONDS):
    """{"loops": [...], "tasks": [...], "truncated": bool, "asyncio": bool}."""
    env = _find_asyncio()
    if env is None:
        return {"asyncio": False, "loops": [], "tasks": [], "truncated": False}
    clock = genuine_clock() or no_clock
    deadline = clock() + max_seconds
    found = _all_task_objects(env)
    current_tasks = _current_tasks(env)
    current_ids = {key: id(task) for key, task in current_tasks.items()}
    tasks = []
    loops = {}
    truncated = False
    parents = {}
    for task in list(found.values()):
        if len(tasks) >= MAX_TASKS or clock() > deadline:
            truncated = True
            break
        info = describe_task(env, task, current_ids)
        tasks.append(info)
        loop = _field(env, task, "_loop")
        if loop is not None and id(loop) not in loops:
            loops[id(loop)] = loop
        parent = _group_parent(env, task)
        if parent is not None:
            parents[id(task)] = id(parent)
    found = None
    by_id = {t["id"]: t for t in tasks}
    for child, parent in parents.items():
        owner = by_id.get(parent)
        if owner is not None and child not in owner["awaiting"]:
            owner["awaiting"].append(child)
    names = {}
    for info in frames.list_threads(agent_ident):
        names[info["ident"]] = info["name"]
    chains = _thread_chains(agent_ident)
    where = loop_threads(env, list(loops.values()), chains, current_tasks)
    loop_rows = [describe_loop(loop, where[id(loop)], current_ids, names)
                 for loop in list(loops.values())]
    chains = current_tasks = None
    return {"asyncio": True, "loops": loop_rows, "tasks": tasks, "truncated": truncated,
            "python": policy.python_version()}
