"""First code of the boot file: find the target's *original* builtins, then run
the loader with them.

A target may rebind any builtin (``builtins.len = my_len``, ``builtins.repr =
...``, even ``type`` or ``__build_class__``). Code that looks such a name up
would then call the target's object, or fail. So the agent never uses the
live builtins:

- this prelude uses no builtin *name* at all: only literals, attribute access
  on built-in types, operators and the ``__builtins__`` global the first stage
  gives it (the builtins module);
- it keeps every live builtin that is still CPython's own (a builtin function
  of the builtins module under its own name, or a static type);
- for any other (replaced or deleted), it takes the original from the copy of
  the builtins dict CPython makes at start-up (``interp->builtins_copy``,
  and on 3.8-3.11 the module's ``m_copy``), found with ``gc.get_referrers``
  on a builtin that is still genuine. ``gc`` comes from the C-level import
  machinery (``_imp.create_builtin``), never from an import hook;
- the loader is then compiled and executed with that clean dict as its
  ``__builtins__``, and gives the same dict (plus its private ``__import__``)
  to every payload module.

Cost: nothing when no builtin is replaced; one ``gc.get_referrers`` pass
otherwise (20-50 ms per million tracked objects, GIL held). A copy moved out of
gc's reach by ``gc.freeze()`` cannot be found: the names it would have
restored stay absent and the loader reports which.

Must stay valid on CPython 3.8 and define no class (``class`` calls
``__build_class__``, a builtin).
"""

_TYPE = ().__class__.__class__
_DICT = {}.__class__
_BUILTIN_FUNCTION = _TYPE([].append)
_HEAPTYPE = 1 << 9
_ALIASES = {"EnvironmentError": "OSError", "IOError": "OSError"}
_NOT_IMPLEMENTED = (0).__eq__("")  # NotImplemented, without its (rebindable) name
_CONSTANTS = {"None": None, "Ellipsis": ..., "NotImplemented": _NOT_IMPLEMENTED,
              "False": False, "True": True}
# Names whose loss the agent would feel even if nothing was *replaced* (deleted).
_NEEDED = ("len", "repr", "isinstance", "getattr", "type", "compile", "exec", "__import__",
           "__build_class__", "iter", "next", "id", "hasattr", "setattr", "min", "max", "sum")


def _type_name(obj):
    return _TYPE.__dict__["__name__"].__get__(obj)


def _genuine(name, value, module):
    """Is `value` CPython's own builtin `name` (not the target's stand-in)?"""
    kind = _TYPE(value)
    if kind is _BUILTIN_FUNCTION:
        if value.__name__ != name:
            return False
        owner = value.__self__
        if owner is module:
            return True
        # builtins.open is io.open, a function of the C module _io
        return name == "open" and _TYPE(owner) is _TYPE(module) and \
            owner.__dict__.get("__name__") in ("_io", "io")
    if kind is _TYPE:
        if _TYPE.__dict__["__flags__"].__get__(value) & _HEAPTYPE:
            # ExceptionGroup (3.11+) is made at start-up as a heap type
            return name == "ExceptionGroup" and _type_name(value) == name and \
                _TYPE.__dict__["__dict__"].__get__(value).get("__module__") == "builtins"
        return _type_name(value) == _DICT.get(_ALIASES, name, name)
    return False


def _frozen_globals(obj):
    """The globals of importlib's frozen _bootstrap (sys, _imp), from the
    class BuiltinImporter found among object's subclasses (no name lookup)."""
    for cls in _TYPE.__dict__["__subclasses__"](obj):
        if _type_name(cls) != "BuiltinImporter":
            continue
        attrs = _TYPE.__dict__["__dict__"].__get__(cls)
        if attrs.get("__module__") != "_frozen_importlib":
            continue
        method = attrs.get("find_spec")
        func = getattr_free(method, "__func__")
        if func is not None:
            return func.__globals__
    return None


def getattr_free(obj, name):
    """obj.name for a classmethod/staticmethod object, or None."""
    kind = _TYPE(obj)
    descriptor = _TYPE.__dict__["__dict__"].__get__(kind).get(name)
    if descriptor is None:
        return None
    return descriptor.__get__(obj, kind)


def _gc_module(frozen):
    """The C module gc (see _c_builtin)."""
    return _c_builtin(frozen, "gc", "get_referrers")


def _startup_copy(live, module, anchor):
    """The dict CPython copied the builtins into at start-up, or None."""
    frozen = _frozen_globals(_TYPE.__mro__.__getitem__(-1))
    if frozen is None:
        return None
    gc = _gc_module(frozen)
    best = None
    best_score = 0
    for ref in gc.get_referrers(anchor):
        if _TYPE(ref) is not _DICT or ref is live or "__build_class__" not in ref:
            continue
        score = 0
        for name, value in _DICT.items(ref):
            if _TYPE(name) is _TYPE("") and _genuine(name, value, module):
                score += 1
        if score > best_score:
            best, best_score = ref, score
    return best


def _interesting(name, value):
    """Would a non-genuine `value` under `name` be a replaced builtin? (Not
    the module's own dunders, `_`, or site's exit/help/... objects.)"""
    if name in ("__import__", "__build_class__"):
        return True
    if name.startswith("_"):
        return False
    kind = _TYPE(value)
    if kind is _BUILTIN_FUNCTION or kind is _TYPE:
        return True
    return _TYPE.__dict__["__module__"].__get__(kind) != "_sitebuiltins"


