"""Every attack is refused, and nothing in the target changes (issue 3).

Modelled on simpleeval's test_security.py. The attack list lives in
tests/payload_cases.py (it also runs under every CPython 3.8-3.13); each case
checks the exception kind AND the fingerprint of target state, which includes
a canary list that every hook of a hostile class appends to.
"""
from __future__ import annotations

import builtins
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from payloads import evaluator, policy
from payloads.errors import BudgetError, DeniedError, QueryError
from payloads.evaluator import EvalOptions, Scope, evaluate
from payloads.snapshot import Redacted, snapshot
from tests import payload_cases as cases

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def target():
    scope = cases.build_scope()
    before = cases.fingerprint()
    yield scope
    after = cases.fingerprint()
    assert after == before, "target state changed"
    assert cases.CANARY == []


@pytest.mark.parametrize("case", cases.ATTACKS, ids=[c[0][:60] for c in cases.ATTACKS])
def test_attack_is_refused_and_changes_nothing(target, case):
    """When an attack runs, then it gets the expected refusal and the target is unchanged."""
    outcome = cases.run_case(evaluate, Scope, EvalOptions, snapshot, target, case)
    assert cases.matches(case, outcome, snapshot), outcome


# --- the refusal messages name the construct and the rule ------------------------
@pytest.mark.parametrize("query, message", [
    ("fn.__globals__", "attribute '__globals__' is not readable: code and frame internals "
                       "are hidden"),
    ("open('x')", "call of 'open' refused: not on the allowlist"),
    ("().__class__.__bases__", "attribute '__bases__' is not readable: walking the class"),
    ("lambda: 1", "lambda is refused"),
    ("import os", "statement 'Import' is refused"),
    ("[y := 1]", "assignment expression ':=' is refused"),
    ("'{0.__class__}'.format(1)", "str.format reads attributes named in the string"),
    ("getattr(config, 'x')", "use getattr_static"),
    ("type('X', (), {})", "three arguments would create a class"),
    ("canary == 1", "tests.payload_cases.Canary is not builtin data"),
    ("config.password[0]", "is redacted because its name looks like a secret"),
    ("config.password[0]", "--show-secrets"),
    ("list(gen)", "it would advance it"),
    ("canary_keys[42]", "whose __eq__ would run on a hash collision"),
    ("'x'.encode('rot13')", "imports a module into the target"),
    ("__import__('os')", "name '__import__' is not allowed: dunder names are refused"),
    ("fn.__\uff43\uff4f\uff44\uff45__", "would import unicodedata"),
])
def test_refusal_message_names_construct_and_rule(target, query, message):
    with pytest.raises(DeniedError) as info:
        evaluate(query, Scope(target))
    assert message in info.value.message


# --- individual rules -----------------------------------------------------------
def test_dispatch_table_is_exactly_the_reviewed_syntax():
    """A new node kind cannot be allowed by accident: the table is pinned here."""
    assert sorted(evaluator._HANDLERS) == sorted([
        "Expression", "Constant", "Name", "Attribute", "Subscript", "Tuple", "List", "Set",
        "Dict", "Starred", "BinOp", "UnaryOp", "BoolOp", "IfExp", "Compare", "Call",
        "ListComp", "SetComp", "DictComp", "GeneratorExp", "JoinedStr", "FormattedValue"])


def test_monkeypatched_builtin_is_not_allowed(target, monkeypatch):
    """Given a target that replaced builtins.divmod, a query's divmod() is refused, not run."""
    called = []

    def fake_divmod(a, b):
        called.append(a)
        return (0, 0)

    monkeypatch.setattr(builtins, "divmod", fake_divmod)
    with pytest.raises(DeniedError, match="call of 'divmod' refused"):
        evaluate("divmod(7, 2)", Scope(target))
    assert called == []


