"""The allowlists and the rules of the sandbox, in one place.

Everything a query may do is listed in this file: the syntax it may use
(``ALLOWED_SYNTAX``), the builtins it may call and the implementation of each
(``BUILTIN_IMPLEMENTATIONS``, in callables.py), the methods of exact builtin
types and their cost class (``_METHOD_TABLE``), the query helpers
(``QUERY_HELPERS``), the attributes it may read (``READABLE_DUNDERS``,
``HIDDEN_ATTRS``, ``INTERNAL_ATTRS``, the pure getset owners), the codecs, the
type sets that decide what is builtin data (``PLAIN_IDS``, ``HASHABLE_IDS``,
``SEQ_BASES`` ...), the names it treats as secret (``looks_secret``), and how
the agent reads ``sys`` (``sys_function``, ``sys_modules``). The other payload
modules only *apply* these tables (callables.py refuses to import if an entry
here has no implementation, and tests/unit/test_evaluator_soundness.py fails
when any two tables disagree); a reviewer who wants to know what a query can
do reads this file. Budgets are in limits.py, the time cost model in costs.py.

Principles (see docs/DESIGN.md, "Evaluator"):

* Deny by default. A callable is allowed only if it is, by identity, one of the
  genuine C builtins or genuine C methods of exact builtin types listed here.
  A deny-list of names would miss names that travel as strings
  (``str.format`` fields, ``getattr``, ``attrgetter``, ``__reduce__``).
* Types are compared by identity (``type(x) is str``) or by ``id()`` in
  integer sets. Never ``type(x) in {...}`` nor ``t in (int, str)``: hashing or
  comparing a class runs its metaclass's ``__hash__``/``__eq__``.
* The genuine builtins are captured here, at import, and verified: a target
  may have monkeypatched the ``builtins`` module. A patched builtin is simply
  not on the allowlist. If a builtin that the payload itself relies on is
  patched, importing this module fails (the agent then refuses to start)
  rather than calling target code.
"""
from __future__ import annotations

import builtins
import sys

from .errors import DeniedError

# ---------------------------------------------------------------------------
# Genuine type objects, reached without looking anything up in `builtins`.
# (`.__class__` is only used here, on literals and our own objects; on any
# other object it could be a property: everywhere else we call TYPE(x).)
# `x.__class__` on a builtin instance is the C getset of `object`, which a
# target cannot replace (the dicts of static types are read-only).
# ---------------------------------------------------------------------------
TYPE = (0).__class__.__class__
OBJECT = TYPE.__dict__["__base__"].__get__(TYPE)
NONE_TYPE = None.__class__
BOOL = True.__class__
INT = (0).__class__
FLOAT = (0.0).__class__
COMPLEX = (0j).__class__
STR = "".__class__
BYTES = b"".__class__
LIST = [].__class__
TUPLE = ().__class__
DICT = {}.__class__
SET = {0}.__class__
ELLIPSIS_TYPE = Ellipsis.__class__
MAPPINGPROXY = TYPE.__dict__["__dict__"].__get__(INT).__class__
DICT_KEYS = {}.keys().__class__
DICT_VALUES = {}.values().__class__
DICT_ITEMS = {}.items().__class__

BUILTIN_FUNCTION = [].append.__class__          # builtin_function_or_method
METHOD_DESCRIPTOR = STR.__dict__["join"].__class__
WRAPPER_DESCRIPTOR = OBJECT.__dict__["__init__"].__class__
METHOD_WRAPPER = OBJECT().__str__.__class__
CLASSMETHOD_DESCRIPTOR = DICT.__dict__["fromkeys"].__class__
GETSET_DESCRIPTOR = INT.__dict__["real"].__class__
MEMBER_DESCRIPTOR = TYPE.__dict__["__dictoffset__"].__class__


def _first_static_type(cls):
    # `sys.__class__` can be reassigned to a ModuleType subclass (with
    # properties): the module type is the first non-heap class of its MRO.
    flags = TYPE.__dict__["__flags__"].__get__
    for c in TYPE.__dict__["__mro__"].__get__(cls):
        if not flags(c) & (1 << 9):
            return c
    return None


MODULE = _first_static_type(TYPE(sys))

_TYPE_FLAGS = TYPE.__dict__["__flags__"].__get__
_HEAPTYPE = 1 << 9                               # Py_TPFLAGS_HEAPTYPE
_TYPE_NAME = TYPE.__dict__["__name__"].__get__    # C getset: tp_name / ht_name
_BUILTIN_SELF = BUILTIN_FUNCTION.__dict__["__self__"].__get__
_BUILTIN_NAME = BUILTIN_FUNCTION.__dict__["__name__"].__get__
_MODULE_DICT = MODULE.__dict__["__dict__"].__get__   # member descriptor
_DICT_GET = DICT.__dict__["get"]                      # unbound C dict.get


def _function():
    pass


class _Probe:
    __slots__ = ()

    def method(self):
        pass

    def __getitem__(self, key):
        return key


def _generator():
    yield None


async def _coroutine():
    pass


async def _async_generator():
    yield None


FUNCTION = _function.__class__
CODE = _function.__code__.__class__
METHOD = _Probe().method.__class__
SLICE = _Probe()[0:1].__class__
GENERATOR = _generator().__class__
_coro = _coroutine()
COROUTINE = _coro.__class__
_coro.close()
del _coro
ASYNC_GENERATOR = _async_generator().__class__
try:
    raise ValueError
