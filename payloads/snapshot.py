"""Bounded, JSON-ready renderings of target values, built without running target code.

The node format is documented in docs/DESIGN.md ("Snapshots"). Rules:

* never ``repr()``/``str()``/``len()``/``iter()``/``hash()``/``==`` on a target
  object: builtin values are read through the *base type's* unbound C methods
  (``str.__getitem__(s, slice(0, n))``, ``dict.items(d)``), so a subclass's
  overrides and ``__missing__`` never run;
* containers are copied atomically first (``list(zip(range(n), dict.items(d)))``
  is one C call under the GIL), so another thread mutating them cannot make the
  reading fail half-way;
* every other object is its type name, id and static instance attributes;
* bounded depth, items per container, total nodes; cycles by id;
* values under a secret-looking key or attribute name become ``redacted``.

This module also defines the values the evaluator hands out in place of real
ones: ``Redacted`` (a secret), ``PropertyMarker`` (a descriptor that was not
run), and the evaluator's own lazy containers ``LazyIter`` and ``DictView``;
and ``read_attribute``, the one place where an attribute read is decided (the
evaluator and ``navigate`` both use it).
"""
from __future__ import annotations

from . import policy, static
from .errors import AgentError, BudgetError, DeniedError, QueryError
from .limits import Limits
from .policy import (
    BOOL,
    BYTEARRAY,
    BYTES,
    COMPLEX,
    DICT,
    FLOAT,
    FROZENSET,
    INT,
    LIST,
    NONE_TYPE,
    RANGE,
    SET,
    STR,
    TUPLE,
    TYPE,
)

_TYPE_QUALNAME = TYPE.__dict__["__qualname__"].__get__
_TYPE_NAME = TYPE.__dict__["__name__"].__get__
_TYPE_MODULE = TYPE.__dict__["__module__"].__get__
_STR_LEN = STR.__dict__["__len__"]
_STR_GETITEM = STR.__dict__["__getitem__"]
_BYTES_LEN = BYTES.__dict__["__len__"]
_BYTES_GETITEM = BYTES.__dict__["__getitem__"]
_BYTES_REPR = BYTES.__dict__["__repr__"]
_BYTEARRAY_LEN = BYTEARRAY.__dict__["__len__"]
_BYTEARRAY_GETITEM = BYTEARRAY.__dict__["__getitem__"]
_INT_REPR = INT.__dict__["__repr__"]
_INT_INT = INT.__dict__["__int__"]
_INT_BITS = INT.__dict__["bit_length"]
_FLOAT_REPR = FLOAT.__dict__["__repr__"]
_FLOAT_FLOAT = FLOAT.__dict__["__float__"]
_COMPLEX_REPR = COMPLEX.__dict__["__repr__"]
_DICT_ITEMS = DICT.__dict__["items"]
_DICT_LEN = DICT.__dict__["__len__"]
_DICT_GET = DICT.__dict__["get"]
_PROPERTY_GET = property.__dict__["__get__"]
_METHOD_DESC_GET = policy.METHOD_DESCRIPTOR.__dict__["__get__"]
_CLASSMETHOD_DESC_GET = policy.CLASSMETHOD_DESCRIPTOR.__dict__["__get__"]
_WRAPPER_DESC_GET = policy.WRAPPER_DESCRIPTOR.__dict__["__get__"]
_FUNCTION_QUALNAME = policy.FUNCTION.__dict__["__qualname__"].__get__
_BUILTIN_NAME = policy.BUILTIN_FUNCTION.__dict__["__name__"].__get__
_CODE_NAME = policy.CODE.__dict__["co_name"].__get__


def type_name(cls) -> str:
    """'int', 'dict', 'myapp.Config': from the C slots, never a metaclass property."""
    try:
        qual = _TYPE_QUALNAME(cls)
        if policy.is_heap_type(cls):
            module = static.class_dict_get(cls, "__module__", None)
        else:
            module = _TYPE_MODULE(cls)
        if type(module) is not STR:
            module = "?"
        if type(qual) is not STR:
            qual = "?"
        if module == "builtins":
            return qual
        return module + "." + qual
    except Exception:
        return "?"


def type_name_of(obj) -> str:
    return type_name(type(obj))


