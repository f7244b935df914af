"""The time cost model: what one C call may cost, priced before it starts.

The evaluator's deadline (``max_seconds``) is only checked between steps, and
a single C call holds the GIL until it returns. So every allowed call whose
time is not linear in the size of its output is priced here, from the sizes
of its arguments, *before* it runs; a call priced over ``max_call_cost`` is
refused (``BudgetError("max_call_cost")``), and the price of an accepted one
is charged to ``max_steps`` (``UNITS_PER_STEP`` units per step), so all C
calls of one query together stay within the step budget too.

One unit is about one nanosecond on the slowest interpreter measured (the
coefficients below are the worst per-operation times measured on CPython
3.8-3.13 and Debian's 3.11, rounded up; docs/DESIGN.md "Cost model" has the
table). Facts that differ between versions are feature-detected on static
types, which a target cannot change (``sys.version_info`` it can replace).
"""
from __future__ import annotations

from .policy import INT, TYPE

_CLASS_DICT = TYPE.__dict__["__dict__"].__get__

# CPython 3.10 (bpo-41972) added the two-way algorithm to forward search
# (find, index, count, in, split(sep), replace, partition). Before it, and on
# every version for reverse search (rfind, rindex, rpartition, rsplit(sep)),
# the worst case is haystack x needle. `int.bit_count` is new in 3.10 too.
FORWARD_SEARCH_IS_LINEAR = _CLASS_DICT(INT).get("bit_count") is not None

# ns per unit of work, worst measured (see docs/DESIGN.md), rounded up
SEARCH_NS = 1.0            # per haystack char x needle char, quadratic search
STRIP_NS = 0.03            # per stripped char x chars-argument char (strip(chars))
HASH_COLLISION_NS = 25.0   # per g*g for a group of g keys with one hash
COMPARE_NS = 0.3           # per char compared (==, in/index/count on lists, min/max)
SORT_NS = 0.1              # per char x log2(n) in a sort (timsort's compares)
RANGE_ITER_NS = 160.0      # per element of a range searched for a non-int
POWMOD_NS = 6.0            # per exponent bit x (modulus digits)**2 (30-bit digits)

UNITS_PER_STEP = 2000      # a step of the interpreter costs about 2 us


def _two_way_bound(n: int, m: int) -> int:
    """fastsearch.h (3.10+) for a forward search: the cases that keep the
    naive loop, else two-way / adaptive search (linear)."""
    if n < 2500 or (m < 100 and n < 30000) or m < 6:
        return n * m
    return 4 * (n + m)


def search_cost(n: int, m: int, reverse: bool) -> int:
    """Units for one search of a needle of m items in a haystack of n (str/bytes).

    split/replace/count repeat the search from where the last match ended:
    the whole scan is still bounded by this (the haystack is passed once).
    """
    if m <= 1 or m > n:
        return n + 1
    if reverse or not FORWARD_SEARCH_IS_LINEAR:
        return int((n - m + 1) * m * SEARCH_NS) + n
    return _two_way_bound(n, m) + n


def strip_cost(n: int, m: int) -> int:
    """str/bytes .strip/.lstrip/.rstrip(chars): each stripped char is looked
    up in chars (a linear memchr/find)."""
    return int(n * max(m, 1) * STRIP_NS) + n


def collision_cost(group_sizes) -> int:
    """Building a set/dict: a key whose hash is shared by g-1 stored keys
    walks (and compares with) all of them: sum of g*g over the groups."""
    total = 0
    for g in group_sizes:
        total += g * g
    return int(total * HASH_COLLISION_NS)


def compare_cost(chars: int) -> int:
    return int(chars * COMPARE_NS) + 1


def sort_cost(n: int, total_weight: int) -> int:
    """Timsort: at most about n*log2(n) comparisons, each no longer than the
    shorter of its two keys, so each key is compared about log2(n) times."""
    log = max(n, 1).bit_length()
    return int((total_weight + n) * log * SORT_NS) + n


def range_search_cost(length: int) -> int:
    """range.count/index/__contains__ of a non-int: a Python-level iteration
    over every element (range(10**18).count(0.5) would never end)."""
    return int(length * RANGE_ITER_NS) + 1


def powmod_cost(exp_bits: int, mod_bits: int) -> int:
    digits = mod_bits // 30 + 1
    return int(max(exp_bits, 1) * digits * digits * POWMOD_NS)