except ValueError as _exc:  # noqa: F841 - only its traceback's type is used
    TRACEBACK = _exc.__traceback__.__class__
    BASE_EXCEPTION = TYPE.__dict__["__mro__"].__get__(TYPE(_exc))[-2]
    # the frame type from a traceback (sys._getframe may be the target's)
    FRAME = TYPE(TRACEBACK.__dict__["tb_frame"].__get__(_exc.__traceback__))
    del _exc


def _function_locals_type():
    # the f_locals of a (never started) generator's frame: a function frame
    # that holds nothing, so reading it creates no reference cycle
    gen = _generator()
    try:
        frame = GENERATOR.__dict__["gi_frame"].__get__(gen)
        return TYPE(FRAME.__dict__["f_locals"].__get__(frame))
    finally:
        gen.close()


# What frame.f_locals may be for the agent to copy it: a dict, or 3.13's C
# FrameLocalsProxy (PEP 667). A class body's frame has whatever mapping its
# metaclass's __prepare__ returned: copying that would run its methods.
FRAME_LOCALS_TYPE_IDS = frozenset((id(DICT), id(_function_locals_type())))


def _make_cell():
    x = None

    def inner():
        return x
    return inner.__closure__[0]


CELL = _make_cell().__class__
STATICMETHOD = STR.__dict__["maketrans"].__class__


_IMMUTABLETYPE = 1 << 8                          # Py_TPFLAGS_IMMUTABLETYPE (3.10+)


def is_heap_type(cls) -> bool:
    """True for classes allocated on the heap (Python classes, and some C types)."""
    return bool(_TYPE_FLAGS(cls) & _HEAPTYPE)


def is_c_type(cls) -> bool:
    """True for types defined in C: static types, or heap types marked immutable.

    Since 3.10 many stdlib C types are heap types (3.13: `_collections.deque`)
    with Py_TPFLAGS_IMMUTABLETYPE; a Python class can never carry that flag.
    (On 3.8/3.9 bit 8 is unused and those types are static.)
    """
    flags = _TYPE_FLAGS(cls)
    return not (flags & _HEAPTYPE) or bool(flags & _IMMUTABLETYPE)


def _module_name(module) -> object:
    """A module's __name__ if it is an exact str (a str subclass's __eq__
    would run when compared), else None."""
    name = _DICT_GET(_MODULE_DICT(module), "__name__")
    return name if TYPE(name) is STR else None


def _genuine_type(obj, name: str) -> bool:
    return (TYPE(obj) is TYPE and is_c_type(obj)
            and _TYPE_NAME(obj) == name)


def _genuine_function(obj, name: str) -> bool:
    if TYPE(obj) is not BUILTIN_FUNCTION or _BUILTIN_NAME(obj) != name:
        return False
    owner = _BUILTIN_SELF(obj)
    return TYPE(owner) is MODULE and _module_name(owner) == "builtins"


# ---------------------------------------------------------------------------
# Builtins the payload's own code calls. Checked against the names as this
# module resolves them (the loader gives payload modules a copy of the
# builtins dict taken at load time). A replaced one aborts the import.
# ---------------------------------------------------------------------------
_INTERNAL_TYPES = {
    "type": TYPE, "object": OBJECT, "bool": BOOL, "int": INT, "float": FLOAT,
    "complex": COMPLEX, "str": STR, "bytes": BYTES, "list": LIST, "tuple": TUPLE,
    "dict": DICT, "set": SET,
}
_INTERNAL_OTHER_TYPES = ("frozenset", "bytearray", "range", "zip", "map", "enumerate",
                         "reversed", "filter", "slice", "memoryview", "property",
                         "classmethod", "staticmethod")
_INTERNAL_FUNCTIONS = ("len", "id", "repr", "sorted", "min", "max", "sum", "any", "all",
                       "abs", "round", "divmod", "pow", "hex", "oct", "bin", "chr", "ord",
                       "format", "callable", "iter", "next", "hash", "ascii", "isinstance")


def _check_internal_builtins() -> None:
    namespace = {
        "type": type, "object": object, "bool": bool, "int": int, "float": float,
        "complex": complex, "str": str, "bytes": bytes, "list": list, "tuple": tuple,
        "dict": dict, "set": set, "frozenset": frozenset, "bytearray": bytearray,
        "range": range, "zip": zip, "map": map, "enumerate": enumerate,
        "reversed": reversed, "filter": filter, "slice": slice, "memoryview": memoryview,
        "property": property, "classmethod": classmethod, "staticmethod": staticmethod,
        "len": len, "id": id, "repr": repr, "sorted": sorted, "min": min, "max": max,
        "sum": sum, "any": any, "all": all, "abs": abs, "round": round, "divmod": divmod,
        "pow": pow, "hex": hex, "oct": oct, "bin": bin, "chr": chr, "ord": ord,
        "format": format, "callable": callable, "iter": iter, "next": next, "hash": hash,
        "ascii": ascii, "isinstance": isinstance,
    }
    bad = []
    for name, genuine in _INTERNAL_TYPES.items():
        if namespace[name] is not genuine:
            bad.append(name)
    for name in _INTERNAL_OTHER_TYPES:
        if not _genuine_type(namespace[name], name):
            bad.append(name)
    for name in _INTERNAL_FUNCTIONS:
        if not _genuine_function(namespace[name], name):
            bad.append(name)
    if bad:
        raise ImportError("builtins %s have been replaced in this process; the inspector "
                          "refuses to run rather than call them" % ", ".join(bad))


_check_internal_builtins()

FROZENSET = frozenset
BYTEARRAY = bytearray
RANGE = range
MEMORYVIEW = memoryview
BYTEORDER = None  # set below, once memoryview is known to be genuine


