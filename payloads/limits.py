"""Every budget of the evaluator and of snapshots, as named constants.

A query runs under all of these at once. Each one is checked *before* the
costly operation (an estimate of the result's size, not an interruption after
the damage), and exceeding one raises ``BudgetError(budget, message)`` whose
``budget`` is the attribute name below (``"steps"``, ``"int_bits"`` ...).

``Limits()`` holds the defaults; ``Limits(max_steps=10_000)`` overrides one
budget for one query. Plain class, not a dataclass: payload code must not
import ``dataclasses`` inside the target.
"""
from __future__ import annotations

# --- before parsing (ast.parse can crash on deep input: CPython gh-126710) ---
MAX_QUERY_CHARS = 4096        # characters in the query text
MAX_NESTING = 32              # bracket depth, counted on the raw text
MAX_CHAIN = 200               # estimated syntax depth: operators, dots, keywords
                              # in one chain (not reset by commas) summed over the
                              # open brackets; `1+1+...` in 4 KB is refused here
# --- after parsing ---
MAX_AST_DEPTH = 64            # depth of the parsed tree (the walker is recursive)
MAX_AST_NODES = 4096          # nodes in the parsed tree

# --- while evaluating ---
MAX_STEPS = 1_000_000         # evaluated nodes + loop iterations
MAX_SECONDS = 2.0             # wall-clock time of one query
MAX_INT_BITS = 65_536         # size of any int operand or computed int
MAX_POWMOD_BITS = 4_096       # exponent and modulus of pow(a, b, m)
MAX_SEQUENCE = 1_000_000      # length of any str/bytes/list/tuple/set/dict built
MAX_ALLOC = 4_000_000         # total items/chars built by one query
MAX_RANGE = 1_000_000         # length of a range()
MAX_RESULT_ITEMS = 100_000    # items of a generator materialised as the result
MAX_VALUE_DEPTH = 32          # nesting of any value compared, hashed, printed
MAX_SORT_ITEMS = 100_000      # input of sorted()/min()/max() (one C call, holds the GIL)
MAX_SCAN_ITEMS = 200_000      # items one C-level pass may visit (`in`, type checks, copies)
MAX_FORMAT_WIDTH = 1_000      # any width/precision in an f-string or format() spec
MAX_INT_DIGITS = 4_300        # digits of an int converted to/from text (3.11's limit)
MAX_CALL_COST = 100_000_000   # price of one C call, in cost units (about ns): see
                              # costs.py; anything priced higher is refused

# --- snapshots (rendering a value) ---
MAX_SNAPSHOT_DEPTH = 6        # nesting levels expanded; deeper values become `cut`
MAX_SNAPSHOT_NODES = 2_000    # nodes in one snapshot
MAX_SNAPSHOT_ITEMS = 100      # items shown per container / attributes per object
MAX_SNAPSHOT_CHARS = 1_000    # characters of a str (bytes) shown
MAX_SNAPSHOT_INT_DIGITS = 1_000  # ints longer than this are shown by their size


class Limits:
    """The budgets of one query; keyword arguments override the defaults."""

    __slots__ = (
        "max_query_chars", "max_nesting", "max_chain", "max_ast_depth", "max_ast_nodes",
        "max_steps", "max_seconds", "max_int_bits", "max_powmod_bits", "max_sequence",
        "max_alloc", "max_range", "max_result_items", "max_value_depth",
        "max_sort_items", "max_scan_items", "max_format_width", "max_int_digits",
        "max_call_cost", "max_snapshot_depth", "max_snapshot_nodes", "max_snapshot_items",
        "max_snapshot_chars", "max_snapshot_int_digits",
    )

    def __init__(self, **overrides: object) -> None:
        for name in self.__slots__:
            object.__setattr__(self, name, _DEFAULTS[name])
        for name, value in overrides.items():
            if name not in _DEFAULTS:
                raise TypeError("unknown budget %r" % (name,))
            kinds = (int, float) if type(_DEFAULTS[name]) is float else (int,)
            if type(value) not in kinds or value <= 0:
                raise TypeError("budget %s must be a positive %s"
                                % (name, type(_DEFAULTS[name]).__name__))
            object.__setattr__(self, name, value)

    @classmethod
    def from_request(cls, overrides: object) -> "Limits":
        """The budgets a client asked for, clamped to the agent's maxima.

        A client may lower any budget; it may raise only the display budgets
        of snapshots, and only up to ``HARD_MAXIMA``. Every other budget keeps
        the target safe (the parser's crash on deep input, the interpreter's
        recursion, the GIL held by one call), so a larger request is silently
        clamped to the default: the agent, not the client, owns the maxima.
        Unknown names and wrong types still raise TypeError.
        """
        if overrides is None:
            return cls()
        if type(overrides) is not dict:
            raise TypeError("limits must be an object")
        clamped = {}
        for name, value in overrides.items():
            if type(name) is not str or name not in _DEFAULTS:
                raise TypeError("unknown budget %r" % (name,))
            kinds = (int, float) if type(_DEFAULTS[name]) is float else (int,)
            if type(value) not in kinds or value <= 0:
                raise TypeError("budget %s must be a positive %s"
                                % (name, type(_DEFAULTS[name]).__name__))
            ceiling = HARD_MAXIMA.get(name, _DEFAULTS[name])
            clamped[name] = value if value <= ceiling else ceiling
        return cls(**clamped)

    def __repr__(self) -> str:
        changed = ["%s=%r" % (n, getattr(self, n)) for n in self.__slots__
                   if getattr(self, n) != _DEFAULTS[n]]
        return "Limits(%s)" % ", ".join(changed)


_DEFAULTS = {
    "max_query_chars": MAX_QUERY_CHARS,
    "max_nesting": MAX_NESTING,
    "max_chain": MAX_CHAIN,
    "max_ast_depth": MAX_AST_DEPTH,
    "max_ast_nodes": MAX_AST_NODES,
    "max_steps": MAX_STEPS,
    "max_seconds": MAX_SECONDS,
    "max_int_bits": MAX_INT_BITS,
    "max_powmod_bits": MAX_POWMOD_BITS,
    "max_sequence": MAX_SEQUENCE,
    "max_alloc": MAX_ALLOC,
    "max_range": MAX_RANGE,
    "max_result_items": MAX_RESULT_ITEMS,
    "max_value_depth": MAX_VALUE_DEPTH,
    "max_sort_items": MAX_SORT_ITEMS,
    "max_scan_items": MAX_SCAN_ITEMS,
    "max_format_width": MAX_FORMAT_WIDTH,
    "max_int_digits": MAX_INT_DIGITS,
    "max_call_cost": MAX_CALL_COST,
    "max_snapshot_depth": MAX_SNAPSHOT_DEPTH,
    "max_snapshot_nodes": MAX_SNAPSHOT_NODES,
    "max_snapshot_items": MAX_SNAPSHOT_ITEMS,
    "max_snapshot_chars": MAX_SNAPSHOT_CHARS,
    "max_snapshot_int_digits": MAX_SNAPSHOT_INT_DIGITS,
}

# What a client may raise a budget to (Limits.from_request). Budgets not
# listed here can only be lowered. Snapshots are iterative over bounded
# windows, so their display budgets may grow; their depth is recursive.
HARD_MAXIMA = {
    "max_snapshot_items": 10_000,
    "max_snapshot_nodes": 20_000,
    "max_snapshot_chars": 100_000,
    "max_snapshot_int_digits": MAX_INT_DIGITS,
}