def test_payload_refuses_to_load_over_patched_builtins():
    """If a builtin the payload itself calls is replaced, importing it fails loudly."""
    code = ("import builtins; builtins.sorted = lambda *a, **k: []\n"
            "try:\n    import payloads.policy\nexcept ImportError as e:\n    print('refused', e)\n")
    out = subprocess.run([sys.executable, "-I", "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, env={"PYTHONPATH": str(ROOT)})
    assert "refused" in out.stdout and "sorted" in out.stdout, out


def test_every_operation_on_a_redacted_value_is_refused(target):
    """A redacted value supports nothing: no operator, call, subscript, f-string ..."""
    scope = Scope(target)
    for template in ("{0} + 'x'", "{0} * 2", "{0}[0]", "{0}[::-1]", "len({0})", "str({0})",
                     "{0} == 1", "{0} < 'a'", "'a' in {0}", "{0} in ['a']", "bool({0})",
                     "not {0}", "f'{{{0}}}'", "{0}.upper()", "{0}.hex()", "hash({0})",
                     "[c for c in {0}]", "sorted([{0}])", "{{{0}: 1}}", "{0} is None",
                     "{0}()", "type({0})", "id({0})", "vars({0})", "{0}.__class__"):
        query = template.format("config.password")
        with pytest.raises(DeniedError, match="redacted|not allowed|refused"):
            evaluate(query, scope)
    r = evaluate("config.password", scope)
    for op in (lambda: r == 1, lambda: bool(r), lambda: len(r), lambda: hash(r),
               lambda: format(r, ""), lambda: r[0], lambda: list(r)):
        with pytest.raises(DeniedError):
            op()
    assert "hunter2" not in repr(r) and "hunter2" not in repr(snapshot(r))


def test_redacted_marker_holds_no_reference_to_the_secret(target):
    r = evaluate("config.password", Scope(target))
    assert type(r) is Redacted
    assert set(Redacted.__slots__) == {"name", "value_type"}
    assert r.name == "password" and r.value_type == "str"


def test_iterating_a_dict_being_mutated_is_clean(target):
    """Given a thread resizing a dict, iterating it never crashes: a value or QueryError."""
    shared = {i: i for i in range(1000)}
    stop = threading.Event()

    def mutate():
        i = 1000
        while not stop.is_set():
            shared[i] = i
            shared.pop(i - 1000, None)
            i += 1

    worker = threading.Thread(target=mutate, daemon=True)
    worker.start()
    try:
        outcomes = set()
        for _ in range(50):
            try:
                evaluate("sum(v for v in d.values())", Scope({"d": shared}))
                evaluate("[k for k in d]", Scope({"d": shared}))
                outcomes.add("ok")
            except QueryError as exc:
                assert "changed size" in exc.message or "RuntimeError" in exc.message
                outcomes.add("error")
    finally:
        stop.set()
        worker.join(5)
    assert outcomes


def test_a_stored_key_with_equal_hash_never_has_its_eq_called(target):
    """d[42] on a dict holding a user key with hash(42) would call its __eq__: refused."""
    with pytest.raises(DeniedError):
        evaluate("canary_keys[42]", Scope(target))
    # keys whose __eq__ is C code (enums, ints, str) are fine
    import enum

    class Color(enum.Enum):
        RED = 1

    class Level(enum.IntEnum):
        LOW = 1

    scope = Scope({"d": {Color.RED: "r", Level.LOW: "l", "s": 1}})
    assert evaluate("d['s']", scope) == 1


def test_defaultdict_and_missing_are_never_triggered(target):
    with pytest.raises(QueryError, match="KeyError"):
        evaluate("defaults['new']", Scope(target))
    assert "new" not in target["defaults"]
    with pytest.raises(QueryError, match="KeyError"):
        evaluate("missing_dict['new']", Scope(target))


def test_no_output_and_no_imports(target, capfd):
    """Parsing and refusing never prints into the target nor imports a module."""
    modules = set(sys.modules)
    for query in ("'\\d'", "1if 1 else 2", "'\\N{BULLET}'", "fn.__\uff43\uff4f\uff44\uff45__",
                  "x = 1", "import os", "codecs.decode('x', 'rot13')"):
        with pytest.raises((DeniedError, QueryError)):
            evaluate(query, Scope(target))
    assert evaluate("1 is 1", Scope(target)) is True      # the compiler's warning: not run
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert set(sys.modules) == modules


def test_budget_errors_name_the_budget(target):
    with pytest.raises(BudgetError) as info:
        evaluate("10 ** 10 ** 10", Scope(target))
    assert info.value.budget == "max_int_bits" and "max_int_bits" in info.value.message


def test_allowlists_only_hold_genuine_c_objects():
    for obj, name in policy.BUILTINS_BY_ID.values():
        assert type(obj) is type or type(obj).__name__ == "builtin_function_or_method", name
    assert policy.PATCHED_BUILTINS == ()
    for cls, methods in policy.METHODS_BY_TYPE_ID.values():
        assert cls.__module__ == "builtins"
        for name in methods:
            assert name not in ("format", "format_map", "append", "update", "pop", "clear",
                                "setdefault", "__reduce__", "translate"), name