# ---------------------------------------------------------------------------
# The sys module. A target can rebind any attribute of sys
# (`sys._current_frames = f`, `sys.modules = MyDict()`) and even its class
# (`sys.__class__ = ModuleWithProperties`). The agent therefore reads sys's
# namespace through ModuleType's C member descriptor, and calls a sys
# function only if it is still the genuine C builtin bound to this very sys
# module; otherwise the operation is refused and says why. (A replaced
# function cannot be recovered: its only reference was the one rebound.)
# ---------------------------------------------------------------------------
SYS_REPLACED = ("sys.%s has been replaced in this process (it is a %s, not the C builtin); "
                "the inspector refuses to call it")


class SysReplaced(DeniedError):
    """A sys attribute the agent needs is not the genuine one (exit code 3)."""


def _sys_namespace() -> dict:
    return _MODULE_DICT(sys)


def sys_function(name: str):
    """The genuine C function sys.<name>, read now (not cached: the target
    may rebind it at any time). Raises SysReplaced otherwise."""
    fn = _DICT_GET(_sys_namespace(), name)
    if TYPE(fn) is BUILTIN_FUNCTION and _BUILTIN_NAME(fn) == name and \
            _BUILTIN_SELF(fn) is sys and _module_name(sys) == "sys":
        return fn
    raise SysReplaced(SYS_REPLACED % (name, _TYPE_NAME(TYPE(fn))))


def sys_modules() -> dict:
    """sys.modules if it is an exact dict (a subclass's methods would run)."""
    modules = _DICT_GET(_sys_namespace(), "modules")
    if TYPE(modules) is DICT:
        return modules
    raise SysReplaced("sys.modules has been replaced by a %s; the inspector reads only an "
                      "exact dict" % _TYPE_NAME(TYPE(modules)))


def str_key_get(d: dict, key: str, default=None):
    """d[key] for an exact dict without calling any stored key's __eq__/__hash__:
    C lookup only if every key is an exact str, else a scan comparing exact strs."""
    if _all_str_keys(d):
        return _DICT_GET(d, key, default)
    for k, v in list(DICT.__dict__["items"](d)):
        if TYPE(k) is STR and STR.__dict__["__eq__"](k, key) is True:
            return v
    return default


def _all_str_keys(d) -> bool:
    ids = set(map(id, map(TYPE, DICT.__dict__["__iter__"](d))))
    return not ids or (len(ids) == 1 and id(STR) in ids)


def module_get(name: str):
    """sys.modules[name] if it is a module object (never imports), else None."""
    module = str_key_get(sys_modules(), name)
    if module is None:
        return None
    for c in TYPE.__dict__["__mro__"].__get__(TYPE(module)):
        if c is MODULE:
            return module
    return None


def module_namespace(module) -> dict:
    """A module's own namespace dict (ModuleType's C member: no property runs)."""
    return _MODULE_DICT(module)


def _native_byteorder() -> str:
    # memoryview.cast("H") reads in native order; sys.byteorder can be rebound
    return "little" if MEMORYVIEW(b"\x01\x00").cast("H")[0] == 1 else "big"


def python_version() -> list:
    """[major, minor, micro] from sys.hexversion if it is an exact int."""
    h = _DICT_GET(_sys_namespace(), "hexversion")
    if TYPE(h) is not INT:
        return [0, 0, 0]
    return [(h >> 24) & 0xFF, (h >> 16) & 0xFF, (h >> 8) & 0xFF]


def collections_types() -> dict:
    """deque/OrderedDict/defaultdict if `_collections` is loaded, else {}.

    Read lazily from ``sys.modules`` (importing it would change the target)
    and only trusted if each one is a genuine static C type.
    """
    try:
        mod = module_get("_collections")
    except SysReplaced:
        return {}
    if mod is None:
        return {}
    namespace = _MODULE_DICT(mod)
    found = {}
    for name in ("deque", "OrderedDict", "defaultdict"):
        obj = _DICT_GET(namespace, name)
        if obj is not None and _genuine_type(obj, name):
            found[name] = obj
    return found


def deque_type():
    return _DICT_GET(collections_types(), "deque")


def _ids(*objs) -> frozenset:
    return frozenset(map(id, objs))


# Exact builtin scalars: values of these types are compared, hashed, printed
# and formatted by C code that never calls back into Python.
ATOMIC_TYPES = (NONE_TYPE, BOOL, INT, FLOAT, COMPLEX, STR, BYTES)
ATOMIC_IDS = _ids(*ATOMIC_TYPES)
NUMBER_IDS = _ids(BOOL, INT, FLOAT, COMPLEX)
# Exact builtin containers: data when every item is data (datasafety.as_data).
CONTAINER_IDS = _ids(LIST, TUPLE, DICT, SET, FROZENSET)
PLAIN_IDS = ATOMIC_IDS | CONTAINER_IDS
# What may be hashed (set elements, dict keys): scalars, tuples, frozensets.
HASHABLE_IDS = ATOMIC_IDS | _ids(TUPLE, FROZENSET)
# Sequences whose items are read through the base type's unbound C methods
# (so builtin subclasses work without running their overrides).
SEQ_BASES = (LIST, TUPLE, STR, BYTES, BYTEARRAY, RANGE)
# Keys of these types compare by C code; a dict whose keys are all of these
# types can be subscripted without running any target `__eq__`.
SAFE_KEY_IDS = _ids(NONE_TYPE, BOOL, INT, FLOAT, COMPLEX, STR, BYTES, ELLIPSIS_TYPE)
# `__eq__` implementations that compare by C code only: a stored dict key
# whose type resolves `__eq__` to one of these cannot run target code on a
# hash collision (enums, IntEnums, plain objects compare by identity or C).
_CLASS_DICT = TYPE.__dict__["__dict__"].__get__
C_EQ_IDS = frozenset(id(_CLASS_DICT(t)["__eq__"]) for t in (OBJECT, INT, STR, BYTES, FLOAT,
                                                            COMPLEX))

