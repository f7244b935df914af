"""Static attribute reads: what ``obj.name`` would be, without running target code.

Like ``inspect.getattr_static`` (which we may not import: the target may not
have imported ``inspect``), but stricter about what it touches:

* the real type is ``type(obj)``, never ``obj.__class__`` (a property);
* a class's MRO and dict are read through the C slots of ``type``
  (``type.__dict__['__mro__'].__get__(cls)``), so a metaclass that defines
  ``__mro__``, ``__dict__`` or ``__getattribute__`` is never consulted;
* the instance dict is read only through the C getset/member descriptor that
  CPython itself installs for ``__dict__``; a class that replaces ``__dict__``
  by a property has no readable instance dict here;
* dict lookups with a str key are only done by C code when every key of the
  dict is an exact str (otherwise a stored key with an equal hash would have
  its ``__eq__`` called); else the dict is scanned comparing exact strs only.

``lookup(obj, name)`` returns ``(kind, value)``:

=============  ============================================================
``"value"``    a plain value (instance dict entry, class attribute without
               ``__get__``, a function found on the class: returned as is)
``"slot"``     a ``__slots__``/C member, read through the C member descriptor
``"getset"``   a C getset descriptor (value is the descriptor, not read)
``"method"``   a C method descriptor of a builtin type (value: descriptor)
``"descriptor"`` anything else with ``__get__``: reading it would run code
               (property, cached_property, user descriptors); value is the
               descriptor
``"missing"``  not found (``__getattr__`` is never run)
=============  ============================================================

``stored_value(obj, name, descriptor)`` reads, for the framework descriptors
of ``policy.STORED_DESCRIPTORS``/``PROPERTY_STORAGE`` (traitlets, Django,
SQLAlchemy, cached properties ...), the value their ``__get__`` would return
from where it is stored, without running it.
"""
from __future__ import annotations

from . import policy
from .errors import BudgetError
from .policy import (
    DICT,
    FUNCTION,
    GETSET_DESCRIPTOR,
    MEMBER_DESCRIPTOR,
    METHOD_DESCRIPTOR,
    OBJECT,
    STATICMETHOD,
    STR,
    TYPE,
    WRAPPER_DESCRIPTOR,
)

_TYPE_MRO = TYPE.__dict__["__mro__"].__get__
_TYPE_DICT = TYPE.__dict__["__dict__"].__get__       # mappingproxy of the class dict
_GETSET_GET = GETSET_DESCRIPTOR.__dict__["__get__"]  # slot wrapper, C
_MEMBER_GET = MEMBER_DESCRIPTOR.__dict__["__get__"]
_MEMBER_OBJCLASS = MEMBER_DESCRIPTOR.__dict__["__objclass__"].__get__
_GETSET_OBJCLASS = GETSET_DESCRIPTOR.__dict__["__objclass__"].__get__
_DICT_GET = DICT.__dict__["get"]
_DICT_ITER = DICT.__dict__["__iter__"]
_DICT_ITEMS = DICT.__dict__["items"]
_DICT_LEN = DICT.__dict__["__len__"]
_PROXY_GET = policy.MAPPINGPROXY.__dict__["get"]
_PROXY_ITER = policy.MAPPINGPROXY.__dict__["__iter__"]
_STR_ID = id(STR)
_CLASSMETHOD = classmethod
_PROPERTY = property


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


MISSING = _Missing()


def mro(cls) -> tuple:
    """The MRO of a class, read from the C slot (no metaclass code runs)."""
    result = _TYPE_MRO(cls)
    if type(result) is not policy.TUPLE:   # class still being created
        return (cls,)
    return result


def is_class(obj) -> bool:
    """True if obj is a class (an instance of `type` or of a metaclass)."""
    meta = type(obj)
    if meta is TYPE:
        return True
    for base in mro(meta):
        if base is TYPE:
            return True
    return False


def is_subclass(cls, base) -> bool:
    for c in mro(cls):
        if c is base:
            return True
    return False


def builtin_base(obj, bases: tuple):
    """The first of `bases` (builtin types) in the MRO of type(obj), or None."""
    for c in mro(type(obj)):
        for b in bases:
            if c is b:
                return b
    return None


def _all_str_keys(keys_iter) -> bool:
    # C-level pass over the types' ids: hashing an int runs no target code
    # (hashing the type objects themselves could run a metaclass __hash__).
    ids = set(map(id, map(type, keys_iter)))
    return not ids or (len(ids) == 1 and _STR_ID in ids)


def dict_get_str(d, key: str, default=MISSING):
    """d[key] for a str key on a dict (or dict subclass) without running target code."""
    if _all_str_keys(_DICT_ITER(d)):
        return _DICT_GET(d, key, default)
    for k, v in list(_DICT_ITEMS(d)):          # atomic copy under the GIL
        if type(k) is STR and STR.__eq__(k, key):
            return v
    return default