# ---------------------------------------------------------------------------
# Values the evaluator hands out in place of real ones.
# ---------------------------------------------------------------------------
class _Inert:
    """Base of the markers: every operation on them is refused.

    The evaluator never applies operators to anything but builtin data, so
    these dunders are a second line of defence, not the first.
    """

    __slots__ = ()

    def _refuse(self, *args, **kwargs):
        raise DeniedError(self.refusal("this operation"))

    __bool__ = __len__ = __iter__ = __hash__ = __eq__ = __ne__ = __lt__ = __le__ = _refuse
    __gt__ = __ge__ = __format__ = __getitem__ = __contains__ = __call__ = _refuse
    __add__ = __radd__ = __mul__ = __rmul__ = __mod__ = __index__ = _refuse

    def refusal(self, what: str) -> str:
        raise NotImplementedError


class Redacted(_Inert):
    """A secret: the evaluator never lets a query touch the real value.

    It holds no reference to the value (only the name it was read under and
    the value's type name), so nothing derived from it can leak the secret.
    """

    __slots__ = ("name", "value_type")

    def __init__(self, name: str, value_type: str) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "value_type", value_type)

    def __setattr__(self, name, value):
        raise AttributeError("Redacted is immutable")

    def refusal(self, what: str) -> str:
        return ("%s refused: the value of %r is redacted because its name looks like a "
                "secret; %s" % (what, self.name, policy.REDACTED_HINT))

    def __repr__(self) -> str:
        return "<redacted %s>" % (self.name,)

    __str__ = __repr__


class PropertyMarker(_Inert):
    """A descriptor (property, cached_property, C getset ...) that was not run.

    ``runnable``: allow_properties would run it (a property getter, a C
    getset); ``absent``: the framework (policy.STORED_DESCRIPTORS) whose
    storage was read and did not hold the value yet.
    """

    __slots__ = ("name", "owner", "descriptor_type", "runnable", "absent")

    def __init__(self, name: str, owner: str, descriptor_type: str, runnable: bool = True,
                 absent: str = "") -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "owner", owner)
        object.__setattr__(self, "descriptor_type", descriptor_type)
        object.__setattr__(self, "runnable", runnable is True)
        object.__setattr__(self, "absent", absent)

    def __setattr__(self, name, value):
        raise AttributeError("PropertyMarker is immutable")

    def _remedy(self) -> str:
        if self.runnable:
            return ("re-run with --allow-properties (EvalOptions(allow_properties=True)) to "
                    "run property getters")
        return "--isolated --allow-calls reads it in a disposable fork"

    def _why(self) -> str:
        if self.absent:
            return ("whose value is not stored yet (reading it would run %s code to compute "
                    "or load it)" % self.absent)
        return "(reading it would run target code)"

    def text(self) -> str:
        return "%s %r of %s: not evaluated %s" % (self.descriptor_type, self.name, self.owner,
                                                  self._why())

    def refusal(self, what: str) -> str:
        return ("%s refused: %r of %s is a %s that was not run %s; %s"
                % (what, self.name, self.owner, self.descriptor_type, self._why(),
                   self._remedy()))

    def read_refusal(self) -> str:
        """The one-line refusal of the read itself (docs/DESIGN.md "One refusal")."""
        return ("attribute %r of %s refused: it is a %s %s; %s"
                % (self.name, self.owner, self.descriptor_type, self._why(), self._remedy()))

    def __repr__(self) -> str:
        return "<%s %s.%s>" % (self.descriptor_type, self.owner, self.name)

    __str__ = __repr__


class LazyIter:
    """An iterator the evaluator built (generator expression, zip, enumerate ...).

    Only these and builtin containers are iterated by the evaluator: target
    generators and iterators are never advanced.
    """

    __slots__ = ("gen", "label")

    def __init__(self, gen, label: str) -> None:
        self.gen = gen
        self.label = label

    def __repr__(self) -> str:
        return "<%s>" % self.label


