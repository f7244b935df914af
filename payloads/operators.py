"""Operators, comparisons, ``in``, subscripts, iteration and formatting,
applied to builtin data only (the interpreter calls these for its nodes; the
builtin implementations in ``callables.py`` reuse them).
"""
from __future__ import annotations

from . import costs, policy, static
from .datasafety import (
    as_data,
    as_data_items,
    build_dict,
    check_compare_cost,
    check_hash_cost,
    check_int_operand,
    check_int_text,
    check_search_cost,
    deque_bases,
    keys_safe,
    text_size,
)
from .errors import BudgetError, DeniedError, QueryError
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
    PLAIN_IDS,
    RANGE,
    SEQ_BASES,
    SET,
    STR,
    TUPLE,
)
from .snapshot import DictView, LazyIter, redact_value, refuse_marker, type_name, type_name_of

MISSING = static.MISSING
_INT_BITS = INT.__dict__["bit_length"]
_DICT_GET = DICT.__dict__["get"]
_DICT_ITEMS = DICT.__dict__["items"]
_DICT_LEN = DICT.__dict__["__len__"]
_DICT_CONTAINS = DICT.__dict__["__contains__"]

_BINOP_SYMBOLS = {
    "Add": "+", "Sub": "-", "Mult": "*", "Div": "/", "FloorDiv": "//", "Mod": "%",
    "Pow": "**", "LShift": "<<", "RShift": ">>", "BitOr": "|", "BitXor": "^",
    "BitAnd": "&", "MatMult": "@",
}




def binop(ctx, op: str, a, b):
    symbol = _BINOP_SYMBOLS.get(op, op)
    what = "operator %r" % symbol
    refuse_marker(a, what)
    refuse_marker(b, what)
    ta, tb = type(a), type(b)
    if id(ta) in policy.NUMBER_IDS and id(tb) in policy.NUMBER_IDS:
        return arith(ctx, op, a, b, what)
    if op == "Add" and ta is tb and (ta is STR or ta is BYTES or ta is LIST or ta is TUPLE):
        ctx.grow(len(a) + len(b), what)
        return a + b
    if op == "Mult":
        seq, count = (a, b) if (tb is INT or tb is BOOL) else (b, a)
        ts = type(seq)
        if (ts is STR or ts is BYTES or ts is LIST or ts is TUPLE) and \
                (type(count) is INT or type(count) is BOOL):
            if _INT_BITS(count) > 64:
                raise BudgetError("max_sequence", "%s with a count of %d bits refused (budget "
                                  "max_sequence)" % (what, _INT_BITS(count)))
            ctx.grow(len(seq) * max(count, 0), what)
            return seq * count
    if op == "Mod" and (ta is STR or ta is BYTES):
        raise DeniedError("operator '%' formatting of str/bytes is refused: it calls str() "
                          "of its arguments and reads mappings; use an f-string")
    if (ta is SET or ta is FROZENSET) and (tb is SET or tb is FROZENSET) and \
            (op == "BitOr" or op == "BitAnd" or op == "Sub" or op == "BitXor"):
        a = as_data(ctx, a, what)
        b = as_data(ctx, b, what)
        ctx.grow(len(a) + len(b), what)
        check_hash_cost(ctx, list(a) + list(b), what)
        if op == "BitOr":
            return a | b
        if op == "BitAnd":
            return a & b
        if op == "Sub":
            return a - b
        return a ^ b
    if op == "BitOr" and ta is DICT and tb is DICT:
        if not hasattr(DICT, "__or__"):
            raise QueryError("TypeError", "unsupported operand type(s) for |: 'dict' and "
                             "'dict' (dict union needs Python 3.9)")
        out = build_dict(ctx, dict_pairs(ctx, a, what) + dict_pairs(ctx, b, what), what)
        ctx.grow(len(out), what)
        return out
    raise DeniedError("%s refused on %s and %s: operators apply to builtin values only "
                      "(it would run their methods)" % (what, type_name(ta), type_name(tb)))