def class_dict_get(cls, key: str, default=MISSING):
    """cls.__dict__[key] (own dict only), read through the C slot."""
    proxy = _TYPE_DICT(cls)
    if _all_str_keys(_PROXY_ITER(proxy)):
        return _PROXY_GET(proxy, key, default)
    for k in list(_PROXY_ITER(proxy)):
        if type(k) is STR and STR.__eq__(k, key):
            return _PROXY_GET(proxy, k, default)
    return default


def find_in_mro(cls, name: str):
    """(value, owner) of the first class in cls's MRO whose dict has `name`."""
    for c in mro(cls):
        value = class_dict_get(c, name)
        if value is not MISSING:
            return value, c
    return MISSING, None


def _type_has(cls, name: str) -> bool:
    return find_in_mro(cls, name)[0] is not MISSING


def is_data_descriptor(attr) -> bool:
    t = type(attr)
    if t is GETSET_DESCRIPTOR or t is MEMBER_DESCRIPTOR or t is _PROPERTY:
        return True
    if t is FUNCTION or t is METHOD_DESCRIPTOR or t is STATICMETHOD or t is _CLASSMETHOD:
        return False
    return _type_has(t, "__set__") or _type_has(t, "__delete__")


def has_get(attr) -> bool:
    t = type(attr)
    for c in mro(t):
        if c is OBJECT:
            break
        if class_dict_get(c, "__get__") is not MISSING:
            return True
    return False


def instance_dict(obj):
    """The instance's own __dict__ (live!), or None. Callers must not hand it out."""
    cls = type(obj)
    desc, owner = find_in_mro(cls, "__dict__")
    t = type(desc)
    if t is GETSET_DESCRIPTOR:
        # CPython's own getset (subtype_dict, func_get_dict ...): C code.
        # On 3.11+ this materialises the dict of an object whose attributes
        # were stored inline; that changes no attribute and runs no Python.
        try:
            d = _GETSET_GET(desc, obj, cls)
        except Exception:
            return None
    elif t is MEMBER_DESCRIPTOR:        # module objects
        try:
            d = _MEMBER_GET(desc, obj, cls)
        except Exception:
            return None
    else:
        return None                      # no dict, or a property named __dict__
    if d is None or not is_subclass(type(d), DICT):
        return None
    return d


def _classify_class_attr(attr, owner):
    t = type(attr)
    if t is FUNCTION or t is STATICMETHOD or t is _CLASSMETHOD:
        return "value", attr              # like getattr_static: the raw object
    if t is METHOD_DESCRIPTOR or t is WRAPPER_DESCRIPTOR or t is policy.CLASSMETHOD_DESCRIPTOR:
        return "method", attr
    if t is GETSET_DESCRIPTOR:
        return "getset", attr
    if has_get(attr):
        return "descriptor", attr
    return "value", attr


def lookup(obj, name: str):
    """Where `obj.name` comes from, without running target code. See module doc."""
    if is_class(obj):
        return lookup_on_class(obj, name)
    cls = type(obj)
    attr, owner = find_in_mro(cls, name)
    if attr is not MISSING:
        t = type(attr)
        if t is MEMBER_DESCRIPTOR:
            try:
                return "slot", _MEMBER_GET(attr, obj, cls)
            except AttributeError:
                return "missing", None     # an empty __slots__ member
            except Exception:
                return "missing", None
        if is_data_descriptor(attr):
            if t is GETSET_DESCRIPTOR:
                return "getset", attr
            return "descriptor", attr
    d = instance_dict(obj)
    if d is not None:
        value = dict_get_str(d, name)
        if value is not MISSING:
            return "value", value
    if attr is not MISSING:
        return _classify_class_attr(attr, owner)
    return "missing", None


def lookup_on_class(cls, name: str):
    """Where `cls.name` comes from (class attribute semantics), statically."""
    meta = type(cls)
    meta_attr, _ = find_in_mro(meta, name)
    if meta_attr is not MISSING and is_data_descriptor(meta_attr):
        t = type(meta_attr)
        if t is GETSET_DESCRIPTOR:
            return "getset", meta_attr
        if t is MEMBER_DESCRIPTOR:
            return "getset", meta_attr     # read by the same C rule as a getset
        return "descriptor", meta_attr
    attr, owner = find_in_mro(cls, name)
    if attr is not MISSING:
        t = type(attr)
        if (t is FUNCTION or t is STATICMETHOD or t is _CLASSMETHOD or t is _PROPERTY
                or t is METHOD_DESCRIPTOR or t is WRAPPER_DESCRIPTOR
                or t is GETSET_DESCRIPTOR or t is MEMBER_DESCRIPTOR
                or t is policy.CLASSMETHOD_DESCRIPTOR):
            # these return themselves (or a harmless binding) when read on a
            # class; the raw object is what getattr_static returns
            return "value", attr
        if has_get(attr):
            return "descriptor", attr
        return "value", attr
    if meta_attr is not MISSING:
        return _classify_class_attr(meta_attr, meta)
    return "missing", None