class DictView:
    """d.keys()/values()/items() of a target dict, read lazily and safely.

    Iterates the live dict with its unbound C methods (a concurrent resize
    gives a clean QueryError), redacts values under secret-looking keys, and
    answers ``in``/``len`` without running target code.
    """

    __slots__ = ("d", "which", "redact")

    def __init__(self, d, which: str, redact: bool) -> None:
        self.d = d
        self.which = which
        self.redact = redact

    def __repr__(self) -> str:
        return "<dict_%s>" % self.which

    def length(self) -> int:
        return _DICT_LEN(self.d)

    def transform(self, key, value):
        if self.which == "keys":
            return key
        if self.redact and policy.looks_secret(key):
            value = redact_value(key, value)
        if self.which == "values":
            return value
        return (key, value)


MARKER_TYPES = (Redacted, PropertyMarker)


def redact_value(name, value):
    """value, or a Redacted marker for it (never a marker of a marker)."""
    if type(value) is Redacted:
        return value
    # the name as an exact str: a str-subclass key must not reach %s/%r later
    text = policy.name_text(name)
    return Redacted(text if text is not None else "?", type_name_of(value))


def refuse_marker(value, what: str) -> None:
    """Raise DeniedError if value is a marker (names the operation)."""
    t = type(value)
    if t is Redacted or t is PropertyMarker:
        raise DeniedError(value.refusal(what))


# ---------------------------------------------------------------------------
# The one place where an attribute read is decided.
# ---------------------------------------------------------------------------
def _getset_is_pure(owner) -> bool:
    if owner is None:
        return False
    if id(owner) in policy.PURE_GETSET_OWNER_IDS:
        return True
    return policy.is_c_type(owner) and type_name(owner) in policy.PURE_C_TYPE_NAMES


def attrs_copy(obj, redact: bool, limit: int) -> dict:
    """vars(obj) as a new dict: static instance attributes (never the live dict)."""
    out = {}
    if static.is_class(obj) or type(obj) is policy.MODULE:
        if static.is_class(obj):
            proxy = TYPE.__dict__["__dict__"].__get__(obj)
            keys = list(zip(range(limit + 1), policy.MAPPINGPROXY.__dict__["__iter__"](proxy)))
            pairs = [(k, static.class_dict_get(obj, k, None)) for _, k in keys
                     if type(k) is STR]
        else:
            d = static.instance_dict(obj)
            pairs = [] if d is None else [
                p for _, p in zip(range(limit + 1), list(_DICT_ITEMS(d)))]
        truncated = len(pairs) > limit
        for k, v in pairs[:limit]:
            if type(k) is STR and policy.name_refusal(k) is None:
                out[k] = v
    else:
        attrs, truncated = static.instance_attrs(obj, limit)
        for k, v in attrs:
            out[k] = v
    if truncated:
        raise BudgetError("max_snapshot_items",
                          "vars() of a %s with more than %d attributes refused (budget "
                          "max_snapshot_items)" % (type_name_of(obj), limit))
    if redact:
        for k in list(out):
            if policy.looks_secret(k):
                out[k] = redact_value(k, out[k])
    return out


def not_run(marker: PropertyMarker, placeholder: bool):
    """The one rule for a read that would run target code (docs/DESIGN.md
    "One refusal"): a query's read is refused (DeniedError, exit 3, one
    line); a listing (``navigate``: the TUI, paths) shows the placeholder."""
    if placeholder is True:
        return marker
    raise DeniedError(marker.read_refusal())


