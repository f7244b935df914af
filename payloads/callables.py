"""What a query may call: the builtin and method implementations.

The tables of what is allowed live in ``policy.py`` (builtin name ->
implementation name, method kinds, query helpers); this module holds the
implementations and ``resolve``, which decides on the callee object itself,
before any argument is evaluated.
"""
from __future__ import annotations

import builtins

from . import costs, policy, static
from .datasafety import (
    as_data,
    as_data_items,
    build_dict,
    build_set,
    check_hash_cost,
    check_int_operand,
    check_search_cost,
    deque_bases,
    keys_safe,
    truth,
    weight_of_items,
)
from .errors import AgentError, BudgetError, DeniedError, QueryError, message_of
from .operators import (
    arith,
    check_range_search,
    dict_pairs,
    exact_copy,
    format_value,
    iterate,
    materialize,
    to_repr,
    to_str,
)
from .policy import (
    ATOMIC_IDS,
    BOOL,
    BYTEARRAY,
    BYTES,
    DICT,
    FLOAT,
    FROZENSET,
    HASHABLE_IDS,
    INT,
    LIST,
    RANGE,
    SEQ_BASES,
    SET,
    STR,
    TUPLE,
)
from .snapshot import (
    DictView,
    LazyIter,
    attrs_copy,
    read_attribute,
    redact_value,
    refuse_marker,
    type_name,
    type_name_of,
)

MISSING = static.MISSING
_INT_BITS = INT.__dict__["bit_length"]
_BUILTIN_SELF = policy.BUILTIN_FUNCTION.__dict__["__self__"].__get__
_BUILTIN_NAME = policy.BUILTIN_FUNCTION.__dict__["__name__"].__get__
_MDESC_OBJCLASS = policy.METHOD_DESCRIPTOR.__dict__["__objclass__"].__get__
_MDESC_NAME = policy.METHOD_DESCRIPTOR.__dict__["__name__"].__get__
_METHOD_DESC_GET = policy.METHOD_DESCRIPTOR.__dict__["__get__"]
_DICT_GET = DICT.__dict__["get"]


def resolve(ctx, func, label: str):
    """The handler for calling `func`, checked on the object itself."""
    fid = id(func)
    entry = policy.BUILTINS_BY_ID.get(fid)
    if entry is not None and entry[0] is func:
        name = entry[1]
        impl = BUILTIN_IMPLS[name]
        return lambda ctx, args, kwargs: impl(ctx, args, kwargs, name)
    entry = EVAL_HELPERS_BY_ID.get(fid)
    if entry is not None and entry[0] is func:
        impl = entry[1]
        return lambda ctx, args, kwargs: impl(ctx, args, kwargs, label)
    entry = ctx.helper_ids.get(fid)
    if entry is not None and entry[0] is func:
        return lambda ctx, args, kwargs: call_agent_helper(ctx, func, entry[1], args, kwargs)
    t = type(func)
    if t is policy.BUILTIN_FUNCTION:
        self = _BUILTIN_SELF(func)
        name = _BUILTIN_NAME(func)
        handler = policy.method_handler(type(self), name)
        if handler is not None and policy.is_c_type(type(self)):
            impl = METHOD_IMPLS[handler]
            return lambda ctx, args, kwargs: impl(ctx, func, self, name, args, kwargs)
        raise DeniedError(_refusal(label, func, self))
    if t is policy.METHOD_DESCRIPTOR:
        owner = _MDESC_OBJCLASS(func)
        name = _MDESC_NAME(func)
        handler = policy.method_handler(owner, name)
        if handler is not None:
            impl = METHOD_IMPLS[handler]

            def unbound(ctx, args, kwargs):
                if not args or type(args[0]) is not owner:
                    raise DeniedError("call of %r refused: its first argument must be exactly "
                                      "a %s" % (label, type_name(owner)))
                return impl(ctx, _METHOD_DESC_GET(func, args[0], owner), args[0], name,
                            args[1:], kwargs)
            return unbound
    raise DeniedError(_refusal(label, func, None))