# C getset descriptors (attribute getters written in C) a query may run
# without --allow-properties: those owned by these types only read a field.
# Any other getset (e.g. of a C extension type) is shown as a marker.
PURE_GETSET_OWNER_IDS = _ids(TYPE, FUNCTION, BUILTIN_FUNCTION, METHOD, CODE, FRAME, TRACEBACK,
                             GENERATOR, COROUTINE, ASYNC_GENERATOR, INT, BOOL, FLOAT, COMPLEX,
                             RANGE, SLICE, BASE_EXCEPTION, MODULE)
# C types outside builtins whose getsets only read fields (checked by module
# and name, and only if the type is a C type).
PURE_C_TYPE_NAMES = frozenset(["collections.deque", "datetime.date", "datetime.datetime",
                               "datetime.time", "datetime.timedelta", "datetime.timezone",
                               "decimal.Decimal", "fractions.Fraction"])

# Objects of these types are the interpreter's internals: only a few
# attributes of them are readable (see INTERNAL_ATTRS).
INTERNAL_TYPES = (FUNCTION, BUILTIN_FUNCTION, METHOD, METHOD_WRAPPER, METHOD_DESCRIPTOR,
                  WRAPPER_DESCRIPTOR, CLASSMETHOD_DESCRIPTOR, GETSET_DESCRIPTOR,
                  MEMBER_DESCRIPTOR, CODE, FRAME, TRACEBACK, GENERATOR, COROUTINE,
                  ASYNC_GENERATOR, CELL, STATICMETHOD, classmethod, property)
INTERNAL_TYPE_IDS = _ids(*INTERNAL_TYPES)
# Opaque in snapshots: shown by type and name only.
OPAQUE_TYPE_IDS = INTERNAL_TYPE_IDS | _ids(MODULE, TYPE, MAPPINGPROXY, ELLIPSIS_TYPE,
                                           MEMORYVIEW, SLICE)

# ---------------------------------------------------------------------------
# Builtin functions a query may call: name -> its implementation in
# callables.py (the C builtin itself is never called with query values; each
# implementation checks its arguments are exact builtin data first). The
# object is taken from the real `builtins` module and only allowed if it is
# the genuine C builtin (a monkeypatched one is not allowed).
# ---------------------------------------------------------------------------
BUILTIN_IMPLEMENTATIONS = {
    "len": "builtin_len", "abs": "builtin_abs", "min": "builtin_minmax",
    "max": "builtin_minmax", "sum": "builtin_sum", "sorted": "builtin_sorted",
    "any": "builtin_any_all", "all": "builtin_any_all", "round": "builtin_round",
    "repr": "builtin_repr", "enumerate": "builtin_enumerate", "zip": "builtin_zip",
    "range": "builtin_range", "reversed": "builtin_reversed", "map": "builtin_map",
    "filter": "builtin_filter", "divmod": "builtin_divmod", "pow": "builtin_pow",
    "hex": "builtin_int_text", "oct": "builtin_int_text", "bin": "builtin_int_text",
    "chr": "builtin_chr", "ord": "builtin_ord", "format": "builtin_format",
    "callable": "builtin_callable", "id": "builtin_id",
    # types used as conversions; each accepts exact builtin data only
    "str": "builtin_str", "int": "builtin_int", "float": "builtin_float",
    "bool": "builtin_bool", "bytes": "builtin_bytes", "list": "builtin_list",
    "tuple": "builtin_tuple", "dict": "builtin_dict", "set": "builtin_set",
    "frozenset": "builtin_set",
    # resolved to the genuine objects (so `isinstance(x, type)` works) but
    # implemented statically: type(x) is the real type (one argument only),
    # isinstance() walks the real MRO (never reads a `__class__` property),
    # vars() is a static copy.
    "type": "builtin_type", "isinstance": "builtin_isinstance", "vars": "builtin_vars",
}
ALLOWED_BUILTIN_FUNCTIONS = tuple(BUILTIN_IMPLEMENTATIONS)

# Names a query can call that are not builtins: name -> where it is
# implemented. They take builtin scalars (or, for getattr_static, read
# statically) and never run target code.
QUERY_HELPERS = {
    "getattr_static": "callables.helper_getattr_static",  # static attribute read
    "threads": "agent (frames.list_threads)",               # the target's threads
    "frames": "agent (frames.stacks)",                      # one thread's frames
    "modules": "agent (sorted names of sys.modules)",        # loaded module names
}
AGENT_HELPERS = ("threads", "frames", "modules")