def read_attribute(obj, name, *, allow_properties: bool = False, redact: bool = True,
                   limit: int = 1000, placeholder: bool = False):
    """obj.name under the sandbox rules. Raises DeniedError / QueryError.

    A descriptor in policy's framework tables is read from its storage
    (static.stored_value). Any other read that would run target code is
    refused, or with ``placeholder`` returns a PropertyMarker (see not_run).
    """
    if type(name) is not STR:
        raise DeniedError("attribute name of type %s refused: names must be str"
                          % type_name_of(name))
    refuse_marker(obj, "attribute %r" % name)
    t = type(obj)
    if t is LazyIter or t is DictView:
        raise DeniedError("attribute %r refused: values the evaluator builds have no "
                          "readable attributes" % name)
    reason = policy.attribute_refusal(name)
    if reason is not None:
        raise DeniedError("attribute %r is not readable: %s" % (name, reason))
    if id(t) in policy.INTERNAL_TYPE_IDS and name not in policy.INTERNAL_ATTRS:
        raise DeniedError("attribute %r is not readable: %s (on %s objects only %s are)"
                          % (name, policy.CODE_FRAME, type_name(t),
                             ", ".join(sorted(policy.INTERNAL_ATTRS))))
    if name == "__class__":
        return t                                  # the real type, never a property
    if name == "__dict__":
        return attrs_copy(obj, redact, limit)
    is_class = static.is_class(obj)
    if is_class and (name == "__name__" or name == "__qualname__"):
        # the C slots, not a metaclass property of the same name
        return (_TYPE_NAME if name == "__name__" else _TYPE_QUALNAME)(obj)
    if is_class and (name == "__doc__" or name == "__module__"):
        # type's getset for __doc__ would call a descriptor stored as __doc__
        value, owner = static.find_in_mro(obj, name)
        if value is static.MISSING:
            return None
        if static.has_get(value) and type(value) is not property:
            return not_run(PropertyMarker(name, type_name(owner), type_name_of(value),
                                          runnable=False), placeholder)
        return value
    kind, value = static.lookup(obj, name)
    if kind == "missing":
        raise QueryError("AttributeError", "%s object has no attribute %r (read statically: "
                         "__getattr__ is not run)" % (type_name(t), name))
    if kind == "value" or kind == "slot":
        result = value
    elif kind == "method":
        vt = type(value)
        if is_class:
            result = value
        elif vt is policy.METHOD_DESCRIPTOR:
            result = _METHOD_DESC_GET(value, obj, t)
        elif vt is policy.CLASSMETHOD_DESCRIPTOR:
            result = _CLASSMETHOD_DESC_GET(value, None, t)
        else:
            result = _WRAPPER_DESC_GET(value, obj, t)
    elif kind == "getset":
        owner = static.getset_owner(value)
        if _getset_is_pure(owner) or allow_properties:
            target_type = type(obj)
            if type(value) is policy.MEMBER_DESCRIPTOR:
                result = static.read_member(value, obj)
            else:
                result = policy.GETSET_DESCRIPTOR.__dict__["__get__"](value, obj, target_type)
        else:
            return not_run(PropertyMarker(name, type_name(owner) if owner is not None else "?",
                                          "C getset descriptor"), placeholder)
    else:  # "descriptor"
        vt = type(value)
        status, result = ("unknown", None) if is_class else \
            static.stored_value(obj, name, value, limit)
        runnable = static.is_subclass(vt, property) and \
            static.find_in_mro(vt, "__get__")[0] is property.__dict__["__get__"]
        if status == "stored":
            pass                                  # read from its storage: no code ran
        elif allow_properties and runnable:
            # the user opted in: property.__get__ (C) calls the fget (target code)
            result = _PROPERTY_GET(value, obj, t)
        else:
            owner_type = t if not is_class else obj
            return not_run(PropertyMarker(name, type_name(owner_type), type_name(vt),
                                          runnable=runnable,
                                          absent=result if status == "absent" else ""),
                           placeholder)
    if redact and policy.looks_secret(name):
        return redact_value(name, result)
    return result


# ---------------------------------------------------------------------------
# Snapshots
# ---------------------------------------------------------------------------
_PAGED_BASES = (LIST, TUPLE, RANGE)
_SET_BASES = (SET, FROZENSET)


def _first(iterator, n: int) -> list:
    """The first n items of a C iterator, copied in one C call."""
    return [item for _, item in zip(range(n), iterator)]


