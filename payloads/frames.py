"""Threads and stacks of the target, read without running target code.

Sources: ``policy.sys_function("_current_frames")()`` (every thread with a Python thread state)
and, for names and daemon flags, the ``threading`` module's registry if the
target imported it, read statically (a Thread subclass's properties never
run). Frames are walked with the C-level ``f_back``/``f_code``/``f_lineno``
getters. Source lines are not read here: the client reads them from disk, so
the agent does no file I/O in the target.

Locals: on 3.13 ``frame.f_locals`` is a write-through proxy (PEP 667) and on
3.8-3.12 reading it refreshes the frame's locals dict; either way we copy it
into a plain dict at once and never hand out the original.
"""
from __future__ import annotations

from . import policy
from .errors import FrameGoneError, QueryError, ScopeError
from .static import getattr_static

MAX_FRAMES = 200  # per thread; deeper stacks are cut (and say so)


def _threading_registry():
    """{ident: Thread} from the target's threading module, read statically."""
    module = policy.module_get("threading")
    if module is None:
        return {}
    try:
        active = policy.str_key_get(policy.module_namespace(module), "_active")
    except Exception:
        return {}
    if type(active) is not dict:
        return {}
    try:
        return dict(active)  # atomic copy under the GIL
    except Exception:
        return {}


def _static_value(obj, name, default=None):
    try:
        value = getattr_static(obj, name)
    except Exception:
        return default
    return value


AGENT_FILENAME_PREFIX = "<inspector-agent"


def runs_agent_code(frame):
    """True if any frame of this stack is ours (an agent or its loader)."""
    while frame is not None:
        filename = frame.f_code.co_filename
        if type(filename) is str and filename.startswith(AGENT_FILENAME_PREFIX):
            return True
        frame = frame.f_back
    return False


def _thread_info(ident, thread_obj, main_ident, agent_ident, frame):
    name = None
    daemon = None
    native_id = None
    if thread_obj is not None:
        raw_name = _static_value(thread_obj, "_name")
        name = raw_name if type(raw_name) is str else None
        raw_daemon = _static_value(thread_obj, "_daemonic")
        daemon = raw_daemon if type(raw_daemon) is bool else None
        raw_native = _static_value(thread_obj, "_native_id")
        native_id = raw_native if type(raw_native) is int else None
    is_agent = ident == agent_ident or runs_agent_code(frame)
    if is_agent:
        name = "inspector-agent"
        daemon = True
        if ident == agent_ident:
            native_id = _agent_native_id()
    top = describe_frame(frame, 0) if frame is not None else None
    return {
        "ident": ident,
        "native_id": native_id,
        "name": name if name is not None else ("MainThread" if ident == main_ident else None),
        "daemon": daemon,
        "is_main": ident == main_ident,
        "is_agent": is_agent,
        "python_thread": thread_obj is not None,
        "top": top,
    }


def _agent_native_id():
    import _thread

    get = getattr(_thread, "get_native_id", None)
    return get() if get is not None else None


def _main_ident(frames=None):
    main_thread = None
    module = policy.module_get("threading")
    if module is not None:
        try:
            main_thread = policy.str_key_get(policy.module_namespace(module), "_main_thread")
        except Exception:
            main_thread = None
    ident = _static_value(main_thread, "_ident") if main_thread is not None else None
    if type(ident) is int:
        return ident
    # Without `threading` imported: 3.13 exposes the runtime's main thread;
    # before that, the main thread is the one whose outermost frame runs the
    # __main__ module (a script, -c) or runpy's _run_module_as_main (-m).
    import _thread

    getter = getattr(_thread, "_get_main_thread_ident", None)
    if getter is not None:
        try:
            ident = getter()
        except Exception:
            ident = None
        if type(ident) is int:
            return ident
    if frames is None:
        return None
    # (the agent's own thread runs stage 1 in __main__'s namespace too:
    # PyRun_SimpleString; it is recognised by its agent frames)
    found = [i for i, f in frames.items() if _runs_main_module(f) and not runs_agent_code(f)]
    return found[0] if len(found) == 1 else None


def _runs_main_module(frame):
    chain, cut = frame_chain(frame, 10000)
    if not chain or cut:
        return False
    code = chain[-1].f_code
    filename = code.co_filename
    if code.co_name == "_run_module_as_main":
        return type(filename) is str and filename.endswith("runpy.py")
    if code.co_name != "<module>":
        return False
    namespace = chain[-1].f_globals
    return type(namespace) is dict and dict.get(namespace, "__name__") == "__main__"


def list_threads(agent_ident):
    frames = policy.sys_function("_current_frames")()
    registry = _threading_registry()
    main_ident = _main_ident(frames)
    out = []
    for ident in sorted(frames, key=lambda i: (i != main_ident, i)):
        out.append(_thread_info(ident, registry.get(ident), main_ident, agent_ident,
                                frames[ident]))
    del frames
    return out


