"""Property: on plain data, the evaluator agrees with Python, or refuses by a named rule.

Hypothesis builds random expressions over builtin data (literals, a few
names bound to lists/strs/dicts/tuples, operators, comparisons, boolean
logic, conditionals, subscripts and slices, comprehensions, f-strings,
allowed builtins and str methods). For each one:

* if the evaluator returns a value, Python's own ``eval`` of the same text on
  the same data returns an equal value of exactly the same types;
* if the evaluator reports a query error (``QueryError``), Python raises an
  exception of the same type name;
* otherwise the evaluator refused: ``DeniedError`` with a message saying
  what was refused, or ``BudgetError`` naming its ``max_*`` budget.

``is`` is left out: which equal constants are one object is up to the
compiler (Python folds them, the evaluator does not), and ``x is 1`` is a
SyntaxWarning.
"""
from __future__ import annotations

import math
import warnings

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payloads.errors import BudgetError, DeniedError, MalformedQueryError, QueryError
from payloads.evaluator import Scope, evaluate

ENV = {
    "xs": [3, 1, 2, 2],
    "s": "abba cd",
    "d": {"a": 1, "b": 2},
    "t": (1, "a", None),
    "n": 7,
    "f": 2.5,
    "e": [],
}
SAFE_BUILTINS = {name: __builtins__[name] if isinstance(__builtins__, dict)
                 else getattr(__builtins__, name)
                 for name in ("len", "abs", "min", "max", "sum", "sorted", "str", "repr", "bool",
                              "list", "tuple", "int", "float", "any", "all", "round", "set",
                              "dict", "reversed", "enumerate", "zip", "range", "divmod",
                              "chr", "ord", "hex", "isinstance", "type", "format")}

atoms = st.one_of(
    st.integers(-20, 20).map(repr),
    st.sampled_from(["True", "False", "None", "0.5", "-1.5", "1e3"]),
    st.text(alphabet="ab c", max_size=4).map(repr),
    st.sampled_from(sorted(ENV)),
)

UNARY = ["-{}", "not {}", "~{}", "+{}"]
BINARY = ["{} + {}", "{} - {}", "{} * {}", "{} // {}", "{} % {}", "{} / {}", "{} ** {}",
          "{} < {}", "{} <= {}", "{} == {}", "{} != {}", "{} > {}", "{} in {}",
          "{} not in {}", "{} and {}", "{} or {}", "{} & {}", "{} | {}",
          "{} ^ {}", "{}[{}]", "{} << {}", "{} >> {}"]
TERNARY = ["{} if {} else {}", "{}[{}:{}]"]
CALLS = ["len({})", "abs({})", "min({})", "max({})", "sum({})", "sorted({})", "str({})",
         "repr({})", "bool({})", "list({})", "tuple({})", "int({})", "float({})", "any({})",
         "all({})", "round({})", "set({})", "list(reversed({}))", "list(enumerate({}))",
         "divmod({}, 3)", "hex({})", "chr({})", "ord({})", "isinstance({}, int)",
         "type({}).__name__", "format({}, '>4')", "[v for v in {}]",
         "[v for v in {} if v]", "{{v: 1 for v in {}}}", "f'{{{}}}'", "f'{{{}!r:>3}}'",
         "({},)", "[{}]", "{{'k': {}}}", "({}).upper()", "({}).split()", "({}).count('a')",
         "({}).find('b')", "({}).rfind('b')", "({}).replace('a', 'x')", "({}).strip('a')",
         "({}).startswith('a')", "({}).get('a')", "list(({}).items())", "({}).index(2)",
         "list(zip({}, 'ab'))", "sorted({}, reverse=True)"]


def _combine(children):
    return st.one_of(
        st.tuples(st.sampled_from(UNARY), children).map(lambda p: "(" + p[0].format(p[1]) + ")"),
        st.tuples(st.sampled_from(BINARY), children, children).map(
            lambda p: "(" + p[0].format(p[1], p[2]) + ")"),
        st.tuples(st.sampled_from(TERNARY), children, children, children).map(
            lambda p: "(" + p[0].format(p[1], p[2], p[3]) + ")"),
        st.tuples(st.sampled_from(CALLS), children).map(lambda p: p[0].format(p[1])),
    )


expressions = st.recursive(atoms, _combine, max_leaves=6)


def _same(a, b) -> bool:
    """Equal values of exactly the same types, all the way down."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return a == b or (math.isnan(a) and math.isnan(b))
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return a == b


def _python(src: str):
    env = {k: (list(v) if type(v) is list else dict(v) if type(v) is dict else v)
           for k, v in ENV.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # the compiler's SyntaxWarnings (0[0])
        try:
            return "ok", eval(src, {"__builtins__": SAFE_BUILTINS}, env)  # the oracle
        except Exception as exc:
            return "error", type(exc).__name__


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(expressions)
def test_evaluator_agrees_with_python_or_refuses_by_rule(src):
    try:
        value = evaluate(src, Scope(dict(ENV)))
    except DeniedError as exc:
        assert "refused" in exc.message or "not allowed" in exc.message, (src, exc.message)
        return
    except BudgetError as exc:
        assert exc.budget.startswith("max_") and exc.budget in exc.message, (src, exc.message)
        return
    except MalformedQueryError as exc:
        kind, expected = _python(src)
        assert kind == "error" and expected == "SyntaxError", (src, exc.message)
        return
    except QueryError as exc:
        kind, expected = _python(src)
        assert kind == "error" and expected == exc.error_type, (src, exc.message, expected)
        return
    kind, expected = _python(src)
    assert kind == "ok", (src, value, expected)
    assert _same(value, expected), (src, value, expected)
