"""Genuine C modules and functions of the target, found without importing.

``builtin_module("gc", probe)`` is the target's own module when it imported
it and its functions are still the C ones; else a private instance made by
``_imp.create_builtin`` (no import hook runs, nothing is left in
``sys.modules``). Used by the census, the tasks reader and the collection
guard (gcguard.py).
"""
from __future__ import annotations

from . import policy, static
from .errors import QueryError

_BUILTIN_NAME = policy.BUILTIN_FUNCTION.__dict__["__name__"].__get__
_BUILTIN_SELF = policy.BUILTIN_FUNCTION.__dict__["__self__"].__get__


# ---------------------------------------------------------------------------
# Genuine C modules and functions
# ---------------------------------------------------------------------------
class _Spec:
    """The one attribute `_imp.create_builtin` reads from a module spec."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


def _module_name(module):
    """The module's __name__ if it is an exact str (no subclass __eq__ runs)."""
    namespace = static.instance_dict(module)
    name = static.dict_get_str(namespace, "__name__", None) if namespace is not None else None
    return name if type(name) is policy.STR else None


def genuine(module, name: str):
    """module.name if it is that module's C function, else None.

    The function's ``__self__`` must be a module of the same name: not always
    `module` itself, since a single-phase C module created again (3.8/3.9)
    gets a copy of the first instance's dict, functions included.
    """
    if type(module) is not policy.MODULE:
        return None
    namespace = static.instance_dict(module)
    if namespace is None:
        return None
    fn = static.dict_get_str(namespace, name, None)
    if type(fn) is not policy.BUILTIN_FUNCTION or _BUILTIN_NAME(fn) != name:
        return None
    owner = _BUILTIN_SELF(fn)
    if owner is module:
        return fn
    if type(owner) is policy.MODULE and _module_name(owner) == _module_name(module):
        return fn
    return None


def loaded_module(name: str):
    """sys.modules[name] if it is a real module object, else None (never imports)."""
    module = static.dict_get_str(policy.sys_modules(), name, None)
    return module if type(module) is policy.MODULE else None


_BUILTIN_CACHE: dict = {}


def builtin_module(name: str, probe: str):
    """A C builtin module without running import hooks or leaving a trace.

    The target's own module object when it imported it (checked by `probe`,
    one of its functions); otherwise a fresh instance made by
    `_imp.create_builtin` (C: no sys.meta_path finder runs). CPython 3.8/3.9
    register single-phase modules in sys.modules while creating them; that
    entry is removed again in the same GIL hold.
    """
    module = loaded_module(name)
    if module is not None and genuine(module, probe) is not None:
        return module
    cached = _BUILTIN_CACHE.get(name)
    if cached is not None:
        return cached
    imp = loaded_module("_imp")
    create = genuine(imp, "create_builtin") if imp is not None else None
    execute = genuine(imp, "exec_builtin") if imp is not None else None
    if create is None or execute is None:
        raise QueryError("RuntimeError", "the target's _imp module is not genuine; "
                         "cannot load %s without running import hooks" % name)
    had = static.dict_get_str(policy.sys_modules(), name, static.MISSING) is not static.MISSING
    module = create(_Spec(name))
    if not had and static.dict_get_str(policy.sys_modules(), name, None) is module:
        policy.DICT.__dict__["pop"](policy.sys_modules(), name, None)
    if type(module) is not policy.MODULE or genuine(module, probe) is None:
        raise QueryError("RuntimeError", "could not load the builtin module %s" % name)
    execute(module)
    _BUILTIN_CACHE[name] = module
    return module
