"""Keep the target's garbage collections off the agent's thread.

CPython starts a collection on whichever thread allocates past the
generation-0 threshold (3.12+: on the thread that next checks its eval
breaker, the same one), and runs every pending ``__del__`` and weakref
callback there. The agent allocates while it works, so without this guard
the target's finalizers would run on the agent thread, mid-query: target
code on our thread, able to stall the request or walk into our frames.

The decision (docs/DESIGN.md, "Collections during a request"): automatic
collection is switched off with ``gc.disable()`` - if, and only if, the
target had it on - from the loader's first step to its last, and switched
back on only while the agent waits for the client, around one blocking C
call (``recv(1, MSG_PEEK)``). Switching it back on right after each request
is not enough: the collection the hold deferred would start at the agent's
next allocation. ``hold()``/``release()`` allocate nothing GC-tracked, so the
deferred collection starts on a target thread.

* What the target can observe: ``gc.isenabled()`` is False while a request
  is answered (bounded by ``max_seconds``; collections stay on during a
  census). No garbage is lost, nothing is freed early.
* The one race: a target thread that itself calls ``gc.disable()`` while we
  hold gets collection switched on again when we release (``gc.enable()``
  cannot tell who disabled it). A target that calls ``gc.enable()`` shortens
  our protection; nothing worse.
* A target that keeps gc disabled is left alone (nothing to restore).
* Each guard re-enables only what it disabled. Two agents (or two resident
  sessions) each see the other's hold as "the target turned it off" and
  leave it alone: collection is never left off, at worst one session is
  unprotected for a while.
* A collection already scheduled before the hold (3.12+) may still run.

``gc`` is the target's module if it imported it and its functions are the C
ones; else a private instance (``_imp.create_builtin``: no import hook,
nothing left in ``sys.modules``). The state it switches is per interpreter
either way.
"""
from __future__ import annotations

import sys

# Self-contained on purpose: the loader loads this module first, before the
# big ones, so that collections are held off while the rest compiles.
_TYPE = (0).__class__.__class__
_DICT_GET = {}.__class__.__dict__["get"]
_DICT_POP = {}.__class__.__dict__["pop"]
_BUILTIN_FUNCTION = [].append.__class__
_BUILTIN_SELF = _BUILTIN_FUNCTION.__dict__["__self__"].__get__
_BUILTIN_NAME = _BUILTIN_FUNCTION.__dict__["__name__"].__get__
_HEAPTYPE = 1 << 9


def _module_type():
    flags = _TYPE.__dict__["__flags__"].__get__
    for cls in _TYPE.__dict__["__mro__"].__get__(_TYPE(sys)):
        if not flags(cls) & _HEAPTYPE:
            return cls
    return None


_MODULE = _module_type()
_MODULE_DICT = _MODULE.__dict__["__dict__"].__get__


def _function(module, name: str):
    """module.<name> if it is a C function of a module named like `module`."""
    if _TYPE(module) is not _MODULE:
        return None
    fn = _DICT_GET(_MODULE_DICT(module), name)
    if _TYPE(fn) is not _BUILTIN_FUNCTION or _BUILTIN_NAME(fn) != name:
        return None
    owner = _BUILTIN_SELF(fn)
    if owner is module:
        return fn
    if _TYPE(owner) is _MODULE and _module_name(owner) == _module_name(module):
        return fn     # 3.8/3.9 re-created single-phase module: shared functions
    return None


def _module_name(module):
    name = _DICT_GET(_MODULE_DICT(module), "__name__")
    return name if _TYPE(name) is "".__class__ else None


class _Spec:
    """The one attribute `_imp.create_builtin` reads from a module spec."""

    def __init__(self, name: str) -> None:
        self.name = name


def _gc_module():
    """The target's gc if it imported it (with C functions), else a private
    instance from `_imp.create_builtin` (no import hook, not left in
    sys.modules). Collection state is per interpreter either way."""
    modules = _DICT_GET(_MODULE_DICT(sys), "modules")
    if _TYPE(modules) is not {}.__class__:
        return None
    gc = _DICT_GET(modules, "gc")
    if gc is not None and _function(gc, "disable") is not None and \
            _function(gc, "enable") is not None and _function(gc, "isenabled") is not None:
        return gc
    imp = _DICT_GET(modules, "_imp")
    create = _function(imp, "create_builtin")
    execute = _function(imp, "exec_builtin")
    if create is None or execute is None:
        return None
    had = _DICT_GET(modules, "gc") is not None
    module = create(_Spec("gc"))
    if not had and _DICT_GET(modules, "gc") is module:
        _DICT_POP(modules, "gc", None)
    execute(module)
    return module


def _gc_functions():
    """(isenabled, disable, enable), the genuine C functions, or None."""
    try:
        gc = _gc_module()
    except Exception:
        return None
    if gc is None:
        return None
    fns = (_function(gc, "isenabled"), _function(gc, "disable"), _function(gc, "enable"))
    if fns[0] is None or fns[1] is None or fns[2] is None:
        return None
    return fns


class Guard:
    """One session's switch. `hold()` and `release()` allocate no tracked
    object (they only call the cached C functions), so switching collections
    back on cannot itself start one on this thread."""

    # No __slots__: the loader calls the bound release() after it emptied our
    # classes (loader._empty_classes), when only the instance dict remains.

    def __init__(self) -> None:
        self.fns = _gc_functions()
        self.off = False

    def hold(self) -> None:
        """Switch automatic collection off if the target has it on."""
        fns = self.fns
        if fns is not None and not self.off and fns[0]() is True:
            fns[1]()
            self.off = True

    def release(self) -> None:
        """Switch it back on if this guard switched it off."""
        if self.off:
            self.off = False
            self.fns[2]()