class _Snapshotter:
    def __init__(self, limits: Limits, redact: bool, offset: int = 0) -> None:
        self.limits = limits
        self.redact = redact
        self.offset = offset  # paging: the top-level container starts at this item
        self.count = 0
        self.stack = set()      # ids of the containers being expanded (cycles)

    def node(self, value, depth: int) -> dict:
        self.count += 1
        try:
            return self._node(value, depth)
        except AgentError:
            raise
        except Exception as exc:
            return {"type": type_name_of(value), "kind": "opaque",
                    "text": "<unreadable: %s>" % type_name(type(exc))}

    def _redacted(self, name, value) -> dict:
        return {"type": type_name_of(value), "kind": "redacted",
                "reason": "name %r looks like a secret" % (policy.name_text(name),)}

    def _container_guard(self, value, depth: int):
        """A cut/cycle node if value must not be expanded here, else None."""
        vid = id(value)
        if vid in self.stack:
            return {"type": type_name_of(value), "kind": "cycle", "id": vid}
        if depth >= self.limits.max_snapshot_depth or \
                self.count >= self.limits.max_snapshot_nodes:
            return {"type": type_name_of(value), "kind": "cut", "id": vid}
        return None

    def _node(self, value, depth: int) -> dict:
        t = type(value)
        tname = type_name(t)
        lim = self.limits
        if t is Redacted:
            return {"type": value.value_type, "kind": "redacted",
                    "reason": "name %r looks like a secret" % (value.name,)}
        if t is PropertyMarker:
            return {"type": value.descriptor_type, "kind": "property", "text": value.text()}
        if t is NONE_TYPE:
            return {"type": "NoneType", "kind": "scalar", "text": "None", "value": None}
        if t is BOOL:
            return {"type": "bool", "kind": "scalar", "text": "True" if value else "False",
                    "value": value is True}
        base = static.builtin_base(value, (INT, FLOAT, COMPLEX, STR, BYTES, BYTEARRAY))
        if base is INT:
            bits = _INT_BITS(value)
            if bits * 0.30103 > lim.max_snapshot_int_digits:
                return {"type": tname, "kind": "scalar",
                        "text": "<int of %d bits>" % bits}
            return {"type": tname, "kind": "scalar", "text": _INT_REPR(value),
                    "value": _INT_INT(value)}
        if base is FLOAT:
            node = {"type": tname, "kind": "scalar", "text": _FLOAT_REPR(value)}
            f = _FLOAT_FLOAT(value)
            if f - f == 0.0:
                node["value"] = f
            return node
        if base is COMPLEX:
            return {"type": tname, "kind": "scalar", "text": _COMPLEX_REPR(value)}
        if base is STR:
            n = _STR_LEN(value)
            k = lim.max_snapshot_chars
            return {"type": tname, "kind": "str", "text": _STR_GETITEM(value, slice(0, k)),
                    "len": n, "truncated": n > k}
        if base is BYTES or base is BYTEARRAY:
            k = lim.max_snapshot_chars
            if base is BYTES:
                n = _BYTES_LEN(value)
                chunk = _BYTES_GETITEM(value, slice(0, k))
            else:
                n = _BYTEARRAY_LEN(value)
                chunk = bytes(_BYTEARRAY_GETITEM(value, slice(0, k)))
            return {"type": tname, "kind": "bytes", "text": _BYTES_REPR(chunk),
                    "len": n, "truncated": n > k}
        if t is DictView:
            return self._dict_view(value, depth, tname)
        if t is LazyIter:
            return {"type": tname, "kind": "opaque", "text": "<%s (not evaluated)>" % value.label}
        if id(t) in policy.OPAQUE_TYPE_IDS or static.is_class(value):
            return {"type": tname, "kind": "opaque", "text": opaque_text(value)}
        guard = self._container_guard(value, depth)
        if guard is not None:
            return guard
        self.stack.add(id(value))
        try:
            return self._expand(value, depth, tname)
        finally:
            self.stack.discard(id(value))

    def _window(self, iterator, depth: int) -> list:
        """The items to show: the first N, or N after `offset` at the top level."""
        n_items = self.limits.max_snapshot_items
        skip = self.offset if depth == 0 else 0
        if skip >= self.limits.max_scan_items:
            raise BudgetError("max_scan_items", "offset %d is beyond the scan budget (%d); "
                              "only lists and tuples page further"
                              % (skip, self.limits.max_scan_items))
        return _first(iterator, skip + n_items)[skip:]

    def _sliced(self, base, value, depth: int) -> list:
        """Lists and tuples page by slicing (one C call, any offset)."""
        skip = self.offset if depth == 0 else 0
        window = slice(skip, skip + self.limits.max_snapshot_items)
        return base.__dict__["__getitem__"](value, window)

    def _paged(self, node: dict, depth: int, shown: int) -> dict:
        skip = self.offset if depth == 0 else 0
        if skip:
            node["offset"] = skip
        node["truncated"] = node["len"] > skip + shown
        return node

    def _expand(self, value, depth: int, tname: str) -> dict:
        n_items = self.limits.max_snapshot_items
        deque = policy.deque_type()
        seq_base = static.builtin_base(value, _PAGED_BASES + ((deque,) if deque else ()))
        if seq_base is not None:
            length = seq_base.__dict__["__len__"](value)
            if seq_base is LIST or seq_base is TUPLE:
                items = list(self._sliced(seq_base, value, depth))
            else:
                items = self._window(seq_base.__dict__["__iter__"](value), depth)
            return self._paged({"type": tname, "kind": "seq", "len": length, "id": id(value),
                                "items": [self.node(x, depth + 1) for x in items]},
                               depth, len(items))
        if static.builtin_base(value, (DICT,)) is not None:
            length = _DICT_LEN(value)
            pairs = self._window(_DICT_ITEMS(value), depth)
            out = []
            for k, v in pairs:
                key_node = self.node(k, depth + 1)
                if self.redact and policy.looks_secret(k):
                    out.append([key_node, self._redacted(k, v)])
                else:
                    out.append([key_node, self.node(v, depth + 1)])
            return self._paged({"type": tname, "kind": "map", "len": length, "id": id(value),
                                "items": out}, depth, len(pairs))
        set_base = static.builtin_base(value, _SET_BASES)
        if set_base is not None:
            length = set_base.__dict__["__len__"](value)
            items = self._window(set_base.__dict__["__iter__"](value), depth)
            return self._paged({"type": tname, "kind": "set", "len": length, "id": id(value),
                                "items": [self.node(x, depth + 1) for x in items]},
                               depth, len(items))
        attrs, truncated = static.instance_attrs(value, n_items)
        out = {}
        for name, v in attrs:
            if self.redact and policy.looks_secret(name):
                out[name] = self._redacted(name, v)
            else:
                out[name] = self.node(v, depth + 1)
        node = {"type": tname, "kind": "object", "attrs": out, "id": id(value)}
        if truncated:
            node["truncated"] = True
        return node

    def _dict_view(self, view, depth: int, tname: str) -> dict:
        guard = self._container_guard(view.d, depth)
        if guard is not None:
            guard["type"] = "dict_" + view.which
            return guard
        length = view.length()
        pairs = _first(_DICT_ITEMS(view.d), self.limits.max_snapshot_items)
        self.stack.add(id(view.d))
        try:
            items = [self.node(view.transform(k, v), depth + 1) for k, v in pairs]
        finally:
            self.stack.discard(id(view.d))
        return {"type": "dict_" + view.which, "kind": "seq", "len": length, "id": id(view.d),
                "truncated": length > len(items), "items": items}