def describe_frame(frame, index):
    code = frame.f_code
    filename = code.co_filename
    return {
        "index": index,
        "function": code.co_name,
        "qualname": getattr(code, "co_qualname", code.co_name),
        "file": filename if type(filename) is str else "?",
        "line": frame.f_lineno,
        "first_line": code.co_firstlineno,
        "frame_id": frame_id(frame),
    }


def frame_id(frame):
    """Names one running call: stable while it runs (3.11+ keeps the frame
    object it made for a running frame), so a client can address *this*
    call rather than "frame #N", which is another function a moment later in
    a busy thread. The code object's id is part of it: a later call that
    reuses the frame's memory is the same only if it runs the same code."""
    return (id(frame) << 64) | id(frame.f_code)


def frame_chain(frame, limit=MAX_FRAMES):
    """Innermost first, as [frame0, frame1, ...], and whether it was cut."""
    chain = []
    while frame is not None and len(chain) < limit:
        chain.append(frame)
        frame = frame.f_back
    return chain, frame is not None


def find_thread(selector, agent_ident):
    """Resolve a thread selector (ident, native id or name) to an ident."""
    frames = policy.sys_function("_current_frames")()
    try:
        threads = list_threads(agent_ident)
        if type(selector) is int:
            if selector in frames:
                return selector
            for info in threads:
                if info["native_id"] == selector:
                    return info["ident"]
        elif type(selector) is str:
            matches = [t["ident"] for t in threads if t["name"] == selector]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise ScopeError("several threads are named %r; use an ident: %s"
                                 % (selector, ", ".join(str(i) for i in matches[:10])))
        raise ScopeError("no thread %r in the target; its threads are %s (a name, an "
                         "ident or a native id)" % (selector, _thread_names(threads)))
    finally:
        del frames


def _thread_names(threads):
    names = []
    for t in threads:
        if t["is_agent"]:
            continue
        name = t["name"]
        names.append(repr(name) if type(name) is str else str(t["ident"]))
    shown = ", ".join(names[:20])
    return shown + (" and %d more" % (len(names) - 20) if len(names) > 20 else "")


def thread_label(thread_ident, selector=None):
    """The thread by its name (as the caller wrote it when that was a name),
    with the number the caller gave, if any: `'worker-1'`, `'worker-1'
    (140615661206400)`, `140615661206400`."""
    if type(selector) is str:
        return repr(selector)
    name = None
    for t in list_threads(None):
        if t["ident"] == thread_ident and type(t["name"]) is str:
            name = t["name"]
    number = selector if selector is not None else thread_ident
    return "%r (%s)" % (name, number) if name is not None else str(number)


def get_frame(thread_ident, index, wanted=None, selector=None):
    """A thread's frame by index (0 = innermost), or - with `wanted`, a
    frame_id from an earlier stack read - that very call, wherever it is on
    the stack now. `selector` is the thread as the caller wrote it (for
    messages)."""
    frame = policy.sys_function("_current_frames")().get(thread_ident)
    if frame is None:
        raise ScopeError("thread %s has no Python frames now"
                         % thread_label(thread_ident, selector))
    chain, _cut = frame_chain(frame)
    if wanted is not None:  # a frame_id from an earlier stack read
        if type(wanted) is not int:
            raise QueryError("ValueError", "frame_id must be an integer")
        for candidate in chain:
            if frame_id(candidate) == wanted:
                return candidate
        raise FrameGoneError("that call has returned: it is no longer on thread %s's "
                             "stack (read the stack again)"
                             % thread_label(thread_ident, selector))
    if type(index) is not int or not 0 <= index < len(chain):
        listed = ", ".join("%d %s" % (i, f.f_code.co_name) for i, f in enumerate(chain[:10]))
        raise ScopeError("thread %s has no frame %r; its %d frames are %s%s (0 = innermost)"
                         % (thread_label(thread_ident, selector), index, len(chain), listed,
                            " ..." if len(chain) > 10 else ""))
    return chain[index]


def frame_locals(frame):
    """A plain dict copy of a frame's locals (never the live mapping)."""
    mapping = frame.f_locals
    if id(type(mapping)) not in policy.FRAME_LOCALS_TYPE_IDS:
        raise QueryError("TypeError", "this frame's locals are a %s (a class body's "
                         "namespace): not read, copying it would run its methods"
                         % type.__dict__["__name__"].__get__(type(mapping)))
    return dict(mapping)


def stacks(agent_ident, thread_ident=None, with_locals=None):
    """Every thread's stack (or one thread's). `with_locals(dict)->node` renders locals."""
    frames = policy.sys_function("_current_frames")()
    try:
        threads = list_threads(agent_ident)
        out = []
        for info in threads:
            ident = info["ident"]
            if thread_ident is not None and ident != thread_ident:
                continue
            if thread_ident is None and info["is_agent"]:
                continue
            chain, cut = frame_chain(frames.get(ident))
            described = []
            for i, f in enumerate(chain):
                entry = describe_frame(f, i)
                if with_locals is not None:
                    entry["locals"] = with_locals(frame_locals(f))
                described.append(entry)
            info = dict(info)
            info["frames"] = described
            info["frames_cut"] = cut
            out.append(info)
            del chain
        return out
    finally:
        del frames