# ---------------------------------------------------------------------------
# Syntax. The interpreter has one handler per ALLOWED_SYNTAX node; MARKER
# nodes are data read by those handlers; everything else is refused (deny by
# default), REFUSED_SYNTAX with a dedicated reason.
# ---------------------------------------------------------------------------
ALLOWED_SYNTAX = frozenset([
    "Expression", "Constant", "Name", "Attribute", "Subscript", "Tuple", "List", "Set",
    "Dict", "Starred", "BinOp", "UnaryOp", "BoolOp", "IfExp", "Compare", "Call",
    "ListComp", "SetComp", "DictComp", "GeneratorExp", "JoinedStr", "FormattedValue",
])
MARKER_SYNTAX = frozenset([
    "Load", "Add", "Sub", "Mult", "Div", "FloorDiv", "Mod", "Pow", "LShift", "RShift",
    "BitOr", "BitXor", "BitAnd", "MatMult", "UAdd", "USub", "Not", "Invert", "And", "Or",
    "Eq", "NotEq", "Lt", "LtE", "Gt", "GtE", "Is", "IsNot", "In", "NotIn",
    "comprehension", "keyword", "Index", "Slice", "ExtSlice",
])
REFUSED_SYNTAX = {
    "Lambda": "lambda is refused: queries cannot define functions",
    "NamedExpr": "assignment expression ':=' is refused: queries cannot assign",
    "Await": "await is refused: queries cannot run coroutines",
    "Yield": "yield is refused: queries cannot define generators",
    "YieldFrom": "yield from is refused: queries cannot define generators",
    "Store": "assignment is refused: queries cannot assign",
    "Del": "del is refused: queries cannot delete",
}


def _allowed_builtins() -> tuple:
    allowed = {}
    patched = []
    namespace = builtins.__dict__
    for name in ALLOWED_BUILTIN_FUNCTIONS:
        obj = _DICT_GET(namespace, name)
        if obj is TYPE or _genuine_type(obj, name) or _genuine_function(obj, name):
            allowed[id(obj)] = (obj, name)
        else:
            patched.append(name)
    return allowed, tuple(patched)


# id(builtin) -> (builtin, name)
BUILTINS_BY_ID, PATCHED_BUILTINS = _allowed_builtins()

# ---------------------------------------------------------------------------
# Methods of exact builtin types a query may call: (type, name) -> handler.
#   pure     : call the genuine C method; every argument must be builtin data;
#              its time is linear in self and the arguments
#   search   : pure, but a forward substring search: priced by costs.search_cost
#              (haystack x needle before 3.10)
#   rsearch  : pure, a reverse substring search (haystack x needle on every
#              version): priced by costs.search_cost
#   strip    : pure, strip(chars) is stripped x len(chars): costs.strip_cost
#   width    : pure, but the first argument is a result width (size budget)
#   elements : the method compares the container's items (items must be data)
#   setop    : set algebra; the items of self and of the arguments must be data
#   others   : a dedicated implementation, callables.method_<kind>
# Only read-only, pure methods. Never: format, format_map (they read
# attributes named in a string), translate, mutating methods, dunders.
# ---------------------------------------------------------------------------
_STR_METHODS = {
    "capitalize": "pure", "casefold": "pure", "endswith": "pure",
    "isalnum": "pure", "isalpha": "pure",
    "isascii": "pure", "isdecimal": "pure", "isdigit": "pure", "isidentifier": "pure",
    "islower": "pure", "isnumeric": "pure", "isprintable": "pure", "isspace": "pure",
    "istitle": "pure", "isupper": "pure", "lower": "pure",
    "removeprefix": "pure", "removesuffix": "pure",
    "splitlines": "pure", "startswith": "pure",
    "swapcase": "pure", "title": "pure", "upper": "pure",
    "count": "search", "find": "search", "index": "search", "partition": "search",
    "split": "search",
    "rfind": "rsearch", "rindex": "rsearch", "rpartition": "rsearch", "rsplit": "rsearch",
    "strip": "strip", "lstrip": "strip", "rstrip": "strip",
    "center": "width", "ljust": "width", "rjust": "width", "zfill": "width",
    "expandtabs": "expandtabs", "replace": "replace", "join": "join", "encode": "codec",
}
_BYTES_METHODS = {
    "capitalize": "pure", "endswith": "pure",
    "isalnum": "pure", "isalpha": "pure", "isascii": "pure",
    "isdigit": "pure", "islower": "pure", "isspace": "pure", "istitle": "pure",
    "isupper": "pure", "lower": "pure",
    "removeprefix": "pure", "removesuffix": "pure",
    "splitlines": "pure", "startswith": "pure", "swapcase": "pure",
    "title": "pure", "upper": "pure",
    "count": "search", "find": "search", "index": "search", "partition": "search",
    "split": "search",
    "rfind": "rsearch", "rindex": "rsearch", "rpartition": "rsearch", "rsplit": "rsearch",
    "strip": "strip", "lstrip": "strip", "rstrip": "strip",
    "center": "width", "ljust": "width", "rjust": "width", "zfill": "width",
    "expandtabs": "expandtabs", "replace": "replace", "join": "join", "decode": "codec",
    "hex": "hex",
}
_METHOD_TABLE = (
    (STR, _STR_METHODS),
    (BYTES, _BYTES_METHODS),
    (BYTEARRAY, {"count": "search", "endswith": "pure", "find": "search",
                 "startswith": "pure", "decode": "codec", "hex": "hex"}),
    (INT, {"bit_length": "pure", "bit_count": "pure", "conjugate": "pure",
           "as_integer_ratio": "pure", "is_integer": "pure", "to_bytes": "to_bytes"}),
    (BOOL, {"bit_length": "pure", "conjugate": "pure"}),
    (FLOAT, {"is_integer": "pure", "hex": "pure", "as_integer_ratio": "pure",
             "conjugate": "pure"}),
    (COMPLEX, {"conjugate": "pure"}),
    (LIST, {"index": "elements", "count": "elements", "copy": "copy"}),
    (TUPLE, {"index": "elements", "count": "elements"}),
    (RANGE, {"index": "elements", "count": "elements"}),
    (DICT, {"get": "dict_get", "keys": "dict_view", "values": "dict_view",
            "items": "dict_view", "copy": "copy"}),
    (SET, {"isdisjoint": "setop", "issubset": "setop", "issuperset": "setop",
           "union": "setop", "intersection": "setop", "difference": "setop",
           "symmetric_difference": "setop", "copy": "copy"}),
    (FROZENSET, {"isdisjoint": "setop", "issubset": "setop", "issuperset": "setop",
                 "union": "setop", "intersection": "setop", "difference": "setop",
                 "symmetric_difference": "setop", "copy": "copy"}),
)