def opaque_text(value) -> str:
    """'<function f>', '<module os>', '<class myapp.Config>' - names only."""
    t = type(value)
    try:
        if static.is_class(value):
            return "<class %s>" % type_name(value)
        if t is policy.MODULE:
            d = static.instance_dict(value)
            name = None if d is None else static.dict_get_str(d, "__name__", None)
            return "<module %s>" % (name if type(name) is STR else "?")
        if t is policy.FUNCTION:
            return "<function %s>" % _FUNCTION_QUALNAME(value)
        if t is policy.BUILTIN_FUNCTION:
            return "<built-in function %s>" % _BUILTIN_NAME(value)
        if t is policy.CODE:
            return "<code %s>" % _CODE_NAME(value)
    except Exception:
        pass
    return "<%s>" % type_name(t)


def snapshot(value, *, limits: Limits | None = None, redact: bool = True, offset: int = 0) -> dict:
    """The snapshot node of a value (see docs/DESIGN.md, "Snapshots").

    ``offset`` pages through a big top-level container: its items start at that
    index (the node then carries ``offset``); nested containers always start at 0.
    """
    lim = limits if limits is not None else Limits()
    if type(offset) is not INT or offset < 0:
        raise QueryError("ValueError", "offset must be a non-negative integer")
    return _Snapshotter(lim, redact, offset).node(value, 0)