def arith(ctx, op: str, a, b, what: str):
    check_int_operand(ctx, a, what)
    check_int_operand(ctx, b, what)
    lim = ctx.limits.max_int_bits
    ints = (type(a) is INT or type(a) is BOOL) and (type(b) is INT or type(b) is BOOL)
    if op == "Add":
        return a + b
    if op == "Sub":
        return a - b
    if op == "Mult":
        if ints and _INT_BITS(a) + _INT_BITS(b) > lim:
            raise BudgetError("max_int_bits", "%s would build an int of about %d bits (budget "
                              "max_int_bits=%d)" % (what, _INT_BITS(a) + _INT_BITS(b), lim))
        return a * b
    if op == "Div":
        return a / b
    if op == "FloorDiv":
        return a // b
    if op == "Mod":
        return a % b
    if op == "Pow":
        if ints and b > 0 and (a > 1 or a < -1):
            estimate = (_INT_BITS(a) - 1) * b
            if estimate > lim:
                raise BudgetError("max_int_bits", "%s would build an int of at least %d bits "
                                  "(budget max_int_bits=%d)" % (what, estimate, lim))
        elif type(b) is INT and _INT_BITS(b) > 64 and type(a) is not INT:
            pass       # float/complex ** huge int: C raises OverflowError quickly
        return a ** b
    if op == "LShift":
        if ints and a != 0 and b > 0 and _INT_BITS(a) + b > lim:
            raise BudgetError("max_int_bits", "%s would build an int of %d bits (budget "
                              "max_int_bits=%d)" % (what, _INT_BITS(a) + b, lim))
        return a << b
    if op == "RShift":
        return a >> b
    if op == "BitOr":
        return a | b
    if op == "BitAnd":
        return a & b
    if op == "BitXor":
        return a ^ b
    raise DeniedError("%s refused: no builtin number supports it" % what)




_COMPARE_SYMBOLS = {"Eq": "==", "NotEq": "!=", "Lt": "<", "LtE": "<=", "Gt": ">",
                    "GtE": ">=", "Is": "is", "IsNot": "is not", "In": "in",
                    "NotIn": "not in"}


def compare(ctx, op: str, a, b) -> bool:
    what = "comparison %r" % _COMPARE_SYMBOLS.get(op, op)
    refuse_marker(a, what)
    refuse_marker(b, what)
    if op == "Is":
        return a is b
    if op == "IsNot":
        return a is not b
    if op == "In":
        return contains(ctx, b, a)
    if op == "NotIn":
        return not contains(ctx, b, a)
    a = as_data(ctx, a, what)
    b = as_data(ctx, b, what)
    check_compare_cost(ctx, a, b, what)
    if op == "Eq":
        return a == b
    if op == "NotEq":
        return a != b
    if op == "Lt":
        return a < b
    if op == "LtE":
        return a <= b
    if op == "Gt":
        return a > b
    if op == "GtE":
        return a >= b
    raise DeniedError("%s is not supported" % what)