def _refusal(label: str, func, self) -> str:
    t = type(func)
    msg = "call of %r refused: not on the allowlist" % label
    if fid_is(func, "getattr") or fid_is(func, "hasattr"):
        return msg + " (use getattr_static(obj, name): it never runs target code)"
    if t is policy.BUILTIN_FUNCTION and self is not None:
        if type(self) is policy.MODULE:
            return msg
        if type(self) is STR and _BUILTIN_NAME(func) in ("format", "format_map"):
            return msg + " (str.format reads attributes named in the string; use an f-string)"
        return msg + " (%s.%s is not a listed pure method of an exact builtin type)" % (
            type_name_of(self), _BUILTIN_NAME(func))
    if static.is_class(func):
        return msg + " (calling a class would run its constructor)"
    if t is policy.FUNCTION or t is policy.METHOD:
        return msg + " (functions of the target are never called)"
    return msg


def fid_is(func, name: str) -> bool:
    return func is _DICT_GET(builtins.__dict__, name, MISSING) and \
        type(func) is policy.BUILTIN_FUNCTION


def call_agent_helper(ctx, func, name: str, args, kwargs):
    for value in list(args) + list(kwargs.values()):
        if id(type(value)) not in ATOMIC_IDS:
            refuse_marker(value, "call of helper %r" % name)
            raise DeniedError("call of helper %r refused: its arguments must be builtin "
                              "scalars, not %s" % (name, type_name_of(value)))
    try:
        return func(*args, **kwargs)
    except AgentError:
        raise
    except Exception as exc:
        raise QueryError(type_name_of(exc), message_of(exc)) from None


def _no_kwargs(kwargs, name: str, allowed=()) -> None:
    for k in kwargs:
        if k not in allowed:
            raise QueryError("TypeError", "%s() got an unexpected keyword argument %r"
                             % (name, k))


def _arity(args, name: str, low: int, high: int) -> None:
    if not low <= len(args) <= high:
        raise QueryError("TypeError", "%s() takes %d to %d arguments (%d given)"
                         % (name, low, high, len(args)))


# --- builtin implementations ---------------------------------------------------
def builtin_len(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 1, 1)
    x = args[0]
    refuse_marker(x, "len()")
    if type(x) is DictView:
        return x.length()
    base = static.builtin_base(x, SEQ_BASES + (DICT, SET, FROZENSET) + deque_bases())
    if base is None:
        if type(x) is LazyIter:
            raise QueryError("TypeError", "object of type 'generator' has no len()")
        raise DeniedError("len() refused on %s: it would run its __len__ (builtin containers "
                          "only)" % type_name_of(x))
    return base.__dict__["__len__"](x)


def _numbers_only(ctx, x, what: str) -> None:
    refuse_marker(x, what)
    if id(type(x)) not in policy.NUMBER_IDS:
        raise DeniedError("%s refused on %s: builtin numbers only" % (what, type_name_of(x)))


def builtin_abs(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 1, 1)
    _numbers_only(ctx, args[0], "abs()")
    return abs(args[0])


def _keyed(ctx, items: list, key, what: str) -> list:
    """The keys for sorted/min/max: computed by the evaluator, each checked plain."""
    if key is None:
        return as_data(ctx, items, what)
    invoke = resolve(ctx, key, "key function")
    keys = []
    for item in items:
        ctx.tick()
        keys.append(invoke(ctx, [item], {}))
    return as_data(ctx, keys, what)


def builtin_minmax(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name, ("key", "default"))
    if not args:
        raise QueryError("TypeError", "%s expected at least 1 argument, got 0" % name)
    lim = ctx.limits.max_sort_items
    items = list(args) if len(args) > 1 else materialize(ctx, args[0], name + "()", lim,
                                                           "max_sort_items")
    if not items:
        if "default" in kwargs:
            return kwargs["default"]
        raise QueryError("ValueError", "%s() arg is an empty sequence" % name)
    keys = _keyed(ctx, items, kwargs.get("key"), name + "()")
    ctx.scan(len(keys), name + "()")
    ctx.cost(costs.compare_cost(weight_of_items(ctx, keys)), name + "()")
    pick = min if name == "min" else max
    index = pick(range(len(keys)), key=keys.__getitem__)   # C loop over builtin keys
    return items[index]