def snapshot_namespace(mapping, *, limits: Limits | None = None, redact: bool = True) -> dict:
    """A `map` node of a frame's locals or a module's globals, keyed by name.

    Names the sandbox never reads (``__builtins__``, ``__loader__`` ...) are
    left out; values under secret-looking names are redacted.
    """
    lim = limits if limits is not None else Limits()
    snap = _Snapshotter(lim, redact)
    if static.builtin_base(mapping, (DICT,)) is None:
        raise QueryError("TypeError", "a namespace must be a dict, not %s"
                         % type_name_of(mapping))
    length = _DICT_LEN(mapping)
    pairs = _first(_DICT_ITEMS(mapping), lim.max_snapshot_items)
    items = []
    for k, v in pairs:
        if type(k) is not STR or policy.name_refusal(k) is not None:
            continue
        key_node = {"type": "str", "kind": "str", "text": k, "len": len(k),
                    "truncated": False}
        if redact and policy.looks_secret(k):
            items.append([key_node, snap._redacted(k, v)])
        else:
            items.append([key_node, snap.node(v, 1)])
    return {"type": type_name_of(mapping), "kind": "map", "len": length, "id": id(mapping),
            "truncated": length > len(pairs), "items": items}


def item_at(value, index, *, redact: bool = True, limits: Limits | None = None):
    """The index-th element of a builtin sequence/set, or value of the index-th pair."""
    lim = limits if limits is not None else Limits()
    refuse_marker(value, "item %r" % (index,))
    if type(index) is not INT or index < 0:
        raise QueryError("TypeError", "path item index must be an int >= 0, not %r"
                         % (index,) if type(index) is INT else "path item index must be an int")
    direct = static.builtin_base(value, (LIST, TUPLE))
    if direct is not None:  # O(1) indexing through the C method: no scan budget needed
        if index >= direct.__dict__["__len__"](value):
            raise QueryError("IndexError", "item %d out of range" % index)
        return direct.__dict__["__getitem__"](value, index)
    if index >= lim.max_scan_items:
        raise BudgetError("max_scan_items", "item %d is beyond the scan budget (%d)"
                          % (index, lim.max_scan_items))
    if type(value) is DictView:
        pairs = _first(_DICT_ITEMS(value.d), index + 1)
        if index >= len(pairs):
            raise QueryError("IndexError", "item %d out of range" % index)
        return value.transform(*pairs[index])
    deque = policy.deque_type()
    seq_base = static.builtin_base(value, _PAGED_BASES + (STR, BYTES) + ((deque,) if deque else ()))
    set_base = static.builtin_base(value, _SET_BASES)
    if seq_base is not None or set_base is not None:
        base = seq_base if seq_base is not None else set_base
        items = _first(base.__dict__["__iter__"](value), index + 1)
        if index >= len(items):
            raise QueryError("IndexError", "item %d out of range" % index)
        return items[index]
    if static.builtin_base(value, (DICT,)) is not None:
        pairs = _first(_DICT_ITEMS(value), index + 1)
        if index >= len(pairs):
            raise QueryError("IndexError", "item %d out of range" % index)
        k, v = pairs[index]
        if redact and policy.looks_secret(k):
            return redact_value(k, v)
        return v
    raise QueryError("TypeError", "%s is not a builtin container: it has no items"
                     % type_name_of(value))


def navigate(value, path, *, redact: bool = True, allow_properties: bool = False,
             limits: Limits | None = None):
    """Follow a path of ["attr", name] / ["item", i] steps statically."""
    if type(path) is not LIST and type(path) is not TUPLE:
        raise QueryError("TypeError", "a path must be a list of steps")
    for step in path:
        if (type(step) is not LIST and type(step) is not TUPLE) or len(step) != 2:
            raise QueryError("TypeError", "a path step must be [\"attr\", name] or "
                             "[\"item\", index]")
        op, arg = step[0], step[1]
        if type(op) is STR and op == "attr":
            value = read_attribute(value, arg, allow_properties=allow_properties,
                                   redact=redact, placeholder=True)
        elif type(op) is STR and op == "item":
            value = item_at(value, arg, redact=redact, limits=limits)
        else:
            raise QueryError("TypeError", "unknown path step %r" % (op,)
                             if type(op) is STR else "unknown path step")
    return value