_DEQUE_METHODS = {"index": "elements", "count": "elements", "copy": "copy"}


def _method_table() -> dict:
    table = {}
    for cls, methods in _METHOD_TABLE:
        own = TYPE.__dict__["__dict__"].__get__(cls)
        present = {}
        for name, handler in methods.items():
            # feature detection: removeprefix (3.9+), bit_count (3.10+) ...
            if own.get(name) is not None:
                present[name] = handler
        table[id(cls)] = (cls, present)
    return table


# id(exact type) -> (type, {method name: kind})
METHODS_BY_TYPE_ID = _method_table()


def method_kinds() -> frozenset:
    """Every method kind the tables use (each is callables.method_<kind>)."""
    kinds = set(_DEQUE_METHODS.values())
    for _cls, methods in _METHOD_TABLE:
        kinds.update(methods.values())
    return frozenset(kinds)



def method_handler(self_type, name: str):
    """The handler of `name` bound to an instance of exactly `self_type`, or None."""
    entry = METHODS_BY_TYPE_ID.get(id(self_type))
    if entry is not None and entry[0] is self_type:
        return entry[1].get(name)
    deque = deque_type()
    if deque is not None and self_type is deque:
        return _DEQUE_METHODS.get(name)
    return None


# Codecs a query may use for encode()/decode(): built into the interpreter,
# so naming them imports nothing (`codecs.decode(s, "rot13")` would import
# encodings.rot_13 into the target).
ALLOWED_CODECS = frozenset(["utf-8", "utf8", "ascii", "latin-1", "latin1", "iso-8859-1"])
ALLOWED_CODEC_ERRORS = frozenset(["strict", "replace", "ignore", "backslashreplace"])

# ---------------------------------------------------------------------------
# Attribute and name rules.
# ---------------------------------------------------------------------------
# Dunder attributes a query may read (all others are refused). `__class__`
# returns the real type (never a `__class__` property); `__dict__` returns a
# static copy of the instance attributes (never the live dict).
READABLE_DUNDERS = frozenset([
    "__name__", "__qualname__", "__module__", "__doc__", "__class__", "__dict__",
    "__slots__", "__file__", "__version__", "__all__",
])

CODE_FRAME = "code and frame internals are hidden"
CLASS_WALK = "walking the class hierarchy is refused (it reaches every class in the process)"
HOOKS = "attribute, pickling and construction hooks are refused (they run or reach code)"
DUNDER = ("dunder attributes are refused except %s"
          % ", ".join(sorted(READABLE_DUNDERS)))

# name -> reason. Checked on every object, whatever its type.
HIDDEN_ATTRS = {}
for _name in ("__globals__", "__code__", "__closure__", "__func__", "__self__",
              "__builtins__", "__defaults__", "__kwdefaults__", "__wrapped__",
              "__annotations__", "__objclass__",
              "gi_frame", "gi_code", "gi_yieldfrom", "gi_running", "gi_suspended",
              "cr_frame", "cr_code", "cr_await", "cr_origin", "cr_running", "cr_suspended",
              "ag_frame", "ag_code", "ag_await", "ag_running",
              "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "f_trace",
              "f_trace_lines", "f_trace_opcodes", "f_generator",
              "tb_frame", "tb_next", "co_code", "co_consts", "co_names", "co_varnames",
              "co_cellvars", "co_freevars", "co_lnotab", "co_linetable",
              "co_exceptiontable", "func_globals", "func_code", "func_closure",
              "im_func", "im_self"):
    HIDDEN_ATTRS[_name] = CODE_FRAME
for _name in ("__subclasses__", "__bases__", "__base__", "__mro__", "mro"):
    HIDDEN_ATTRS[_name] = CLASS_WALK
for _name in ("__reduce__", "__reduce_ex__", "__getattribute__", "__getattr__",
              "__setattr__", "__delattr__", "__init_subclass__", "__subclasshook__",
              "__class_getitem__", "__new__", "__init__", "__call__", "__getstate__",
              "__setstate__", "__get__", "__set__", "__delete__", "__set_name__",
              "__import__", "__loader__", "__spec__", "__prepare__", "__instancecheck__",
              "__subclasscheck__", "__format__"):
    HIDDEN_ATTRS[_name] = HOOKS
del _name

# The only attributes readable on the interpreter's internal objects
# (functions, code, frames, tracebacks, generators, coroutines, cells,
# descriptors): everything else about them is hidden.
INTERNAL_ATTRS = frozenset(["__name__", "__qualname__", "__module__", "__doc__", "__class__",
                            "co_name", "co_filename", "co_firstlineno", "co_qualname",
                            "f_lineno", "tb_lineno"])

# Global/local variable names a query may not read (dunder names are refused
# except these).
READABLE_DUNDER_NAMES = frozenset(["__name__", "__file__", "__doc__", "__version__",
                                   "__all__", "__package__"])


def attribute_refusal(name: str):
    """The reason an attribute name is never readable, or None if it may be."""
    reason = HIDDEN_ATTRS.get(name)
    if reason is not None:
        return reason
    if name[:2] == "__" and name[-2:] == "__" and len(name) > 4:
        if name not in READABLE_DUNDERS:
            return DUNDER
    return None