def builtin_sorted(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name, ("key", "reverse"))
    _arity(args, name, 1, 1)
    items = materialize(ctx, args[0], "sorted()", ctx.limits.max_sort_items, "max_sort_items")
    reverse = kwargs.get("reverse", False)
    if type(reverse) is not BOOL:
        raise DeniedError("sorted() reverse= must be a bool")
    keys = _keyed(ctx, items, kwargs.get("key"), "sorted()")
    ctx.scan(len(keys), "sorted()")
    ctx.cost(costs.sort_cost(len(keys), weight_of_items(ctx, keys)), "sorted()")
    order = sorted(range(len(keys)), key=keys.__getitem__, reverse=reverse)
    return [items[i] for i in order]


def builtin_sum(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name, ("start",))
    _arity(args, name, 1, 2)
    total = args[1] if len(args) == 2 else kwargs.get("start", 0)
    _numbers_only(ctx, total, "sum()")
    for item in iterate(ctx, args[0], "sum()"):       # a Python loop: yields the GIL
        ctx.tick()
        _numbers_only(ctx, item, "sum()")
        total = arith(ctx, "Add", total, item, "sum()")
    return total


def builtin_any_all(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 1, 1)
    want = name == "any"
    for item in iterate(ctx, args[0], name + "()"):
        ctx.tick()
        if truth(ctx, item, name + "()") == want:
            return want
    return not want


def builtin_round(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name, ("ndigits",))
    _arity(args, name, 1, 2)
    x = args[0]
    if type(x) is not INT and type(x) is not FLOAT and type(x) is not BOOL:
        refuse_marker(x, "round()")
        raise DeniedError("round() refused on %s: int or float only" % type_name_of(x))
    nd = args[1] if len(args) == 2 else kwargs.get("ndigits")
    if nd is None:
        return round(x)
    if type(nd) is not INT or not -400 <= nd <= 400:
        raise DeniedError("round() ndigits must be an int between -400 and 400")
    check_int_operand(ctx, x, "round()")
    return round(x, nd)


def builtin_repr(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 1, 1)
    return to_repr(ctx, args[0], "repr()")


def builtin_format(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 1, 2)
    return format_value(ctx, args[0], args[1] if len(args) == 2 else "", "format()")


def builtin_enumerate(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name, ("start",))
    _arity(args, name, 1, 2)
    start = args[1] if len(args) == 2 else kwargs.get("start", 0)
    if type(start) is not INT:
        raise DeniedError("enumerate() start must be an int")
    source = iterate(ctx, args[0], "enumerate()")

    def gen():
        i = start
        for item in source:
            yield (i, item)
            i += 1
    return LazyIter(gen(), "enumerate")