def contains(ctx, container, item) -> bool:
    what = "'in'"
    refuse_marker(container, what)
    refuse_marker(item, what)
    t = type(container)
    if t is DictView:
        if container.which == "keys":
            item = as_data(ctx, item, what, hashable=True)
            keys_safe(ctx, container.d, DICT, what)
            return _DICT_CONTAINS(container.d, item)
        return contains(ctx, LazyIter(view_iter(ctx, container), "dict view"), item)
    if t is LazyIter:
        item = as_data(ctx, item, what)
        for x in container.gen:
            ctx.tick()
            x = as_data(ctx, x, what)
            check_compare_cost(ctx, x, item, what)
            if x == item:
                return True
        return False
    base = static.builtin_base(container, (STR, BYTES, BYTEARRAY, DICT, SET, FROZENSET, LIST,
                                           TUPLE, RANGE) + deque_bases())
    if base is STR:
        if type(item) is not STR:
            if id(type(item)) in ATOMIC_IDS:
                raise QueryError("TypeError", "'in <string>' requires string as left operand, "
                                 "not %s" % type_name_of(item))
            raise DeniedError("'in' on a str refused for a %s: only an exact str is looked "
                              "for" % type_name_of(item))
        ctx.cost(costs.search_cost(STR.__len__(container), len(item), False), what)
        return STR.__contains__(container, item)
    if base is BYTES or base is BYTEARRAY:
        if type(item) is not BYTES and type(item) is not INT:
            if id(type(item)) in ATOMIC_IDS:
                raise QueryError("TypeError", "a bytes-like object is required, not %r"
                                 % type_name_of(item))
            raise DeniedError("'in' on bytes refused for a %s: only exact bytes or an int "
                              "is looked for" % type_name_of(item))
        m = len(item) if type(item) is BYTES else 1
        ctx.cost(costs.search_cost(base.__len__(container), m, False), what)
        return base.__contains__(container, item)
    if base is DICT or base is SET or base is FROZENSET:
        item = as_data(ctx, item, what, hashable=True)
        keys_safe(ctx, container, base, what)
        return base.__dict__["__contains__"](container, item)
    if base is RANGE:
        item = as_data(ctx, item, what)
        check_range_search(ctx, container, item, what)
        return RANGE.__contains__(container, item)
    if base is not None:
        item = as_data(ctx, item, what)
        copy = exact_copy(ctx, container, base, what)
        check_search_cost(ctx, copy, item, what)
        return item in copy
    raise DeniedError("'in' refused on %s: it would run its __contains__/__iter__"
                      % type_name(t))


_RANGE_START = RANGE.__dict__["start"].__get__
_RANGE_STOP = RANGE.__dict__["stop"].__get__
_RANGE_STEP = RANGE.__dict__["step"].__get__