def name_refusal(name: str):
    """The reason a variable name may not be looked up, or None."""
    if name[:2] == "__" and name[-2:] == "__":
        if name not in READABLE_DUNDER_NAMES:
            return ("dunder names are refused except %s"
                    % ", ".join(sorted(READABLE_DUNDER_NAMES)))
    return None


# ---------------------------------------------------------------------------
# Secrets. A value whose attribute name, key or variable name looks like a
# secret is replaced by an opaque Redacted marker (snapshot.Redacted): it
# supports no operation at all, so `s[::-1]`, `.hex()`, `len(s)` or
# `s.startswith("a")` cannot leak it piece by piece.
#
# A name looks secret if, lower-cased with `_ - . space` removed, it contains
# one of SECRET_WORDS. "auth" also matches "author"; that one word is excused
# (but "authorization" is a secret: the HTTP header).
# ---------------------------------------------------------------------------
SECRET_WORDS = (
    "password", "passwd", "passphrase", "pwd", "secret", "token", "apikey",
    "accesskey", "privatekey", "secretkey", "signingkey", "encryptionkey", "masterkey",
    "sessionkey", "sessionid", "credential", "auth", "cookie", "bearer", "jwt",
)


_TYPE_MRO = TYPE.__dict__["__mro__"].__get__
_STR_GETITEM = STR.__dict__["__getitem__"]
_BYTES_GETITEM = BYTES.__dict__["__getitem__"]
_BYTES_DECODE = BYTES.__dict__["decode"]


def name_text(name, limit: int = 200):
    """The first `limit` characters of a str/bytes name as an exact str, or None.

    Subclasses count (``class FieldName(str)``, ``enum.StrEnum`` members): their
    value is read through the base type's C ``__getitem__``, which copies the
    characters and calls none of the subclass's methods (``__str__``,
    ``__eq__``, ``__len__``, ``lower`` ... are never looked up).
    """
    t = TYPE(name)
    if t is STR:
        return name if len(name) <= limit else name[:limit]
    if t is BYTES:
        return _BYTES_DECODE(name[:limit], "latin-1")
    mro = _TYPE_MRO(t)
    if TYPE(mro) is not TUPLE:
        return None
    for base in mro:
        if base is STR:
            return _STR_GETITEM(name, slice(0, limit))
        if base is BYTES:
            return _BYTES_DECODE(_BYTES_GETITEM(name, slice(0, limit)), "latin-1")
    return None


def looks_secret(name) -> bool:
    """True if a str or bytes name (or a subclass's value) looks like a secret."""
    name = name_text(name)
    if name is None:
        return False
    flat = name.lower().replace("_", "").replace("-", "").replace(".", "").replace(" ", "")
    for word in SECRET_WORDS:
        if word in flat:
            if word == "auth" and "author" in flat and "authoriz" not in flat:
                if flat.count("auth") == flat.count("author"):
                    continue
            return True
    return False


REDACTED_HINT = "re-run with --show-secrets (EvalOptions(redact=False)) to use it"

BYTEORDER = _native_byteorder()


# ---------------------------------------------------------------------------
# Framework objects (docs/DESIGN.md "Framework objects the evaluator reads").
# Real services keep their state behind descriptors, and reading one through
# its __get__ would run target code. For the descriptors below the place
# where __get__ finds the value is known: the value is read from there,
# statically (static.stored_value), when it is there; otherwise the read is
# refused as for any other descriptor (never computed, never loaded from a
# database). An entry whose module the target has not imported is inert: the
# classes are looked up in sys.modules, never imported.
#
# STORED_DESCRIPTORS: a descriptor matches when the class `type` of module
# `module` is, by identity, in the MRO of the descriptor's type, and each of
# `methods` resolves along that MRO to that class's own function (a subclass
# overriding one does not match). Then, with plain attribute values only (an
# instance dict entry, a slot, a class attribute without __get__):
#   key:      attributes read from the descriptor; the last one, an exact
#             str, is the storage key
#   store:    attributes read from the instance down to the storage, an exact
#             dict; () is the instance's own __dict__ (CPython's C getset)
#   requires: (attributes read from the descriptor, value): must hold, by
#             identity, for __get__ to return the stored value
# ---------------------------------------------------------------------------
STORED_DESCRIPTORS = (
    # traitlets (IPython, ipykernel, Jupyter): TraitType.get returns
    # obj._trait_values[self.name]; a missing key computes the default.
    {"framework": "traitlets", "module": "traitlets.traitlets", "type": "TraitType",
     "methods": ("__get__", "get"), "key": ("name",), "store": ("_trait_values",),
     "requires": ()},
    # Django model fields: instance.__dict__[self.field.attname] (a plain
    # field's DeferredAttribute has no __set__, so its stored value was
    # readable before; ForeignKeyDeferredAttribute has one). A missing key
    # (a deferred field) runs a database query.
    {"framework": "Django", "module": "django.db.models.query_utils",
     "type": "DeferredAttribute", "methods": ("__get__",), "key": ("field", "attname"),
     "store": (), "requires": ()},
    # SQLAlchemy mapped attributes: instance.__dict__[self.key] when the
    # attribute's implementation supports population; a missing key (an
    # expired column, a relationship not loaded) loads from the database.
    {"framework": "SQLAlchemy", "module": "sqlalchemy.orm.attributes",
     "type": "InstrumentedAttribute", "methods": ("__get__",), "key": ("key",), "store": (),
     "requires": ((("impl", "supports_population"), True),)},
    # functools.cached_property: instance.__dict__[self.attrname] once
    # computed (also under another name the object was assigned to).
    {"framework": "functools", "module": "functools", "type": "cached_property",
     "methods": ("__get__",), "key": ("attrname",), "store": (), "requires": ()},
    # werkzeug's cached_property (Flask's app.name, request.args ...): a
    # property subclass with __set__; instance.__dict__[self.__name__].
    {"framework": "werkzeug", "module": "werkzeug.utils", "type": "cached_property",
     "methods": ("__get__",), "key": ("__name__",), "store": (), "requires": ()},
)

