"""Second stage of the bootstrap: build the agent's private modules and run it.

How this file runs: the client writes a boot file (0600, in its private
directory) holding ``payloads/prelude.py`` and a call ``run(LOADER, PARAMS,
SOURCES)``, LOADER being this source. The first stage (rendered by
``inspector/_bundle.py``, run at the injection point) starts one thread with
``_thread`` that reads that file, deletes it and executes it. The prelude
finds the target's *original* builtins (the target may have rebound any)
and executes this file with them as its ``__builtins__``, then calls
``main(PARAMS, SOURCES, CLEAN, MISSING)``. So everything below runs on the
agent's own thread, never on a target thread, and no name it uses can be
rebound by the target.

Private modules: each payload source is executed into a ``types.ModuleType``
that is *not* registered in ``sys.modules``. Relative imports between payload
modules are served by our own ``__import__`` (see ``_PrivateImporter``), and
``from __future__ import ...`` gets a stand-in, so loading the agent does not
even import ``__future__`` into the target. Nothing is added to ``__main__``,
``sys.modules`` (for our code) or ``sys.path``.

This file is compiled by the first stage without our importer, so it must
not use ``from __future__`` (that would import ``__future__`` into the
target).
"""
import builtins
import sys

# The builtins this file runs with: the prelude's clean dict, or (run without
# the prelude, as unit tests do) the builtins module's own.
_OWN_BUILTINS = __builtins__ if type(__builtins__) is dict else builtins.__dict__

AGENT_THREAD_NAME = "inspector-agent"  # also the Linux thread name (15 chars max)
# `from __future__ import annotations` for every chunk after the first
# (CO_FUTURE_ANNOTATIONS, the same value on 3.7-3.13).
_FUTURE_ANNOTATIONS = 0x1000000
# Before each module (and each chunk of source) it loads, the agent sleeps
# this long, so that a target thread waiting for the GIL takes it then: our
# start holds the GIL one module at a time (under 1 ms each with the client's
# bytecode), not for a whole switch interval (5 ms) per waiting thread. A
# sleep, not sleep(0): that releases the GIL and takes it back before a
# waiting thread has woken up. The 21 pauses cost about 2 ms of wall time.
GIL_PAUSE = 0.00005
# From a literal: `type(len)` would be the type of whatever the target put
# in builtins as `len` (a Python function, if it monkeypatched it).
_BUILTIN_FUNCTION = type([].append)
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: classes made by Python code
_TYPE = (0).__class__.__class__
_DICT = {}.__class__
_DICT_GET = _DICT.__dict__["get"]
_DICT_CONTAINS = _DICT.__dict__["__contains__"]
_DICT_POP = _DICT.__dict__["pop"]


def _static_module_type():
    """ModuleType itself: `sys.__class__` may have been set to a subclass of
    it (with properties, or an __init__ that `type(sys)(name)` would run)."""
    flags = _TYPE.__dict__["__flags__"].__get__
    for cls in _TYPE.__dict__["__mro__"].__get__(_TYPE(sys)):
        if not flags(cls) & _HEAPTYPE:
            return cls
    return None


_MODULE_TYPE = _static_module_type()
_MODULE_DICT = _MODULE_TYPE.__dict__["__dict__"].__get__  # C member: no property runs


def _sys_modules():
    """sys.modules read from sys's own namespace (a property on a replaced
    class of sys never runs); only the unbound C dict methods touch it."""
    return _DICT_GET(_MODULE_DICT(sys), "modules")


