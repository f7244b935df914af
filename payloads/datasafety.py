"""Data-safety predicates: is this value builtin data all the way down?

C code compares, hashes, sorts and prints only what ``as_data`` returns, so no
target method can run (see the evaluator's rule 4). Also: dict-key safety
(``keys_safe``), truthiness of builtin values only, and the size checks of
ints and texts.
"""
from __future__ import annotations

from . import costs, policy, static
from .errors import BudgetError, DeniedError, QueryError
from .policy import (
    ATOMIC_IDS,
    BYTEARRAY,
    BYTES,
    CONTAINER_IDS,
    DICT,
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
from .snapshot import DictView, LazyIter, refuse_marker, type_name, type_name_of

_INT_BITS = INT.__dict__["bit_length"]
_DICT_ITEMS = DICT.__dict__["items"]
_DICT_LEN = DICT.__dict__["__len__"]
_STR_LEN = STR.__dict__["__len__"]
_BYTES_LEN = BYTES.__dict__["__len__"]
_TUPLE_ID, _FROZENSET_ID = id(TUPLE), id(FROZENSET)
_LENGTH = {id(t): t.__dict__["__len__"] for t in (LIST, TUPLE, SET, FROZENSET, DICT)}
# hashes of str/bytes are keyed (SipHash): their collisions cannot be built
_KEYED_HASH_IDS = frozenset((id(STR), id(BYTES)))
_SMALL_SCALAR_IDS = frozenset(map(id, (policy.NONE_TYPE, policy.BOOL, policy.FLOAT,
                                       policy.COMPLEX, policy.ELLIPSIS_TYPE)))
_INT_IDS = frozenset((id(INT), id(policy.BOOL)))


# --- the data rules ------------------------------------------------------------
def as_data(ctx, x, what: str, hashable: bool = False, depth: int = 0):
    """x as builtin data all the way down, or refuse; returns a private copy.

    C code compares, hashes, sorts and prints only what this returns, so no
    target method can run: every object in it is an exact builtin scalar or an
    exact builtin container of such. Mutable containers are copied atomically
    (one C call) *before* being checked, so another thread cannot slip a target
    object in between the check and the use. Bounded depth and size; with
    redaction on, a dict holding a secret-looking key is refused (its value
    would be printed or compared whole).
    """
    t = type(x)
    tid = id(t)
    if tid in ATOMIC_IDS:
        return x
    if tid not in CONTAINER_IDS:
        refuse_marker(x, what)
        if t is LazyIter or t is DictView:
            raise DeniedError("%s refused on a %s: materialise it first with list(...)"
                              % (what, x.label if t is LazyIter else repr(x)))
        raise DeniedError("%s refused: %s is not builtin data (it would run its methods: "
                          "__eq__, __hash__, __lt__, __repr__, __format__ ...)"
                          % (what, type_name(t)))
    if hashable and (t is LIST or t is DICT or t is SET):
        raise QueryError("TypeError", "unhashable type: %r" % type_name(t))
    if depth >= ctx.limits.max_value_depth:
        raise BudgetError("max_value_depth", "%s refused: value nests deeper than %d (budget "
                          "max_value_depth)" % (what, ctx.limits.max_value_depth))
    if t is DICT:
        ctx.scan(2 * _DICT_LEN(x), what)             # priced before the copy
        pairs = list(_DICT_ITEMS(x))                 # atomic copy, compares nothing
        if not pairs:
            return {}
        keys, values = zip(*pairs)
        keys = as_data_items(ctx, keys, what, True, depth, HASHABLE_IDS)
        if ctx.redact and (id(STR) in set(map(id, map(type, keys)))
                           or id(BYTES) in set(map(id, map(type, keys)))):
            for k in keys:
                ctx.tick()
                if policy.looks_secret(k):
                    raise DeniedError("%s refused: the dict has the key %r, whose value is "
                                      "redacted because it looks like a secret; %s"
                                      % (what, k, policy.REDACTED_HINT))
        values = as_data_items(ctx, values, what, False, depth, PLAIN_IDS)
        check_hash_cost(ctx, keys, what)
        return dict(zip(keys, values))
    ctx.scan(_LENGTH[id(t)](x), what)                # priced before the copy
    if t is LIST:
        items = LIST.copy(x)                         # atomic copy
    elif t is SET:
        items = list(SET.__iter__(x))                # atomic copy
    else:
        items = x                                    # tuple, frozenset: immutable
    is_set = t is SET or t is FROZENSET
    allowed = HASHABLE_IDS if (is_set or hashable) else PLAIN_IDS
    checked = as_data_items(ctx, items, what, is_set or hashable, depth, allowed)
    if is_set:
        # compared, hashed and rebuilt by C code that probes per hash group
        check_hash_cost(ctx, checked, what)
    if t is LIST:
        return list(checked)
    if t is TUPLE:
        return x if checked is items else tuple(checked)
    if t is SET:
        return set(checked)
    return x if checked is items else frozenset(checked)


def as_data_items(ctx, items, what: str, hashable: bool, depth: int, allowed: frozenset):
    """Check a snapshot of items; returns it, or a new list if nested copies differ."""
    ids = set(map(id, map(type, items)))          # C-level pass: no target code
    if ids <= ATOMIC_IDS:
        return items
    for vid in ids:
        if vid not in allowed:
            _refuse_element(items, vid, what, hashable)
    out = []
    for item in items:                            # nested containers: recurse
        ctx.tick()
        if id(type(item)) in CONTAINER_IDS:
            item = as_data(ctx, item, what, hashable, depth + 1)
        out.append(item)
    return out


def _refuse_element(items, type_id: int, what: str, hashable: bool) -> None:
    for item in items:
        if id(type(item)) == type_id:
            refuse_marker(item, what)
            if hashable and id(type(item)) in CONTAINER_IDS:
                raise QueryError("TypeError", "unhashable type: %r" % type_name_of(item))
            raise DeniedError("%s refused: it contains a %s, which is not builtin data (it "
                              "would run its methods)" % (what, type_name_of(item)))
    raise DeniedError("%s refused: the container changed while being checked" % what)


def keys_safe(ctx, container, base, what: str) -> None:
    """Refuse if looking a key up in this dict/set could run target code.

    A C lookup compares the probe with every stored key of equal hash, calling
    the stored key's __eq__. Safe if every stored key's type compares by C code:
    builtin scalars, tuples/frozensets of builtin data, or classes whose __eq__
    is object's/int's/str's... (identity or C comparison: enums, IntEnums).
    """
    n = base.__dict__["__len__"](container)
    ctx.scan(n, what)
    keys = base.__dict__["__iter__"](container)
    ids = set(map(id, map(type, keys)))
    if ids <= policy.SAFE_KEY_IDS:
        return
    checked = set()
    for k in list(base.__dict__["__iter__"](container)):
        kid = id(type(k))
        if kid in policy.SAFE_KEY_IDS:
            continue
        ctx.tick()
        if kid == _TUPLE_ID or kid == _FROZENSET_ID:
            as_data(ctx, k, what, hashable=True)
            continue
        if kid in checked:
            continue
        eq, _ = static.find_in_mro(type(k), "__eq__")
        if id(eq) not in policy.C_EQ_IDS:
            raise DeniedError("%s refused: the %s has keys of type %s, whose __eq__ would run "
                              "on a hash collision; iterate .items() and compare with 'is' "
                              "instead" % (what, type_name_of(container), type_name_of(k)))
        checked.add(kid)


def truth(ctx, x, what: str) -> bool:
    """Truthiness of builtin values only (never a target __bool__/__len__)."""
    t = type(x)
    if id(t) in ATOMIC_IDS or id(t) in CONTAINER_IDS or t is RANGE or t is BYTEARRAY:
        return bool(x)
    refuse_marker(x, "truth value in " + what)
    if t is DictView:
        return x.length() != 0
    if t is LazyIter:
        return True
    base = static.builtin_base(x, SEQ_BASES + (DICT, SET, FROZENSET) + deque_bases())
    if base is not None and base is not STR and base is not BYTES:
        # a builtin container subclass: its storage's length, not its __len__
        return base.__dict__["__len__"](x) != 0
    raise DeniedError("truth value of %s refused in %s: it would run its __bool__/__len__"
                      % (type_name(t), what))


def deque_bases() -> tuple:
    d = policy.deque_type()
    return (d,) if d is not None else ()


def check_int_operand(ctx, x, what: str) -> None:
    if (type(x) is INT) and _INT_BITS(x) > ctx.limits.max_int_bits:
        raise BudgetError("max_int_bits", "%s on an int of %d bits refused (budget "
                          "max_int_bits=%d)" % (what, _INT_BITS(x), ctx.limits.max_int_bits))


def check_int_text(ctx, value, what: str) -> None:
    digits = int(_INT_BITS(value) * 0.30103) + 1
    if digits > ctx.limits.max_int_digits:
        raise BudgetError("max_int_digits", "%s of an int of about %d digits refused (budget "
                          "max_int_digits=%d)" % (what, digits, ctx.limits.max_int_digits))


def text_size(ctx, x, depth: int = 0) -> int:
    """An upper bound of len(repr(x)) for builtin data (already checked plain)."""
    t = type(x)
    if t is STR or t is BYTES:
        return 4 * len(x) + 3
    if t is INT:
        check_int_text(ctx, x, "repr")
        return int(_INT_BITS(x) * 0.30103) + 2
    if id(t) in ATOMIC_IDS:
        return 64
    if depth > ctx.limits.max_value_depth:
        raise BudgetError("max_value_depth", "value nests too deeply to print")
    total = 2
    items = _DICT_ITEMS(x) if t is DICT else x
    for item in items:
        ctx.tick()
        total += 2 + text_size(ctx, item, depth + 1)
        if total > ctx.limits.max_sequence:
            raise BudgetError("max_sequence", "the text would exceed %d characters (budget "
                              "max_sequence)" % ctx.limits.max_sequence)
    return total


# --- time: the inputs of the cost model (costs.py) ------------------------------
def check_hash_cost(ctx, keys, what: str) -> None:
    """Price building (or probing) a set/dict of these hashable data keys.

    Keys with one hash are probed one after another: g keys sharing a hash
    cost g*g comparisons. Ints, floats and tuples of them collide at will
    (hash(i * (2**61 - 1)) == 0), so a query could build a quadratic set;
    the group sizes are counted first (hashing builtin data is C code).
    """
    n = len(keys)
    if n < 2:
        return
    ids = set(map(id, map(type, keys)))
    if ids <= _KEYED_HASH_IDS:
        return
    ctx.scan(n, what)
    hashes = list(map(hash, keys))
    if len(set(hashes)) == n:      # distinct ints: hash(h) == h, no chain forms
        return
    groups = {}
    for h in hashes:
        groups[h] = groups.get(h, 0) + 1
    ctx.tick(n // 64)
    ctx.cost(costs.collision_cost(groups.values()), what + " (keys with equal hashes)")


def build_set(ctx, keys: list, what: str, frozen: bool = False):
    """set(keys) of hashable data keys, priced first (check_hash_cost)."""
    check_hash_cost(ctx, keys, what)
    return frozenset(keys) if frozen else set(keys)


def build_dict(ctx, pairs: list, what: str) -> dict:
    """dict(pairs) of (hashable data key, value), priced first."""
    check_hash_cost(ctx, [pair[0] for pair in pairs], what)
    return dict(pairs)


def weight(ctx, x, depth: int = 0) -> int:
    """Upper bound of the work to compare plain data x with anything: its
    characters, int digits and items, counting shared objects each time."""
    t = type(x)
    if t is STR or t is BYTES:
        return len(x) + 1
    if t is INT:
        return _INT_BITS(x) // 30 + 1
    if id(t) in ATOMIC_IDS:
        return 1
    if depth > ctx.limits.max_value_depth:
        raise BudgetError("max_value_depth", "value nests too deeply to compare")
    items = list(_DICT_ITEMS(x)) if t is DICT else x
    return 1 + weight_of_items(ctx, items, depth + 1)


def weight_of_items(ctx, items, depth: int = 0) -> int:
    """The sum of weight() over items, by C code for the common flat cases."""
    n = len(items)
    ids = set(map(id, map(type, items)))
    if ids <= _SMALL_SCALAR_IDS:
        return n
    if len(ids) == 1 and id(STR) in ids:
        return sum(map(_STR_LEN, items)) + n
    if len(ids) == 1 and id(BYTES) in ids:
        return sum(map(_BYTES_LEN, items)) + n
    if ids <= _INT_IDS:
        return sum(map(_INT_BITS, items)) // 30 + n
    total = 0
    for item in items:
        ctx.tick()
        total += weight(ctx, item, depth)
    return total


def check_search_cost(ctx, items, needle, what: str) -> None:
    """`needle in items`, items.count/index(needle): at most one comparison
    per item, each no longer than the needle or the item."""
    n = len(items)
    bound = n * weight(ctx, needle)
    if costs.compare_cost(bound) > ctx.limits.max_call_cost:
        bound = min(bound, weight_of_items(ctx, items))
    ctx.cost(costs.compare_cost(bound), what)


def check_compare_cost(ctx, a, b, what: str) -> None:
    """a == b, a < b ... on plain data: no more than the lighter side."""
    if id(type(a)) in ATOMIC_IDS and id(type(b)) in ATOMIC_IDS:
        if (type(a) is STR or type(a) is BYTES) and type(b) is type(a):
            ctx.cost(costs.compare_cost(min(len(a), len(b))), what)
        return
    ctx.cost(costs.compare_cost(min(weight(ctx, a), weight(ctx, b))), what)