# PROPERTY_STORAGE: properties whose getter only reads other attributes. The
# property must be an exact `property` in the own dict of class `type` of
# module `module` (by identity), named `attr`; its getter a plain function
# whose __qualname__ is `getter` and whose code names exactly `names`
# (co_names: every attribute and global it touches), so a property the
# target replaced is not read this way. The value is read along `path`
# (plain attribute values only); with "flatten", the value at the end of
# the path must be an exact dict of exact lists, and the answer is a new list
# of their items (what the getter builds on each read).
PROPERTY_STORAGE = (
    {"framework": "gunicorn", "module": "gunicorn.arbiter", "type": "Arbiter",
     "attr": "num_workers", "getter": "Arbiter._get_num_workers",
     "names": ("_num_workers",), "path": ("_num_workers",), "flatten": False},
    {"framework": "Starlette, FastAPI", "module": "starlette.applications",
     "type": "Starlette", "attr": "routes", "getter": "Starlette.routes",
     "names": ("router", "routes"), "path": ("router", "routes"), "flatten": False},
    {"framework": "werkzeug, Flask", "module": "werkzeug.routing.map", "type": "Map",
     "attr": "_rules", "getter": "Map._rules", "names": ("_rules_by_endpoint", "values"),
     "path": ("_rules_by_endpoint",), "flatten": True},
)

# (module, type) -> entry, (module, type, attr) -> entry: matched by the
# names read from the C slots first, then verified by identity.
STORED_BY_NAME = {(e["module"], e["type"]): e for e in STORED_DESCRIPTORS}
PROPERTY_BY_NAME = {(e["module"], e["type"], e["attr"]): e for e in PROPERTY_STORAGE}


# ---------------------------------------------------------------------------
# Services: what the tasks and greenlets readers (payloads/tasks.py,
# payloads/greenlets.py) may run besides reading dicts and slots.
# ---------------------------------------------------------------------------
# C getsets of event-loop types that only read a C field (Cython `readonly`
# members), by the qualified name of their C owner type -> getset names.
LOOP_GETSETS = {"uvloop.loop.Loop": frozenset(["_closed"])}

_GETSET_NAME = GETSET_DESCRIPTOR.__dict__["__name__"].__get__
_GETSET_OWNER = GETSET_DESCRIPTOR.__dict__["__objclass__"].__get__
_TYPE_QUALNAME = TYPE.__dict__["__qualname__"].__get__
_TYPE_MODULE = TYPE.__dict__["__module__"].__get__


def c_type_name(cls):
    """'module.qualname' of a C type (static or immutable: Python code cannot
    have made it), else None."""
    if TYPE(cls) is not TYPE or not is_c_type(cls):
        return None
    module, qualname = _TYPE_MODULE(cls), _TYPE_QUALNAME(cls)
    if TYPE(module) is not STR or TYPE(qualname) is not STR:
        return None
    return module + "." + qualname


def _getset_allowed(table, desc) -> bool:
    if TYPE(desc) is not GETSET_DESCRIPTOR:
        return False
    names = table.get(c_type_name(_GETSET_OWNER(desc)))
    name = _GETSET_NAME(desc)
    return names is not None and TYPE(name) is STR and name in names


def loop_getset_allowed(desc) -> bool:
    """True if the tasks reader may run this getset (see LOOP_GETSETS)."""
    return _getset_allowed(LOOP_GETSETS, desc)


# greenlet's own C getters that return a stored field (greenlet 0.4-3.x:
# green_getdead, green_getframe - the frame saved at the last switch -,
# green_getparent, green_getrun - the callable until the greenlet starts,
# else AttributeError), and gevent's Cython `cdef public loop` member of its
# hub base class (payloads/greenlets.py). Owner type name -> getset names.
GREENLET_GETSETS = {
    "greenlet.greenlet": frozenset(["dead", "gr_frame", "parent", "run"]),
    "gevent._gevent_c_greenlet_primitives.SwitchOutGreenletWithLoop": frozenset(["loop"]),
}
# Slots of greenlet.greenlet called through its own slot wrapper (never a
# subclass's override): __bool__ is green_bool, "is active" (a field test).
GREENLET_SLOTS = {"greenlet.greenlet": frozenset(["__bool__"])}
_WRAPPER_NAME = WRAPPER_DESCRIPTOR.__dict__["__name__"].__get__
_WRAPPER_OWNER = WRAPPER_DESCRIPTOR.__dict__["__objclass__"].__get__


def greenlet_getset_allowed(desc) -> bool:
    """True if the greenlets reader may run this getset (see GREENLET_GETSETS)."""
    return _getset_allowed(GREENLET_GETSETS, desc)


def greenlet_slot_allowed(owner, wrapper) -> bool:
    """True if `wrapper` is the slot wrapper of `owner`'s own C slot listed in
    GREENLET_SLOTS (calling it runs that C function, whatever the subclass)."""
    if TYPE(wrapper) is not WRAPPER_DESCRIPTOR or _WRAPPER_OWNER(wrapper) is not owner:
        return False
    names = GREENLET_SLOTS.get(c_type_name(owner))
    name = _WRAPPER_NAME(wrapper)
    return names is not None and TYPE(name) is STR and name in names