def main(params, sources, clean=None, missing=(), compiled=None, sleep=None):
    """Entry point of the agent thread. Never raises, never prints.

    `clean`: the original builtins (see prelude.py); `missing`: builtins the
    target replaced and whose originals could not be recovered; `compiled`:
    the client's code objects if this interpreter reads them; `sleep`:
    CPython's own time.sleep, for the GIL pauses (both from prelude.py)."""
    modules = None
    guard = release = None
    last = None  # the client's socket: closed after the teardown (agent.run)
    try:
        _name_thread(AGENT_THREAD_NAME)
        # Told in the hello: code objects shipped by the client, or our
        # sources compiled here (holding the GIL)
        params["bytecode"] = "shipped" if compiled is not None else "source"
        modules = _PrivateImporter(params["package"], sources,
                                   clean if clean is not None else builtins.__dict__, compiled)
        modules.sleep = sleep
        guard, release = _hold_collections(modules)
        refusal = _untrustworthy_runtime(modules.import_module)
        if refusal is not None and "could not be found" in refusal:
            # The agent itself would need what is missing: refuse from here.
            _report_failure(params, refusal)
            return
        try:
            agent = modules.load("agent")
        except BaseException as e:
            # E.g. the target replaced a builtin our code needs: tell the
            # client why instead of letting it time out.
            lost = (" (the target replaced builtins %s and their originals could not be "
                    "recovered)" % ", ".join(missing)) if missing else ""
            _report_failure(params, "the agent could not load: %s: %s%s"
                            % (type(e).__name__, _safe_text(e), lost))
            return
        last = agent.run(params, refusal, guard)
    except BaseException:
        # Nothing may escape into the target. The client notices the missing
        # handshake and reports a timeout with the cause it can see.
        pass
    finally:
        if modules is not None:
            modules.unload()
        if last is not None:
            try:
                last.close()  # the client's end of file: the agent is done
            except BaseException:
                pass
            last = None
        _forget_loader()
        if release is not None:
            try:
                release()  # the last thing this thread does (payloads/gcguard.py)
            except BaseException:
                pass


def _hold_collections(modules):
    """Switch the target's automatic garbage collection off while the agent
    loads and works (gcguard.py says why and when it is switched back on);
    returns (guard, its bound release: it outlives our modules) or Nones."""
    try:
        guard = modules.load("gcguard").Guard()
        guard.hold()
        return guard, guard.release
    except BaseException:
        return None, None


def _forget_loader():
    """Empty this file's namespace: our functions hold it as their globals and
    it holds them, a cycle only the target's garbage collector would free.
    Called last, on the way out (nothing here looks up a global afterwards)."""
    try:
        namespace = main.__globals__
        _empty_classes(namespace, namespace.get("__name__") or "_inspector_loader")
        namespace.clear()
    except BaseException:
        pass


def _safe_text(exc):
    """An exception's str args only: never str()/repr() of target objects.
    (errors.safe_error_text's twin: the loader runs before any payload
    module exists, so it cannot import it.)"""
    return "; ".join(a for a in getattr(exc, "args", ()) if type(a) is str)[:300]


