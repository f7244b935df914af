"""Cost bombs are refused up front or cut within budget, and the target keeps running.

A heartbeat thread in this (the "target") process sleeps 1 ms in a loop and
records the largest gap between its wake-ups while each bomb runs: the
evaluator must leave the GIL to other threads (Python-level loops, capped C
calls), so the gap stays small.
"""
from __future__ import annotations

import threading
import time

import pytest

from payloads.errors import AgentError, BudgetError
from payloads.evaluator import EvalOptions, Scope, evaluate
from payloads.limits import MAX_SECONDS, Limits

GAP_BOUND = 0.25
LOOP = ("max_steps", "max_seconds")    # long loops: whichever budget trips first


class Heartbeat:
    def __init__(self) -> None:
        self.max_gap = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        last = time.perf_counter()
        while not self._stop.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            self.max_gap = max(self.max_gap, now - last)
            last = now

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        time.sleep(0.02)
        self.max_gap = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(2)


@pytest.fixture(scope="module")
def scope():
    return Scope({
        "big": list(range(300_000)),
        "bigdict": {i: i for i in range(300_000)},
        "words": [f"w{i}" for i in range(150_000)],
        "huge": 1 << 200_000,
    })


BOMBS = [
    ("10 ** 10 ** 10", "max_int_bits"),
    ("2 ** 2 ** 100", "max_int_bits"),
    ("1 << 10 ** 9", "max_int_bits"),
    ("huge * huge", "max_int_bits"),
    ("huge // 3", "max_int_bits"),
    ("str(10 ** 5000)", "max_int_digits"),
    ("pow(7, 2 ** 5000, 2 ** 5000 + 1)", "max_powmod_bits"),
    ("'a' * 10 ** 10", "max_sequence"),
    ("[None] * 10 ** 8", "max_sequence"),
    ("'x' * 999_999 + 'yy'", "max_sequence"),
    ("range(10 ** 12)", "max_range"),
    ("sorted(big)", "max_sort_items"),
    ("max(big)", "max_sort_items"),
    ("sorted(words)", "max_sort_items"),
    ("sum(range(10 ** 6))", LOOP),
    ("sum(x for x in big) + sum(x for x in big) + sum(x for x in big) + sum(x for x in big)",
     LOOP),
    ("[[y for y in range(2000)] for x in range(2000)]", LOOP),
    ("len([i for i in range(10 ** 6)])", LOOP),
    ("-1 in big", "max_scan_items"),
    ("big == big", "max_scan_items"),
    ("str(big)", "max_scan_items"),
    ("f'{1:>{10 ** 6}}'", "max_format_width"),
    ("'(' * 3 + ')' * 3" + " + 'x'" * 10, None),           # a fine query: control
    ("(" * 100000, "max_query_chars"),
    ("(" * 100 + "1" + ")" * 100, "max_nesting"),
    ("1" + "+1" * 2047, "max_chain"),
    ("-" * 500 + "1", "max_chain"),
    ("[" + "1," * 2000 + "]", None),                          # wide, not deep: fine
]


@pytest.mark.parametrize("query, budget", BOMBS, ids=[b[0][:50] for b in BOMBS])
def test_bomb_is_refused_or_cut_and_target_keeps_running(scope, query, budget):
    """When a cost bomb runs, then it is refused naming its budget, quickly,
    and the heartbeat thread never stalls for long."""
    with Heartbeat() as beat:
        start = time.perf_counter()
        if budget is None:
            evaluate(query, scope)
        else:
            with pytest.raises(BudgetError) as info:
                evaluate(query, scope)
            budgets = budget if isinstance(budget, tuple) else (budget,)
            assert info.value.budget in budgets, info.value.message
            assert info.value.budget in info.value.message
        elapsed = time.perf_counter() - start
    assert elapsed < MAX_SECONDS + 1.0
    assert beat.max_gap < GAP_BOUND, f"heartbeat stalled {beat.max_gap:.3f}s"


def test_up_front_refusals_do_not_compute():
    """10**10**10 and friends are refused before computing: in milliseconds."""
    for query in ("10 ** 10 ** 10", "'a' * 10 ** 10", "range(10 ** 12)", "1 << 10 ** 9"):
        start = time.perf_counter()
        with pytest.raises(BudgetError):
            evaluate(query, Scope({}))
        assert time.perf_counter() - start < 0.05


def test_wall_clock_budget_stops_a_long_query():
    """Given a small time budget, a long Python-level loop is stopped by it."""
    options = EvalOptions(limits=Limits(max_seconds=0.2, max_steps=10 ** 9))
    start = time.perf_counter()
    with pytest.raises(BudgetError) as info:
        evaluate("sum(x * x for x in range(10 ** 6) for y in range(10))", Scope({}), options)
    assert info.value.budget == "max_seconds"
    assert time.perf_counter() - start < 1.0


def test_limits_can_be_overridden_per_query():
    options = EvalOptions(limits=Limits(max_steps=50))
    with pytest.raises(BudgetError, match="max_steps"):
        evaluate("[x for x in range(100)]", Scope({}), options)
    assert evaluate("[x for x in range(100)]", Scope({}))[-1] == 99
    with pytest.raises(TypeError):
        Limits(max_steps=-1)
    with pytest.raises(TypeError):
        Limits(no_such_budget=1)


def test_value_depth_is_bounded():
    """A deeply nested target value is never hashed/compared/printed (C recursion)."""
    deep = 1
    for _ in range(100_000):
        deep = (deep,)
    for query in ("deep == deep", "deep in {1}", "str(deep)", "{deep: 1}", "sorted([deep])"):
        with pytest.raises(AgentError):
            evaluate(query, Scope({"deep": deep}))


def test_result_of_a_generator_is_bounded():
    options = EvalOptions(limits=Limits(max_result_items=10))
    with pytest.raises(BudgetError, match="max_result_items"):
        evaluate("(x for x in range(100))", Scope({}), options)


def test_total_allocation_is_bounded():
    options = EvalOptions(limits=Limits(max_alloc=1000))
    with pytest.raises(BudgetError, match="max_alloc"):
        evaluate("['x' * 100 for _ in range(100)]", Scope({}), options)