def builtin_zip(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    sources = [iterate(ctx, a, "zip()") for a in args]

    def gen():
        if not sources:
            return
        while True:
            row = []
            for s in sources:
                try:
                    row.append(next(s))
                except StopIteration:
                    return
            yield tuple(row)
    return LazyIter(gen(), "zip")


def builtin_map(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    if len(args) < 2:
        raise QueryError("TypeError", "map() must have at least two arguments.")
    invoke = resolve(ctx, args[0], "map() function")
    rows = builtin_zip(ctx, args[1:], {}, "zip")

    def gen():
        for row in rows.gen:
            ctx.tick()
            yield invoke(ctx, list(row), {})
    return LazyIter(gen(), "map")


def builtin_filter(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 2, 2)
    invoke = None if args[0] is None else resolve(ctx, args[0], "filter() function")
    source = iterate(ctx, args[1], "filter()")

    def gen():
        for item in source:
            ctx.tick()
            value = item if invoke is None else invoke(ctx, [item], {})
            if truth(ctx, value, "filter()"):
                yield item
    return LazyIter(gen(), "filter")


def builtin_reversed(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 1, 1)
    x = args[0]
    refuse_marker(x, "reversed()")
    base = static.builtin_base(x, (LIST, TUPLE, STR, BYTES, RANGE) + deque_bases())
    if base is None:
        raise DeniedError("reversed() refused on %s: builtin sequences only"
                          % type_name_of(x))
    n = base.__dict__["__len__"](x)
    ctx.scan(n, "reversed()")
    items = list(base.__dict__["__iter__"](x))
    return LazyIter(iter(items[::-1]), "reversed")


def builtin_range(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 1, 3)
    for a in args:
        if type(a) is not INT and type(a) is not BOOL:
            refuse_marker(a, "range()")
            raise DeniedError("range() refused on %s: ints only" % type_name_of(a))
        check_int_operand(ctx, a, "range()")
    r = range(*args)
    if len(r) > ctx.limits.max_range:
        raise BudgetError("max_range", "range of %d items refused (budget max_range=%d)"
                          % (len(r), ctx.limits.max_range))
    return r


def builtin_divmod(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 2, 2)
    for a in args:
        _numbers_only(ctx, a, "divmod()")
        check_int_operand(ctx, a, "divmod()")
    return divmod(args[0], args[1])


def builtin_pow(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 2, 3)
    for a in args:
        _numbers_only(ctx, a, "pow()")
    if len(args) == 2:
        return arith(ctx, "Pow", args[0], args[1], "pow()")
    lim = ctx.limits.max_powmod_bits
    for a in args:
        if type(a) is not INT and type(a) is not BOOL:
            raise QueryError("TypeError", "pow() 3rd argument not allowed unless all "
                             "arguments are integers")
        if _INT_BITS(a) > lim:
            raise BudgetError("max_powmod_bits", "pow() with a %d-bit argument refused "
                              "(budget max_powmod_bits=%d)" % (_INT_BITS(a), lim))
    ctx.cost(costs.powmod_cost(_INT_BITS(args[1]), _INT_BITS(args[2])), "pow(a, b, m)")
    return pow(args[0], args[1], args[2])


def builtin_int_text(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 1, 1)
    x = args[0]
    if type(x) is not INT and type(x) is not BOOL:
        refuse_marker(x, name + "()")
        raise DeniedError("%s() refused on %s: ints only" % (name, type_name_of(x)))
    check_int_operand(ctx, x, name + "()")
    return {"hex": hex, "oct": oct, "bin": bin}[name](x)


def builtin_chr(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 1, 1)
    if type(args[0]) is not INT:
        raise DeniedError("chr() refused: an int is needed")
    return chr(args[0])


def builtin_ord(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 1, 1)
    t = type(args[0])
    if t is not STR and t is not BYTES:
        refuse_marker(args[0], "ord()")
        raise DeniedError("ord() refused on %s: str or bytes only" % type_name(t))
    return ord(args[0])


def builtin_callable(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 1, 1)
    refuse_marker(args[0], "callable()")
    return callable(args[0])        # reads the C slot tp_call: runs nothing


def builtin_id(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 1, 1)
    refuse_marker(args[0], "id()")
    return id(args[0])


def builtin_str(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name, ("encoding", "errors"))
    if not args and not kwargs:
        return ""
    _arity(args, name, 1, 3)
    if len(args) > 1 or kwargs:
        if type(args[0]) is not BYTES and type(args[0]) is not BYTEARRAY:
            refuse_marker(args[0], "str()")
            raise DeniedError("str(x, encoding) refused on %s: exact bytes or bytearray only "
                              "(a subclass's __len__/buffer hooks would run)"
                              % type_name_of(args[0]))
        encoding = args[1] if len(args) > 1 else kwargs.get("encoding", "utf-8")
        errors = args[2] if len(args) > 2 else kwargs.get("errors", "strict")
        return codec(ctx, args[0], "decode", [encoding, errors], {})
    return to_str(ctx, args[0], "str()")


def builtin_int(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name, ("base",))
    if not args:
        return 0
    _arity(args, name, 1, 2)
    x = args[0]
    refuse_marker(x, "int()")
    base_arg = args[1] if len(args) == 2 else kwargs.get("base", MISSING)
    t = type(x)
    if t is STR or t is BYTES:
        if len(x) > ctx.limits.max_int_digits:
            raise BudgetError("max_int_digits", "int() of %d characters refused (budget "
                              "max_int_digits=%d)" % (len(x), ctx.limits.max_int_digits))
        if base_arg is MISSING:
            return int(x)
        if type(base_arg) is not INT:
            raise DeniedError("int() base must be an int")
        return int(x, base_arg)
    if base_arg is not MISSING:
        raise QueryError("TypeError", "int() can't convert non-string with explicit base")
    if t is INT or t is BOOL or t is FLOAT:
        return int(x)
    if static.builtin_base(x, (INT,)) is INT:
        return INT.__dict__["__int__"](x)       # an IntEnum/int subclass: its value
    raise DeniedError("int() refused on %s: builtin numbers and text only (it would run "
                      "its __int__/__index__)" % type_name(t))


def builtin_float(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    if not args:
        return 0.0
    _arity(args, name, 1, 1)
    x = args[0]
    refuse_marker(x, "float()")
    t = type(x)
    if t is STR or t is BYTES:
        if len(x) > ctx.limits.max_int_digits:
            raise BudgetError("max_int_digits", "float() of %d characters refused" % len(x))
        return float(x)
    if t is INT or t is BOOL or t is FLOAT:
        return float(x)
    base = static.builtin_base(x, (INT, FLOAT))
    if base is FLOAT:
        return FLOAT.__dict__["__float__"](x)
    if base is INT:
        return float(INT.__dict__["__int__"](x))
    raise DeniedError("float() refused on %s: builtin numbers and text only"
                      % type_name(t))


def builtin_bool(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    if not args:
        return False
    _arity(args, name, 1, 1)
    return truth(ctx, args[0], "bool()")


def builtin_bytes(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name, ("encoding", "errors"))
    if not args and not kwargs:
        return b""
    _arity(args, name, 1, 3)
    x = args[0]
    refuse_marker(x, "bytes()")
    if type(x) is STR:
        encoding = args[1] if len(args) > 1 else kwargs.get("encoding", MISSING)
        if encoding is MISSING:
            raise QueryError("TypeError", "string argument without an encoding")
        errors = args[2] if len(args) > 2 else kwargs.get("errors", "strict")
        return codec(ctx, x, "encode", [encoding, errors], {})
    if type(x) is INT:
        raise DeniedError("bytes(n) refused: it allocates n zero bytes; use b'\\0' * n")
    if type(x) is BYTES or type(x) is BYTEARRAY:
        return bytes(x)
    items = materialize(ctx, x, "bytes()", ctx.limits.max_sequence, "max_sequence")
    for item in items:
        if type(item) is not INT:
            raise DeniedError("bytes() of %s items refused: ints only" % type_name_of(item))
    return bytes(items)


def builtin_list(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    if not args:
        return []
    _arity(args, name, 1, 1)
    return materialize(ctx, args[0], "list()", ctx.limits.max_sequence, "max_sequence")


def builtin_tuple(ctx, args, kwargs, name):
    return tuple(builtin_list(ctx, args, kwargs, name))


def builtin_set(ctx, args, kwargs, name):
    items = builtin_list(ctx, args, kwargs, name)
    items = as_data_items(ctx, items, name + "()", True, 0, HASHABLE_IDS)
    return build_set(ctx, list(items), name + "()", frozen=name == "frozenset")


def builtin_dict(ctx, args, kwargs, name):
    _arity(args, name, 0, 1)
    out = []
    if args:
        src = args[0]
        refuse_marker(src, "dict()")
        if static.builtin_base(src, (DICT,)) is not None:
            pairs = dict_pairs(ctx, src, "dict()")
        else:
            pairs = materialize(ctx, src, "dict()", ctx.limits.max_sequence, "max_sequence")
        for pair in pairs:
            ctx.tick()
            if type(pair) is not TUPLE and type(pair) is not LIST or len(pair) != 2:
                raise QueryError("TypeError", "dict() needs (key, value) pairs")
            out.append((as_data(ctx, pair[0], "dict key", hashable=True), pair[1]))
    out.extend(kwargs.items())
    ctx.grow(len(out), "dict()")
    return build_dict(ctx, out, "dict()")


# --- the evaluator's own helpers -------------------------------------------------
def builtin_type(ctx, args, kwargs, label):
    if len(args) != 1 or kwargs:
        raise DeniedError("type() with %d arguments refused: only type(x) (three arguments "
                          "would create a class)" % len(args))
    refuse_marker(args[0], "type()")
    return type(args[0])          # the real type; never reads a __class__ property


def builtin_isinstance(ctx, args, kwargs, label):
    _no_kwargs(kwargs, "isinstance")
    _arity(args, "isinstance", 2, 2)
    x, classes = args
    refuse_marker(x, "isinstance()")
    if type(classes) is TUPLE:
        wanted = list(classes)
    else:
        wanted = [classes]
    for c in wanted:
        if not static.is_class(c):
            raise QueryError("TypeError", "isinstance() arg 2 must be a type or tuple of "
                             "types")
    # the real type's MRO, by identity: no __class__ property, no __instancecheck__
    for c in static.mro(type(x)):
        for w in wanted:
            if c is w:
                return True
    return False


def helper_getattr_static(ctx, args, kwargs, label):
    _no_kwargs(kwargs, "getattr_static")
    _arity(args, "getattr_static", 2, 3)
    try:
        return read_attribute(args[0], args[1], allow_properties=False, redact=ctx.redact,
                              limit=ctx.limits.max_snapshot_items * 10)
    except QueryError:
        if len(args) == 3:
            return args[2]
        raise


def builtin_vars(ctx, args, kwargs, label):
    _no_kwargs(kwargs, "vars")
    _arity(args, "vars", 1, 1)
    refuse_marker(args[0], "vars()")
    return attrs_copy(args[0], ctx.redact, ctx.limits.max_snapshot_items * 10)


def getattr_static(obj, name, default=None):
    """getattr_static(obj, name[, default]): read an attribute statically (the
    query-visible helper; calls are routed to the evaluator's implementation)."""
    raise DeniedError("getattr_static is only callable from a query")


EVAL_HELPERS = {"getattr_static": getattr_static}
EVAL_HELPERS_BY_ID = {id(getattr_static): (getattr_static, helper_getattr_static)}


# --- method implementations ------------------------------------------------------
def _args_plain(ctx, args, kwargs, what: str):
    """Arguments of a builtin method: builtin data only (private copies)."""
    args = [as_data(ctx, a, what) for a in args]
    kwargs = dict([(k, as_data(ctx, v, what)) for k, v in kwargs.items()])
    return args, kwargs


# pure methods that build a new text (or list of texts) about the size of self
_TEXT_COPIES = frozenset(["capitalize", "casefold", "lower", "upper", "swapcase", "title",
                          "lstrip", "rstrip", "strip", "split", "rsplit", "splitlines",
                          "partition", "rpartition", "removeprefix", "removesuffix"])


def method_pure(ctx, method, self, name, args, kwargs):
    args, kwargs = _args_plain(ctx, args, kwargs, name + "()")
    if name in _TEXT_COPIES:
        ctx.grow(len(self) * (3 if name == "casefold" else 1), name + "()")
    return method(*args, **kwargs)


def _text_len(x) -> int:
    """The length of an exact str/bytes argument, or 1 (an int, None)."""
    t = type(x)
    return len(x) if (t is STR or t is BYTES) else 1


def _needle(args, kwargs, keyword: str):
    if args:
        return args[0]
    return kwargs.get(keyword)


def method_search(ctx, method, self, name, args, kwargs):
    """count/find/index/partition/split(sep): a forward substring search."""
    return _searching(ctx, method, self, name, args, kwargs, False)


def method_rsearch(ctx, method, self, name, args, kwargs):
    """rfind/rindex/rpartition/rsplit(sep): a reverse substring search."""
    return _searching(ctx, method, self, name, args, kwargs, True)


def _searching(ctx, method, self, name, args, kwargs, reverse: bool):
    args, kwargs = _args_plain(ctx, args, kwargs, name + "()")
    needle = _needle(args, kwargs, "sep")
    if needle is not None:             # split()/rsplit() without sep is linear
        ctx.cost(costs.search_cost(len(self), _text_len(needle), reverse), name + "()")
    if name in _TEXT_COPIES:
        ctx.grow(len(self), name + "()")
    return method(*args, **kwargs)


def method_strip(ctx, method, self, name, args, kwargs):
    args, kwargs = _args_plain(ctx, args, kwargs, name + "()")
    chars = _needle(args, kwargs, "chars")
    if chars is not None:
        ctx.cost(costs.strip_cost(len(self), _text_len(chars)), name + "()")
    ctx.grow(len(self), name + "()")
    return method(*args, **kwargs)


def method_width(ctx, method, self, name, args, kwargs):
    args, kwargs = _args_plain(ctx, args, kwargs, name + "()")
    width = args[0] if args else kwargs.get("width", 0)
    if type(width) is INT:
        ctx.grow(max(width, 0), name + "()")
    return method(*args, **kwargs)


def method_expandtabs(ctx, method, self, name, args, kwargs):
    args, kwargs = _args_plain(ctx, args, kwargs, name + "()")
    size = args[0] if args else kwargs.get("tabsize", 8)
    if type(size) is INT:
        ctx.grow(len(self) * max(size, 1), name + "()")
    return method(*args, **kwargs)


def method_replace(ctx, method, self, name, args, kwargs):
    args, kwargs = _args_plain(ctx, args, kwargs, name + "()")
    if args:
        # the size check below counts the matches (one search) and replace
        # searches again: both are priced before the first one runs
        ctx.cost(2 * costs.search_cost(len(self), _text_len(args[0]), False), name + "()")
    if len(args) >= 2 and type(args[0]) is type(self) and type(args[1]) is type(self):
        old, new = args[0], args[1]
        count = self.count(old) if old else len(self) + 1
        if len(args) >= 3 and type(args[2]) is INT and args[2] >= 0:
            count = min(count, args[2])
        ctx.grow(len(self) + count * max(len(new) - len(old), 0), name + "()")
    return method(*args, **kwargs)


def method_join(ctx, method, self, name, args, kwargs):
    _no_kwargs(kwargs, name)
    _arity(args, name, 1, 1)
    items = materialize(ctx, args[0], "join()", ctx.limits.max_sequence, "max_sequence")
    total = 0
    for item in items:
        if type(item) is not type(self):
            refuse_marker(item, "join()")
            raise QueryError("TypeError", "sequence item: expected %s instance, %s found"
                             % (type_name_of(self), type_name_of(item)))
        total += len(item) + len(self)
    ctx.grow(total, "join()")
    return method(items)


def codec(ctx, value, op: str, args, kwargs):
    encoding = args[0] if args else kwargs.get("encoding", "utf-8")
    errors = args[1] if len(args) > 1 else kwargs.get("errors", "strict")
    if type(encoding) is not STR or encoding.lower() not in policy.ALLOWED_CODECS:
        raise DeniedError("%s with encoding %r refused: only %s (looking up another codec "
                          "imports a module into the target)"
                          % (op, encoding, ", ".join(sorted(policy.ALLOWED_CODECS))))
    if type(errors) is not STR or errors not in policy.ALLOWED_CODEC_ERRORS:
        raise DeniedError("%s with errors=%r refused: only %s"
                          % (op, errors, ", ".join(sorted(policy.ALLOWED_CODEC_ERRORS))))
    t = type(value)
    if not (t is STR if op == "encode" else (t is BYTES or t is BYTEARRAY)):
        raise DeniedError("%s refused on %s: exact builtin types only" % (op, type_name(t)))
    # backslashreplace writes up to 10 bytes per character ('\U0001f600')
    ctx.grow(len(value) * (10 if errors == "backslashreplace" else 4), op + "()")
    if op == "encode":
        return STR.encode(value, encoding, errors)
    if type(value) is BYTEARRAY:
        return BYTEARRAY.decode(value, encoding, errors)
    return BYTES.decode(value, encoding, errors)


def method_codec(ctx, method, self, name, args, kwargs):
    _no_kwargs(kwargs, name, ("encoding", "errors"))
    return codec(ctx, self, name, args, kwargs)


def method_hex(ctx, method, self, name, args, kwargs):
    args, kwargs = _args_plain(ctx, args, kwargs, name + "()")
    ctx.grow(len(self) * 3, name + "()")
    return method(*args, **kwargs)


def method_to_bytes(ctx, method, self, name, args, kwargs):
    args, kwargs = _args_plain(ctx, args, kwargs, name + "()")
    length = args[0] if args else kwargs.get("length", 1)
    if type(length) is INT:
        ctx.grow(max(length, 0), name + "()")
    return method(*args, **kwargs)


def method_elements(ctx, method, self, name, args, kwargs):
    args, kwargs = _args_plain(ctx, args, kwargs, name + "()")
    if type(self) is RANGE:
        if args:
            check_range_search(ctx, self, args[0], name + "()")
        return method(*args, **kwargs)
    # index()/count() compare every item: run them on a checked private copy
    copy = exact_copy(ctx, self, type(self), name + "()")
    if args:
        check_search_cost(ctx, copy, args[0], name + "()")
    return LIST.__dict__[name](list(copy), *args, **kwargs)


def method_copy(ctx, method, self, name, args, kwargs):
    _no_kwargs(kwargs, name)
    _arity(args, name, 0, 0)
    if type(self) is DICT:
        return build_dict(ctx, dict_pairs(ctx, self, "copy()"), "copy()")
    n = len(self)
    ctx.scan(n, "copy()")
    ctx.grow(n, "copy()")
    if type(self) is SET or type(self) is FROZENSET:
        # set.copy() re-inserts every key: priced like building the set
        check_hash_cost(ctx, as_data(ctx, self, "copy()"), "copy()")
    return method()


def method_setop(ctx, method, self, name, args, kwargs):
    _no_kwargs(kwargs, name)
    mine = as_data(ctx, self, name + "()")
    total = len(mine)
    converted = []
    for arg in args:
        items = materialize(ctx, arg, name + "()", ctx.limits.max_sequence, "max_sequence")
        converted.append(as_data_items(ctx, items, name + "()", True, 0, HASHABLE_IDS))
        total += len(items)
    ctx.grow(total, name + "()")
    combined = list(mine)
    for items in converted:
        combined.extend(items)
    check_hash_cost(ctx, combined, name + "()")
    return type(self).__dict__[name](mine, *converted)


def method_dict_get(ctx, method, self, name, args, kwargs):
    _no_kwargs(kwargs, name)
    _arity(args, name, 1, 2)
    key = as_data(ctx, args[0], "dict.get()", hashable=True)
    keys_safe(ctx, self, DICT, "dict.get()")
    result = _DICT_GET(self, key, MISSING)
    if result is MISSING:
        return args[1] if len(args) == 2 else None
    if ctx.redact and policy.looks_secret(key):
        return redact_value(key, result)
    return result


def method_dict_view(ctx, method, self, name, args, kwargs):
    _no_kwargs(kwargs, name)
    _arity(args, name, 0, 0)
    return DictView(self, name, ctx.redact)


def _implementations(names, prefix: str) -> dict:
    """policy's table of implementation names -> these functions (an entry of
    the policy without an implementation here aborts the import)."""
    namespace = globals()
    out = {}
    for key, impl_name in names:
        impl = namespace.get(prefix + impl_name if prefix else impl_name)
        if impl is None or type(impl) is not policy.FUNCTION:
            raise ImportError("policy names %r for %r, which callables.py does not implement"
                              % (impl_name, key))
        out[key] = impl
    return out


# builtin name -> implementation (policy.BUILTIN_IMPLEMENTATIONS)
BUILTIN_IMPLS = _implementations(policy.BUILTIN_IMPLEMENTATIONS.items(), "")
# method kind -> implementation (the kinds used in policy's method tables)
METHOD_IMPLS = _implementations([(k, k) for k in policy.method_kinds()], "method_")