def clean_builtins(module):
    """(dict of CPython's own builtins, names replaced and not recovered)."""
    live = module.__dict__
    clean = {"__name__": "builtins", "__debug__": _DICT.get(live, "__debug__", True) is True}
    for name, value in _DICT.items(_CONSTANTS):
        clean[name] = value
    replaced = []
    anchor = None
    for name, value in _DICT.items(live):
        if _TYPE(name) is not _TYPE("") or name in clean:
            continue
        if _genuine(name, value, module):
            clean[name] = value
            if anchor is None and _TYPE(value) is _BUILTIN_FUNCTION:
                anchor = value
        elif _interesting(name, value):
            replaced.append(name)
    if anchor is None:
        return clean, replaced
    copy = None
    deleted = False
    for name in _NEEDED:
        if name not in clean:
            deleted = True
    if replaced or deleted:
        copy = _startup_copy(live, module, anchor)
    missing = []
    if copy is not None:
        for name, value in _DICT.items(copy):
            if _TYPE(name) is _TYPE("") and name not in clean and _genuine(name, value, module):
                clean[name] = value
    for name in replaced:
        if name not in clean:
            missing.append(name)
    for name in _NEEDED:
        if name not in clean and name not in missing:
            missing.append(name)
    return clean, missing


def _builtins_module(given):
    """The builtins module, from what the first stage passed (module or dict)."""
    if _TYPE(given) is not _DICT:
        return given
    for value in _DICT.values(given):
        if _TYPE(value) is _BUILTIN_FUNCTION:
            owner = value.__self__
            kind = _TYPE(owner)
            if _type_name(kind) == "module" and \
                    not _TYPE.__dict__["__flags__"].__get__(kind) & _HEAPTYPE and \
                    owner.__dict__ is given:
                return owner
    return None


def run_boot_data():
    """run() with the boot file's data, which stage 1 left in our globals as
    _BOOT_DATA (taken out at once: nothing of it is kept for the agent's
    life): {"params", "fixed": the marshal'ed sources, "compiled": code or
    None}, or the whole file's marshal'ed bytes if stage 1 found no genuine
    marshal. Never raises."""
    try:
        data = _DICT.pop(run.__globals__, "_BOOT_DATA")
        frozen = _frozen_globals(_TYPE.__mro__.__getitem__(-1))
        marshal = _c_builtin(frozen, "marshal", "loads")
        sleep = _genuine_sleep(frozen)
        if sleep is not None:
            # Let a target thread that waits for the GIL have it now: this
            # thread has held it since stage 1 started (reading, unmarshaling).
            sleep(0.00005)  # loader.GIL_PAUSE
        if _TYPE(data) is not _DICT:  # stage 1 found no genuine marshal
            given, fixed, _magic, _code = marshal.loads(data)
            data = {"params": given, "fixed": fixed, "compiled": None}  # nor checked the magic
        compiled = data["compiled"]
        if compiled is None:
            fixed = marshal.loads(data["fixed"])
            loader, sources = fixed["loader"], fixed["sources"]
        else:
            compiled["loads"] = marshal.loads
            loader, sources = None, {}
        del data["fixed"]
    except:  # noqa: E722 - `except BaseException` would look up a builtin name
        _DICT.clear(run.__globals__)
        return
    run(loader, data["params"], sources, compiled, sleep)


def _genuine_sleep(frozen):
    """CPython's own time.sleep (gevent replaces the module's), or None: the
    agent's pauses that let waiting target threads have the GIL (a short
    sleep, not sleep(0), which takes the GIL back before they wake up)."""
    try:
        sleep = _c_builtin(frozen, "time", "sleep").sleep
    except:  # noqa: E722 - no pauses then (a build without a builtin `time`)
        return None
    return sleep if _TYPE(sleep) is _BUILTIN_FUNCTION else None


def _c_builtin(frozen, name, probe):
    """The C module `name`: the target's if its function `probe` is genuine,
    else a fresh one made by _imp.create_builtin (it leaves no entry in
    sys.modules)."""
    sys = frozen["sys"]
    modules = sys.modules
    current = _DICT.get(modules, name)
    found = _DICT.get(current.__dict__, probe) if _TYPE(current) is _TYPE(sys) else None
    if _TYPE(found) is _BUILTIN_FUNCTION:
        return current
    had = name in modules
    module = frozen["_imp"].create_builtin(frozen["ModuleSpec"](name, None))
    if not had and _DICT.get(modules, name) is module:
        _DICT.pop(modules, name, None)  # 3.8/3.9 register single-phase modules
    frozen["_imp"].exec_builtin(module)
    return module


def run(loader_source, params, sources, compiled=None, sleep=None):
    """Run the loader with the original builtins (never raises).
    `compiled`: the client's code objects, marshal'ed, with their `loads`;
    `sleep`: CPython's own time.sleep, for the loader's GIL pauses."""
    try:
        module = _builtins_module(__builtins__)
        if module is None:
            return
        clean, missing = clean_builtins(module)
        namespace = {"__builtins__": clean, "__name__": "_inspector_loader"}
        if compiled is not None:
            code = compiled["loads"](compiled["loader"])
        else:
            code = clean["compile"](loader_source, "<inspector-agent>", "exec", 0, True)
        clean["exec"](code, namespace)
        namespace["main"](params, sources, clean, missing, compiled, sleep)
    except:  # noqa: E722 - `except BaseException` would look up a builtin name
        pass
    finally:
        # Our functions and this namespace form cycles only the target's
        # collector would free: empty it (nothing here runs afterwards).
        _DICT.clear(run.__globals__)