def read_getset(desc, obj):
    """Run a C getset descriptor (the caller decided it is allowed)."""
    return _GETSET_GET(desc, obj, type(obj))


def read_member(desc, obj):
    return _MEMBER_GET(desc, obj, type(obj))


def getset_owner(desc):
    t = type(desc)
    if t is GETSET_DESCRIPTOR:
        return _GETSET_OBJCLASS(desc)
    if t is MEMBER_DESCRIPTOR:
        return _MEMBER_OBJCLASS(desc)
    return None


def getattr_static(obj, name: str, default=MISSING):
    """inspect.getattr_static semantics without running target code.

    Returns the value for plain attributes and slots, the descriptor object
    itself for getsets, methods and code-running descriptors (callers that want
    to tell them apart use ``lookup``). Raises AttributeError if missing and no
    default is given.
    """
    kind, value = lookup(obj, name)
    if kind == "missing":
        if default is MISSING:
            raise AttributeError(name)
        return default
    return value


def slot_members(cls) -> list:
    """[(name, member descriptor)] for every member descriptor along the MRO."""
    found = []
    seen = set()
    for c in mro(cls):
        if c is OBJECT:
            continue
        proxy = _TYPE_DICT(c)
        keys = list(_PROXY_ITER(proxy))
        for k in keys:
            if type(k) is not STR or k in seen:
                continue
            v = _PROXY_GET(proxy, k, None)
            if type(v) is MEMBER_DESCRIPTOR and not (k[:2] == "__" and k[-2:] == "__"):
                seen.add(k)
                found.append((k, v))
    return found


def instance_attrs(obj, limit: int = 100):
    """([(name, value)], truncated): slots then instance-dict entries, statically.

    Only str names. At most `limit` entries. The instance dict is copied
    atomically (one C call) so a thread mutating it cannot break the reading.
    """
    out = []
    cls = type(obj)
    if is_class(obj):
        return out, False
    for name, member in slot_members(cls):
        if len(out) >= limit:
            return out, True
        try:
            out.append((name, _MEMBER_GET(member, obj, cls)))
        except Exception:
            continue                       # unset slot
    d = instance_dict(obj)
    if d is None:
        return out, False
    room = limit - len(out)
    pairs = list(zip(range(room + 1), _DICT_ITEMS(d)))   # C: first room+1 items
    truncated = len(pairs) > room
    for _, (k, v) in pairs[:room]:
        if type(k) is STR:
            out.append((k, v))
    return out, truncated


def dict_len(d) -> int:
    return _DICT_LEN(d)


# --- framework descriptors whose storage is known (policy.STORED_DESCRIPTORS) ---
_TYPE_QUALNAME = TYPE.__dict__["__qualname__"].__get__
_PROPERTY_FGET = _PROPERTY.__dict__["fget"].__get__
_FUNCTION_QUALNAME = FUNCTION.__dict__["__qualname__"].__get__
_FUNCTION_CODE = FUNCTION.__dict__["__code__"].__get__
_CODE_NAMES = policy.CODE.__dict__["co_names"].__get__
_LIST_LEN = policy.LIST.__dict__["__len__"]
_LIST_EXTEND = policy.LIST.__dict__["extend"]
_DICT_VALUES = DICT.__dict__["values"]


def plain_attr(obj, name: str):
    """obj.name if reading it involves no descriptor at all: an instance dict
    entry, a __slots__ member, or a class attribute without __get__. Else
    MISSING (a property, a method, __getattr__: nothing is run)."""
    cls = type(obj)
    attr, _ = find_in_mro(cls, name)
    if attr is not MISSING:
        t = type(attr)
        if t is MEMBER_DESCRIPTOR:
            try:
                return _MEMBER_GET(attr, obj, cls)
            except Exception:
                return MISSING             # an empty slot
        if is_data_descriptor(attr):
            return MISSING
    d = instance_dict(obj)
    if d is not None:
        value = dict_get_str(d, name)
        if value is not MISSING:
            return value
    if attr is MISSING or has_get(attr):
        return MISSING
    return attr


def _plain_path(obj, path: tuple):
    for name in path:
        obj = plain_attr(obj, name)
        if obj is MISSING:
            return MISSING
    return obj