def range_length(r) -> int:
    """len(r) without OverflowError (a target may hold range(10**30))."""
    start, stop, step = _RANGE_START(r), _RANGE_STOP(r), _RANGE_STEP(r)
    if step > 0:
        return max(0, (stop - start + step - 1) // step)
    return max(0, (start - stop - step - 1) // -step)


def check_range_search(ctx, r, item, what: str) -> None:
    """range.__contains__/count/index are O(1) for an exact int or bool; for
    anything else they iterate the whole range in C."""
    if type(item) is INT or type(item) is BOOL:
        return
    ctx.cost(costs.range_search_cost(range_length(r)), what)


def exact_copy(ctx, container, base, what: str):
    """A checked private copy (list) of a builtin sequence or a subclass of one."""
    n = base.__dict__["__len__"](container)
    ctx.scan(n, what)
    copy = list(base.__dict__["__iter__"](container))   # atomic C copy
    return as_data_items(ctx, copy, what, False, 0, PLAIN_IDS)


def subscript(ctx, value, index):
    what = "subscript"
    refuse_marker(value, what)
    refuse_marker(index, what)
    deque = policy.deque_type()
    base = static.builtin_base(value, SEQ_BASES + (DICT,) + deque_bases())
    if base is DICT:
        index = as_data(ctx, index, what, hashable=True)
        keys_safe(ctx, value, DICT, what)
        # the unbound C dict.get: never __missing__ (a defaultdict does not grow,
        # a Counter's Python __missing__ does not run)
        result = _DICT_GET(value, index, MISSING)
        if result is MISSING:
            raise QueryError("KeyError", short_text(index))
        if ctx.redact and policy.looks_secret(index):
            return redact_value(index, result)
        return result
    if base is not None:
        ti = type(index)
        if ti is policy.SLICE:
            if base is deque:
                raise QueryError("TypeError", "sequence index must be integer, not 'slice'")
            index = plain_slice(index)
            length = base.__dict__["__len__"](value)
            n = len(range(*index.indices(length)))
            ctx.grow(n, "slice")
            return base.__dict__["__getitem__"](value, index)
        if ti is not INT and ti is not BOOL:
            raise DeniedError("subscript of %s with %s refused: indices are ints or slices "
                              "(anything else would run its __index__)"
                              % (type_name_of(value), type_name(ti)))
        return base.__dict__["__getitem__"](value, index)
    if type(value) is DictView or type(value) is LazyIter:
        raise QueryError("TypeError", "%r object is not subscriptable; materialise it with "
                         "list(...)" % type_name_of(value))
    raise DeniedError("subscript of %s refused: it would run its __getitem__"
                      % type_name_of(value))


_SLICE_START = policy.SLICE.__dict__["start"].__get__
_SLICE_STOP = policy.SLICE.__dict__["stop"].__get__
_SLICE_STEP = policy.SLICE.__dict__["step"].__get__


def plain_slice(s):
    """A new slice of a slice object whose bounds are exact ints or None.

    A slice can come from the target (``obj[target_slice]``) holding objects
    with an ``__index__``: C code would call it to compute the indices."""
    parts = (_SLICE_START(s), _SLICE_STOP(s), _SLICE_STEP(s))
    for part in parts:
        if part is not None and type(part) is not INT and type(part) is not BOOL:
            refuse_marker(part, "slice")
            raise DeniedError("slice bound of type %s refused: only int or None (it would "
                              "run its __index__)" % type_name_of(part))
    return slice(parts[0], parts[1], parts[2])


def short_text(x) -> str:
    t = type(x)
    if id(t) in ATOMIC_IDS:
        if t is STR or t is BYTES:
            return repr(x[:80]) + ("..." if len(x) > 80 else "")
        if t is INT and _INT_BITS(x) > 256:
            return "<int of %d bits>" % _INT_BITS(x)
        return repr(x)
    return "<%s>" % type_name(t)


# --- iteration -------------------------------------------------------------------
def iterate(ctx, value, what: str):
    """A Python iterator over a builtin container or an evaluator-built iterator.

    Target generators/iterators are never advanced; user iterables never have
    their __iter__ called (builtin subclasses are read through the base type).
    """
    refuse_marker(value, what)
    t = type(value)
    if t is LazyIter:
        return value.gen
    if t is DictView:
        return view_iter(ctx, value)
    deque = policy.deque_type()
    base = static.builtin_base(value, SEQ_BASES + (DICT, SET, FROZENSET) + deque_bases())
    if base is None:
        if t is policy.GENERATOR or t is policy.COROUTINE or t is policy.ASYNC_GENERATOR:
            raise DeniedError("iterating a %s of the target refused: it would advance it "
                              "(next() is never called on target iterators)" % type_name(t))
        raise DeniedError("%s refused: iterating %s would run its __iter__ (only builtin "
                          "containers are iterated)" % (what, type_name(t)))
    iterator = base.__dict__["__iter__"](value)
    if base is DICT or base is SET or base is FROZENSET or (deque is not None and base is deque):
        return guarded(iterator, type_name(t))
    return iterator


def guarded(iterator, tname: str):
    """Iterate a live dict/set/deque; a concurrent resize becomes a clean QueryError."""
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except RuntimeError:
            raise QueryError("RuntimeError", "the %s changed size while being read (another "
                             "thread is modifying it); retry the query" % tname) from None
        yield item


def view_iter(ctx, view: DictView):
    for k, v in guarded(iter(_DICT_ITEMS(view.d)), "dict"):
        yield view.transform(k, v)


def materialize(ctx, value, what: str, limit: int, budget: str) -> list:
    """A new list of value's items, at most `limit` (BudgetError beyond)."""
    refuse_marker(value, what)
    t = type(value)
    if t is not LazyIter and t is not DictView:
        base = static.builtin_base(value, SEQ_BASES + (DICT, SET, FROZENSET) + deque_bases())
        if base is not None:
            n = base.__dict__["__len__"](value)
            if n > limit:
                raise BudgetError(budget, "%s over %d items refused (budget %s=%d)"
                                  % (what, n, budget, limit))
            ctx.scan(n, what)
            ctx.grow(n, what)
            return list(base.__dict__["__iter__"](value))    # atomic C copy
    out = []
    for item in iterate(ctx, value, what):
        ctx.tick()
        if len(out) >= limit:
            raise BudgetError(budget, "%s produced more than %d items (budget %s)"
                              % (what, limit, budget))
        out.append(item)
    ctx.grow(len(out), what)
    return out


def dict_pairs(ctx, mapping, what: str) -> list:
    """[(key, value)] copied from a dict, with secret-looking keys' values redacted."""
    refuse_marker(mapping, what)
    if static.builtin_base(mapping, (DICT,)) is None:
        raise DeniedError("%s refused on %s: only dicts are unpacked (it would run its "
                          "keys()/__getitem__)" % (what, type_name_of(mapping)))
    keys_safe(ctx, mapping, DICT, what)
    n = _DICT_LEN(mapping)
    ctx.scan(n, what)
    ctx.grow(n, what)
    pairs = list(_DICT_ITEMS(mapping))
    for k, _ in pairs:
        if id(type(k)) not in HASHABLE_IDS:
            raise DeniedError("%s refused: key of type %s is not builtin data"
                              % (what, type_name_of(k)))
    if ctx.redact:
        out = []
        for k, v in pairs:
            ctx.tick()
            if policy.looks_secret(k):
                v = redact_value(k, v)
            out.append((k, v))
        return out
    return pairs




def check_spec(ctx, spec, what: str) -> None:
    if type(spec) is not STR:
        raise DeniedError("%s format spec must be a str" % what)
    if len(spec) > 32 or not spec.isascii():
        raise DeniedError("%s format spec %r refused: specs are short ASCII" % (what, spec[:40]))
    number = ""
    for c in spec + " ":
        if "0" <= c <= "9":
            number += c
        else:
            if number and int(number) > ctx.limits.max_format_width:
                raise BudgetError("max_format_width", "%s width/precision %s refused (budget "
                                  "max_format_width=%d)" % (what, number,
                                                            ctx.limits.max_format_width))
            number = ""


def format_value(ctx, value, spec, what: str) -> str:
    check_spec(ctx, spec, what)
    refuse_marker(value, what)
    t = type(value)
    if id(t) not in ATOMIC_IDS:
        if spec:
            raise DeniedError("%s of %s with a format spec refused: only builtin scalars are "
                              "formatted (it would run its __format__)" % (what, type_name(t)))
        return to_str(ctx, value, what)
    if t is STR:
        return format(value, spec) if spec else value
    if t is INT:
        check_int_text(ctx, value, what)
    return format(value, spec)


def to_repr(ctx, value, what: str) -> str:
    refuse_marker(value, what)
    value = as_data(ctx, value, what)
    ctx.grow(text_size(ctx, value), what)
    return repr(value)


def to_str(ctx, value, what: str) -> str:
    refuse_marker(value, what)
    t = type(value)
    if t is STR:
        return value
    if id(t) in ATOMIC_IDS:
        return to_repr(ctx, value, what)          # str() of bool/None/numbers/bytes is repr()
    base = static.builtin_base(value, (STR, INT, FLOAT))
    if t is not base and base is STR:
        return STR.__dict__["__str__"](value)          # exact copy of a str subclass
    if t is not base and base is INT:
        check_int_text(ctx, value, what)
        return INT.__dict__["__repr__"](value)
    if t is not base and base is FLOAT:
        return FLOAT.__dict__["__repr__"](value)
    return to_repr(ctx, value, what)