def _json_string(text):
    out = []
    for ch in text:
        code = ord(ch)
        if ch in '"\\' or code < 0x20 or code > 0x7E:
            out.append("\\u%04x" % code if code < 0x10000 else "?")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _report_failure(params, message):
    """Send a refusal hello with a hand-made frame (our wire module may be the
    thing that failed to load)."""
    _socket = _real_import()("_socket")

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(5.0)
        path = params["socket_path"]
        if len(path) < 100:
            sock.connect(path)
        else:  # longer than sun_path allows: through the directory's fd
            posix = dict.get(sys.modules, "posix")
            head, _, name = path.rpartition("/")
            fd = posix.open(head or "/", posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
            try:
                sock.connect("/proc/self/fd/%d/%s" % (fd, name))
            finally:
                posix.close(fd)
        body = ('{"kind": "hello", "proto": 1, "token": %s, "refused": %s}'
                % (_json_string(params["token"]), _json_string(message))).encode("ascii")
        sock.sendall(len(body).to_bytes(4, "big") + body)
    except BaseException:
        pass
    finally:
        sock.close()


def _name_thread(name):
    """Set the OS thread name (visible in top -H, ps -L, py-spy) via /proc."""
    try:
        # From sys.modules, not `import`: no call of a replaced __import__.
        _thread = _DICT_GET(_sys_modules(), "_thread")
        posix = _DICT_GET(_sys_modules(), "posix")
        get_native_id = getattr(_thread, "get_native_id", None)  # 3.8+
        if posix is None or get_native_id is None:
            return
        tid = get_native_id()
        fd = posix.open("/proc/self/task/%d/comm" % tid, posix.O_WRONLY | posix.O_CLOEXEC)
        try:
            posix.write(fd, name[:15].encode("ascii"))
        finally:
            posix.close(fd)
    except BaseException:
        pass


def _untrustworthy_runtime(import_module):
    """Say why the agent must not trust the C modules it relies on, or None.

    The agent only uses C-level modules (`_thread`, `_socket`, `posix`) so that a
    target monkeypatching `threading`/`socket` cannot make us run its code.
    If even those are patched (gevent patches `_thread`), we refuse to serve.
    """
    if _TYPE(_sys_modules()) is not _DICT:
        return "the target replaced sys.modules (monkeypatching)"
    _socket = import_module("_socket")
    _thread = import_module("_thread")  # CPython's own functions (see _genuine_view)
    time = import_module("time")
    for owner, attr in ((_thread, "get_ident"), (_thread, "allocate_lock"),
                        (_thread, "start_new_thread"), (time, "sleep"),
                        (time, "monotonic"), (_socket, "CMSG_LEN")):
        if type(getattr(owner, attr, None)) is not _BUILTIN_FUNCTION:
            return ("the target replaced %s.%s and CPython's own function could not be "
                    "found (monkeypatching)" % (owner.__name__, attr))
    if type(_socket.socket) is not type or _socket.socket.__module__ != "_socket":
        return "the target replaced _socket.socket (monkeypatching)"
    return None


_KEEP_CLASS_ATTRIBUTES = ("__dict__", "__weakref__", "__module__", "__qualname__", "__doc__")


def _empty_classes(namespace, prefix):
    """Empty the dicts of the classes our modules defined.

    A class is always cyclic garbage (it is in its own ``__mro__``), so only
    the target's garbage collector frees it - and with it every function and
    code object in its dict. A sleeping target may not run a full collection
    for a long time: 20 attach/detach cycles grew a 3.8 target by ~7 MB.
    Emptying our classes lets reference counting free the functions and code
    at once; only the bare class objects wait for the collector.
    """
    type_dict = type.__dict__["__dict__"]
    for value in list(namespace.values()):
        if type(value) is not type:  # our classes have no metaclass
            continue
        attrs = type_dict.__get__(value)
        module = attrs.get("__module__")
        if type(module) is not str or not module.startswith(prefix):
            continue  # imported from the target's world, not ours
        for name in list(attrs):
            if name not in _KEEP_CLASS_ATTRIBUTES:
                try:
                    type.__delattr__(value, name)
                except BaseException:
                    pass


def _real_import():
    """Our builtins' __import__ (the prelude's original) if it is CPython's;
    else importlib's own (frozen, part of CPython), never a replacement made
    by the target. The import system still consults the target's
    sys.meta_path finders for a module it has not loaded yet: that is
    inherent to importing."""
    current = _OWN_BUILTINS.get("__import__")
    if type(current) is _BUILTIN_FUNCTION and getattr(current, "__self__", None) is builtins:
        return current
    return _DICT_GET(_sys_modules(), "_frozen_importlib").__import__


def _c_module(name):
    """Load the C module `name` (built in, or an extension file on sys.path)
    straight through _imp, or None if it is neither.

    The import system proper is Python code (importlib's frozen bootstrap)
    that runs with the *target's* builtins: a replaced hasattr, isinstance or
    str would be called by it (the agent imports `_socket` into a target that
    never used sockets). _imp's create/exec functions are C; finding the
    file is a stat() per sys.path entry and extension suffix, as FileFinder
    does, without its hooks."""
    try:
        imp = dict.get(sys.modules, "_imp")
        posix = dict.get(sys.modules, "posix")
        spec_class = sys.modules["_frozen_importlib"].ModuleSpec
        if imp is None or posix is None:
            return None
        if name in sys.builtin_module_names:
            module = imp.create_builtin(spec_class(name, None, origin="built-in"))
            imp.exec_builtin(module)
            return module
        for entry in list(sys.path):
            if type(entry) is not str:
                continue
            for suffix in imp.extension_suffixes():
                path = (entry or ".") + "/" + name + suffix
                try:
                    posix.stat(path)
                except OSError:
                    continue
                module = imp.create_dynamic(spec_class(name, None, origin=path))
                imp.exec_dynamic(module)
                return module
    except BaseException:
        pass
    return None


# C modules whose functions event-loop libraries replace (gevent's
# monkey.patch_all: _thread.start_new_thread/allocate_lock/get_ident,
# time.sleep, select.*). Our code gets a private view of the originals.
_GENUINE_VIEWS = ("_thread", "time", "select")


def _is_own_builtin(value, module, name):
    return (_TYPE(value) is _BUILTIN_FUNCTION and
            _BUILTIN_FUNCTION.__dict__["__self__"].__get__(value) is module and
            _BUILTIN_FUNCTION.__dict__["__name__"].__get__(value) == name)


_FUNCTION = _TYPE(lambda: None)
_METHOD = _TYPE((lambda: None).__get__(0))


def _looks_replaced(value, module, key):
    """A module attribute that is code, and not the module's own C function:
    a Python function, a method, another module's builtin, or a class made
    by Python code (gevent puts its lock class in `_thread.allocate_lock`)."""
    kind = _TYPE(value)
    if kind is _BUILTIN_FUNCTION:
        return not _is_own_builtin(value, module, key)
    if kind is _FUNCTION or kind is _METHOD:
        return True
    return kind is _TYPE and bool(_TYPE.__dict__["__flags__"].__get__(value) & _HEAPTYPE)


def _names_module(value, name):
    """A class whose __module__ is `name`: since 3.10 `_thread.lock`,
    `time.struct_time`, `select.epoll` and the like are heap types, made by
    C but as suspect as a patcher's class by their flags alone."""
    return _TYPE(value) is _TYPE and \
        _TYPE(_TYPE.__dict__["__module__"].__get__(value)) is str and \
        _TYPE.__dict__["__module__"].__get__(value) == name


def _is_gc_function(value, name):
    """CPython's own gc.<name>: a builtin of a module named gc (the instance
    we loaded may be a fresh copy whose functions belong to the first one)."""
    if _TYPE(value) is not _BUILTIN_FUNCTION or \
            _BUILTIN_FUNCTION.__dict__["__name__"].__get__(value) != name:
        return False
    owner = _BUILTIN_FUNCTION.__dict__["__self__"].__get__(value)
    return _TYPE(owner) is _MODULE_TYPE and _DICT_GET(_MODULE_DICT(owner), "__name__") == "gc"


def _genuine_view(module, name, import_module):
    """`module` itself when none of its functions were replaced; else a
    private module holding CPython's own functions, recovered from the
    objects that still refer to the module (a patcher keeps the originals:
    gevent in gevent.monkey.saved), without those it could not find.
    Nothing of the target's is called, and the target's module is left as
    it is."""
    namespace = _MODULE_DICT(module)
    replaced = [key for key, value in _DICT.__dict__["items"](namespace)
                if _TYPE(key) is str and not key.startswith("__") and
                _looks_replaced(value, module, key)]
    if not replaced:
        return module
    view = _MODULE_TYPE(name)
    view_dict = _MODULE_DICT(view)
    _DICT.__dict__["update"](view_dict, namespace)
    if all(_names_module(namespace[key], name) for key in replaced):
        # Only classes that say they are the module's own (3.10+ always has
        # some): the agent calls none of them, so the view goes without them.
        # No gc.get_referrers: that walks the target's whole heap with the
        # GIL held (1.5-2.5 ms in a small target, in proportion to the heap
        # in a big one) - on every attach, before. A class of the target's
        # under a function's name (the agent would call it) is dropped too,
        # and then the agent refuses (_untrustworthy_runtime).
        for key in replaced:
            _DICT_POP(view_dict, key, None)
        return view
    originals = {}
    try:
        gc_module = import_module("gc")  # (taken back at unload if the target had none)
    except BaseException:
        gc_module = None
    referrers = _DICT_GET(_MODULE_DICT(gc_module), "get_referrers") if gc_module else None
    if _is_gc_function(referrers, "get_referrers"):
        for obj in referrers(module):
            if _TYPE(obj) is _BUILTIN_FUNCTION and \
                    _BUILTIN_FUNCTION.__dict__["__self__"].__get__(obj) is module:
                originals[_BUILTIN_FUNCTION.__dict__["__name__"].__get__(obj)] = obj
    for key in replaced:
        if key in originals:
            view_dict[key] = originals[key]
        else:
            _DICT_POP(view_dict, key, None)
    return view


class _FutureStandIn:
    """What ``from __future__ import annotations`` receives: compile() already
    applied the flag; the runtime import only needs an attribute to bind."""

    annotations = None


class _PrivateImporter:
    """Executes payload sources into private modules, on demand."""

    def __init__(self, package, sources, clean, compiled=None):
        self.package = package
        # Taken over: the boot data's dicts are emptied, so that nothing but
        # this importer holds the modules not loaded yet (and it lets go of
        # each one as it loads it).
        self.sources = dict(sources)
        sources.clear()
        self.compiled = compiled.pop("modules") if compiled is not None else {}
        self.loads = compiled["loads"] if compiled is not None else None
        self.sleep = None  # main() sets CPython's own time.sleep: see GIL_PAUSE
        self.modules = {}
        self.added = {}  # stdlib modules our code imported that the target had not
        self.views = {}  # name -> the module, or its genuine view (_genuine_view)
        self.builtins = self._agent_builtins(clean)

    def _agent_builtins(self, clean):
        # The original builtins the prelude recovered; a last filter keeps
        # only C objects (a target's replacement can never get through).
        # type() and `is` only: isinstance() could read a __class__ property.
        flags = type.__dict__["__flags__"]
        own = {"__name__": "builtins", "__debug__": clean.get("__debug__", True)}
        for name, value in clean.items():
            kind = type(value)
            if kind is _BUILTIN_FUNCTION or value is None or value is Ellipsis \
                    or value is NotImplemented \
                    or (kind is type and not flags.__get__(value) & _HEAPTYPE):
                own[name] = value
        own["__import__"] = self._import
        return own

    def _import(self, name, globals=None, locals=None, fromlist=(), level=0):
        if level:
            if name:
                return self.load(name.split(".")[0])
            for sub in fromlist or ():
                self.load(sub)
            return self._package_object()
        if name == "__future__":
            return _FutureStandIn
        # A module the target already has is served from sys.modules: no
        # call of `builtins.__import__`, which the target may have replaced
        # (our code runs `import posix` and the like on every request).
        modules = _sys_modules()
        loaded = _DICT_GET(modules, name) if "." not in name else None
        if loaded is not None:
            if name in _GENUINE_VIEWS and _TYPE(loaded) is _MODULE_TYPE:
                view = self.views.get(name)
                if view is None:
                    view = self.views[name] = _genuine_view(loaded, name, self._import)
                return view
            return loaded
        absent = not _DICT_CONTAINS(modules, name)
        module = _c_module(name) if "." not in name else None
        if module is None:
            module = _real_import()(name, globals, locals, fromlist, level)
        if absent and _DICT_CONTAINS(modules, name):
            self.added[name] = _DICT_GET(modules, name)
        return module

    def import_module(self, name):
        """An absolute import, tracked so unload() can take it back."""
        return self._import(name)

    def _package_object(self):
        pkg = self.modules.get("")
        if pkg is None:
            pkg = _MODULE_TYPE(self.package)
            pkg.__path__ = []
            self.modules[""] = pkg
        return pkg

    def load(self, short):
        if short in self.modules:
            return self.modules[short]
        blob = self.compiled.pop(short, None)
        source = self.sources.pop(short, None)
        if blob is None and source is None:
            raise ImportError("no payload module %r" % short)
        module = _MODULE_TYPE("%s.%s" % (self.package, short))
        module.__package__ = self.package
        module.__builtins__ = self.builtins
        self.modules[short] = module  # before exec: tolerates import cycles
        self._pause()
        if blob is not None:
            # The client's code object, unmarshaled (no compile() here); a
            # pause between unmarshaling and running it (up to 0.6 ms each).
            code = self.loads(blob)
            self._pause()
            exec(code, module.__dict__)
        else:
            self._exec_source(short, source, module)
        setattr(self._package_object(), short, module)
        return module

    def _exec_source(self, short, source, module):
        filename = "<inspector-agent:%s>" % short
        # The client cut each module into chunks of whole top-level statements:
        # compile() holds the GIL for its whole run (25 ms for the evaluator in
        # one piece), and between two chunks the interpreter can hand the GIL
        # to the target's threads. Leading newlines keep the line numbers.
        for i, (first_line, text) in enumerate(source):
            if i:
                self._pause()
            code = compile("\n" * (first_line - 1) + text, filename, "exec",
                           _FUTURE_ANNOTATIONS, dont_inherit=True)
            exec(code, module.__dict__)

    def _pause(self):
        if self.sleep is not None:
            self.sleep(GIL_PAUSE)

    def unload(self):
        """Break the function <-> globals cycles so our code is freed now, and
        take back the (C) modules only we imported, e.g. `_socket` in a target
        that never used sockets. Only the exact names we asked for, and only
        if the entry is still the module we got."""
        for name, module in self.added.items():
            try:
                if _DICT_GET(_sys_modules(), name) is module:
                    _DICT_POP(_sys_modules(), name, None)
            except BaseException:
                pass
        self.added.clear()
        for module in self.modules.values():
            # Freeing a module's functions and classes holds the GIL (the
            # whole teardown took ~1.7 ms in one piece): let waiting target
            # threads have it between two modules.
            self._pause()
            try:
                _empty_classes(module.__dict__, self.package + ".")
            except BaseException:
                pass
            try:
                module.__dict__.clear()
            except BaseException:
                pass
        self.modules.clear()
        self.sources.clear()
        self.compiled.clear()
        self.loads = self.sleep = None
        self.builtins.clear()  # holds our bound __import__: a cycle back to self