def _imported_class(module: str, name: str):
    """The class `name` of an already-imported module, or None (never imports)."""
    try:
        mod = policy.module_get(module)
    except policy.SysReplaced:
        return None
    if mod is None:
        return None
    cls = dict_get_str(policy.module_namespace(mod), name, None)
    return cls if cls is not None and is_class(cls) else None


def _class_key(cls) -> tuple:
    """(module, qualname) of a class from its own dict and the C slot, exact strs, or ()."""
    module = class_dict_get(cls, "__module__", None)
    qual = _TYPE_QUALNAME(cls)
    if type(module) is not STR or type(qual) is not STR:
        return ()
    return (module, qual)


def _stored_entry(desc):
    """(entry, class) of policy.STORED_DESCRIPTORS matching this descriptor, or (None, None)."""
    dtype = type(desc)
    for c in mro(dtype):
        if c is OBJECT:
            break
        key = _class_key(c)
        entry = policy.STORED_BY_NAME.get(key) if key else None
        if entry is None:
            continue
        if _imported_class(entry["module"], entry["type"]) is not c:
            return None, None
        for method in entry["methods"]:
            own = class_dict_get(c, method)
            if own is MISSING or find_in_mro(dtype, method)[0] is not own:
                return None, None
        return entry, c
    return None, None


def _from_stored_descriptor(obj, desc, entry):
    for path, expected in entry["requires"]:
        if _plain_path(desc, path) is not expected:
            return MISSING
    key = _plain_path(desc, entry["key"])
    if type(key) is not STR:
        return MISSING
    if entry["store"]:
        store = _plain_path(obj, entry["store"])
        if type(store) is not DICT:
            return MISSING
    else:
        store = instance_dict(obj)
        if store is None:
            return MISSING
    return dict_get_str(store, key)


def _property_entry(obj, name: str, prop):
    """The policy.PROPERTY_STORAGE entry of this exact property, or None."""
    if type(prop) is not _PROPERTY:
        return None
    found, owner = find_in_mro(type(obj), name)
    if found is not prop:
        return None
    key = _class_key(owner)
    entry = policy.PROPERTY_BY_NAME.get(key + (name,)) if key else None
    if entry is None or _imported_class(entry["module"], entry["type"]) is not owner:
        return None
    fget = _PROPERTY_FGET(prop)
    if type(fget) is not FUNCTION:
        return None
    qual = _FUNCTION_QUALNAME(fget)
    names = _CODE_NAMES(_FUNCTION_CODE(fget))
    if type(qual) is not STR or qual != entry["getter"] or type(names) is not policy.TUPLE:
        return None
    if not _all_str_keys(names) or names != entry["names"]:
        return None
    return entry


def _flattened(value, limit: int):
    """The items of every list of an exact dict of exact lists, as one new list."""
    if type(value) is not DICT:
        return MISSING
    if _DICT_LEN(value) > limit:
        raise BudgetError("max_snapshot_items", "the %d lists of that value exceed %d (budget "
                          "max_snapshot_items)" % (_DICT_LEN(value), limit))
    lists = list(_DICT_VALUES(value))            # atomic copy
    ids = set(map(id, map(type, lists)))
    if ids and (len(ids) != 1 or id(policy.LIST) not in ids):
        return MISSING
    total = sum(map(_LIST_LEN, lists))
    if total > limit:
        raise BudgetError("max_snapshot_items", "the %d items of that list exceed %d (budget "
                          "max_snapshot_items)" % (total, limit))
    out = []
    for items in lists:
        _LIST_EXTEND(out, items)                 # C: no target code
    return out


def stored_value(obj, name: str, desc, limit: int = 1000):
    """(status, value) of `obj.name` whose class attribute is the descriptor
    `desc`, read statically from the storage that policy's framework tables
    (STORED_DESCRIPTORS, PROPERTY_STORAGE) name:

    ``("stored", value)``  the value __get__ would return, read from its storage
    ``("absent", label)``  a known descriptor whose value is not stored
                           (__get__ would compute or load it): refuse
    ``("unknown", None)``  not in the tables (or unreadable: refused as well)
    """
    try:
        return _stored_value(obj, name, desc, limit)
    except BudgetError:
        raise
    except Exception:
        return "unknown", None        # an odd object: refused like any descriptor


def _stored_value(obj, name: str, desc, limit: int):
    entry, _ = _stored_entry(desc)
    if entry is not None:
        value = _from_stored_descriptor(obj, desc, entry)
        if value is MISSING:
            return "absent", entry["framework"]
        return "stored", value
    entry = _property_entry(obj, name, desc)
    if entry is None:
        return "unknown", None
    value = _plain_path(obj, entry["path"])
    if value is not MISSING and entry["flatten"]:
        value = _flattened(value, limit)
    if value is MISSING:
        return "absent", entry["framework"]
    return "stored", value
