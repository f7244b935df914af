"""Issue 11, the evaluator half: one auditable policy, the cost model, exact
types, redaction of str-subclass keys, clamped limits, a replaced sys, and
collections held off the agent thread.

The attack cases themselves are in tests/payload_cases.py (they run on every
interpreter and against real targets); these tests pin the rules behind them.
"""
from __future__ import annotations

import ast
import enum
import gc
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from payloads import agent, callables, costs, evaluator, gcguard, limits, policy, snapshot
from payloads.errors import BudgetError, DeniedError
from payloads.evaluator import EvalOptions, Scope, evaluate
from tests import payload_cases as cases
from tests.pythons import interpreters

ROOT = Path(__file__).resolve().parents[2]
PAYLOADS = ROOT / "payloads"


# --- one auditable policy ---------------------------------------------------------
def test_builtin_table_and_implementations_agree():
    """Every builtin the policy allows has exactly the implementation it names."""
    assert set(callables.BUILTIN_IMPLS) == set(policy.BUILTIN_IMPLEMENTATIONS)
    for name, impl_name in policy.BUILTIN_IMPLEMENTATIONS.items():
        assert callables.BUILTIN_IMPLS[name] is getattr(callables, impl_name), name
    assert set(policy.ALLOWED_BUILTIN_FUNCTIONS) == set(policy.BUILTIN_IMPLEMENTATIONS)
    allowed_names = {name for _obj, name in policy.BUILTINS_BY_ID.values()}
    assert allowed_names == set(policy.BUILTIN_IMPLEMENTATIONS)


def test_no_dead_or_unlisted_implementation():
    """callables.py implements nothing the policy does not list, and vice versa."""
    builtins_impl = {n for n in vars(callables) if n.startswith("builtin_")}
    assert builtins_impl == set(policy.BUILTIN_IMPLEMENTATIONS.values())
    methods_impl = {n[len("method_"):] for n in vars(callables) if n.startswith("method_")}
    assert methods_impl == set(policy.method_kinds()) == set(callables.METHOD_IMPLS)


def test_syntax_table_and_interpreter_agree():
    assert frozenset(evaluator._HANDLERS) == policy.ALLOWED_SYNTAX
    assert not policy.ALLOWED_SYNTAX & set(policy.REFUSED_SYNTAX)
    assert not policy.ALLOWED_SYNTAX & policy.MARKER_SYNTAX


def test_query_helpers_are_all_listed():
    """getattr_static (evaluator) and threads/frames/modules (agent) are in the policy."""
    fake = types.SimpleNamespace(ident=0)
    agent_helpers = set(agent.Agent._helpers(fake))
    assert agent_helpers == set(policy.AGENT_HELPERS)
    assert set(policy.QUERY_HELPERS) == agent_helpers | set(callables.EVAL_HELPERS)


_TYPE_SET_NAMES = {"SEQ_BASES", "HASHABLE_IDS", "PLAIN_IDS", "CONTAINER_IDS", "C_EQ_IDS",
                   "ATOMIC_IDS", "NUMBER_IDS", "SAFE_KEY_IDS", "BUILTIN_IMPLEMENTATIONS"}


@pytest.mark.parametrize("path", sorted(PAYLOADS.glob("*.py")), ids=lambda p: p.name)
def test_type_sets_are_defined_once_in_policy(path):
    """No payload module redefines a policy table (the old duplicates were dead)."""
    if path.name == "policy.py":
        return
    tree = ast.parse(path.read_text())
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AnnAssign) else []
        for target in targets:
            for name in ast.walk(target):
                if isinstance(name, ast.Name):
                    assert name.id.lstrip("_") not in _TYPE_SET_NAMES, \
                        "%s defines %s: policy.py holds it" % (path.name, name.id)


def test_no_builtin_implementation_carries_the_handler_prefix():
    """`_h_` names are the interpreter's syntax handlers, and only those."""
    for path in PAYLOADS.glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef):
                assert not node.name.startswith(("_b_", "_m_")), (path.name, node.name)
                if node.name.startswith("_h_"):
                    assert path.name == "evaluator.py", (path.name, node.name)
                    assert node.name in {f.__name__ for f in evaluator._HANDLERS.values()}


def test_evaluator_is_split_along_its_seams():
    sizes = {p.name: p.read_text().count("\n") for p in PAYLOADS.glob("*.py")}
    assert sizes["evaluator.py"] < 700
    for name in ("query_text.py", "query_tree.py", "datasafety.py", "operators.py",
                 "callables.py", "costs.py"):
        assert name in sizes


# --- the cost model --------------------------------------------------------------
def test_forward_search_model_matches_this_interpreter():
    assert costs.FORWARD_SEARCH_IS_LINEAR is (sys.version_info >= (3, 10))


def test_reverse_search_is_priced_on_every_version():
    big = 10 ** 6
    assert costs.search_cost(big, 8001, reverse=True) > limits.MAX_CALL_COST
    assert costs.search_cost(big, 2, reverse=True) < limits.MAX_CALL_COST


def test_collision_cost_counts_groups():
    assert costs.collision_cost([1] * 1000) == int(1000 * costs.HASH_COLLISION_NS)
    assert costs.collision_cost([20000]) > limits.MAX_CALL_COST


def test_a_budget_error_names_the_budget_and_the_model():
    with pytest.raises(BudgetError) as info:
        evaluate("h.rfind('a' * 4000 + 'b' + 'a' * 4000)", Scope({"h": "a" * 10 ** 6}))
    assert info.value.budget == "max_call_cost"
    assert "rfind()" in info.value.message and "Cost model" in info.value.message


_SEARCH_SCRIPT = r"""
import json, sys
sys.path.insert(0, %r)
from payloads import costs
from payloads.errors import BudgetError
from payloads.evaluator import Scope, evaluate
scope = Scope({"h": "a" * 1000000})
out = {}
for q in ("h.find('a' * 2000 + 'b')", "h.count('a' * 2000 + 'b')", "('a' * 2000 + 'b') in h",
          "h.split('a' * 2000 + 'b')[0][:1]", "h.replace('a' * 2000 + 'b', '')[:1]",
          "h.partition('a' * 2000 + 'b')[1]", "h.rfind('a' * 2000 + 'b')"):
    try:
        evaluate(q, scope)
        out[q] = "ok"
    except BudgetError as e:
        out[q] = e.budget
print(json.dumps({"linear": costs.FORWARD_SEARCH_IS_LINEAR,
                  "version": list(sys.version_info[:2]), "out": out}))
"""


@pytest.mark.parametrize("interp", interpreters(), ids=lambda i: i.label)
def test_forward_search_is_priced_per_version(interp):
    """On 3.8/3.9 forward search is haystack x needle (refused); 3.10+ is linear."""
    if interp.path is None:
        pytest.skip(interp.missing_reason)
    out = subprocess.run([interp.path, "-I", "-S", "-c", _SEARCH_SCRIPT % str(ROOT)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    old = tuple(report["version"]) < (3, 10)
    assert report["linear"] is not old
    for query, outcome in report["out"].items():
        if "rfind" in query or old:
            assert outcome == "max_call_cost", (query, report)
        else:
            assert outcome == "ok", (query, report)


# --- exact types (item 4) and redaction of str-subclass keys (item 5) -------------
@pytest.fixture()
def target():
    scope = cases.build_scope()
    before = cases.fingerprint()
    yield scope
    assert cases.fingerprint() == before
    assert cases.CANARY == []


def test_str_subclass_keys_are_redacted_everywhere(target):
    for query in ("fielded", "fielded.values()", "fielded.items()", "list(fielded.values())",
                  "list(fielded.items())", "enum_keyed", "list(enum_keyed.items())",
                  "[v for v in fielded.values()]", "dict(list(fielded.items())[:1])"):
        try:
            node = snapshot.snapshot(evaluate(query, Scope(target)))
        except DeniedError:
            continue
        text = json.dumps(node)
        assert "hunter2" not in text, (query, text)
        assert "redacted" in text, query


@pytest.mark.skipif(not hasattr(enum, "StrEnum"), reason="enum.StrEnum is 3.11+")
def test_strenum_keys_are_redacted():
    class Settings(enum.StrEnum):
        TOKEN = "api_token"

    node = snapshot.snapshot(evaluate("d", Scope({"d": {Settings.TOKEN: "t0p"}})))
    assert "t0p" not in json.dumps(node)


def test_redacted_marker_name_is_an_exact_str(target):
    marker = evaluate("list(fielded.values())[0]", Scope(target))
    assert type(marker) is snapshot.Redacted and type(marker.name) is str
    assert marker.name == "db_password" and "hunter2" not in repr(marker)


def test_looks_secret_reads_subclasses_without_their_methods():
    calls = []

    class Sneaky(str):
        def lower(self):
            calls.append("lower")
            return "harmless"

        def __len__(self):
            calls.append("len")
            return 0

    class SneakyBytes(bytes):
        def decode(self, *a):
            calls.append("decode")
            return "harmless"

    assert policy.looks_secret(Sneaky("X_PASSWORD")) and policy.looks_secret(
        SneakyBytes(b"session_id"))
    assert not policy.looks_secret(Sneaky("author"))
    assert calls == []


# --- limits (item 6b) -------------------------------------------------------------
def test_client_limits_are_clamped_to_the_agent_maxima():
    lim = limits.Limits.from_request({"max_ast_depth": 10 ** 6, "max_nesting": 10 ** 4,
                                      "max_chain": 10 ** 5, "max_seconds": 600.0,
                                      "max_call_cost": 10 ** 15, "max_steps": 5})
    assert lim.max_ast_depth == limits.MAX_AST_DEPTH
    assert lim.max_nesting == limits.MAX_NESTING and lim.max_chain == limits.MAX_CHAIN
    assert lim.max_seconds == limits.MAX_SECONDS and lim.max_call_cost == limits.MAX_CALL_COST
    assert lim.max_steps == 5                                  # lowering is allowed
    big = limits.Limits.from_request({"max_snapshot_items": 10 ** 9})
    assert big.max_snapshot_items == limits.HARD_MAXIMA["max_snapshot_items"]
    for bad in ({"nope": 1}, {"max_steps": -1}, {"max_steps": "9"}, {1: 2}):
        with pytest.raises(TypeError):
            limits.Limits.from_request(bad)


def test_raised_depth_limits_do_not_reopen_the_deep_nesting_crash():
    lim = limits.Limits.from_request({"max_nesting": 10 ** 6, "max_chain": 10 ** 6,
                                      "max_ast_depth": 10 ** 6, "max_query_chars": 10 ** 7})
    with pytest.raises(BudgetError):
        evaluate("(" * 5000 + "1" + ")" * 5000, Scope({}), EvalOptions(limits=lim))


# --- a target that replaced sys attributes (item 6c) -------------------------------
_SYS_SCRIPT = r"""
import json, sys
sys.path.insert(0, %r)
from payloads import frames, policy
from payloads.errors import DeniedError
calls = []
real = sys._current_frames
out = {}
sys._current_frames = lambda: calls.append("_current_frames") or real()
try:
    frames.list_threads(0)
    out["threads"] = "ran"
except DeniedError as e:
    out["threads"] = e.message
sys._current_frames = real

class Modules(dict):
    def get(self, *a):
        calls.append("modules.get")
        return dict.get(self, *a)
    def __iter__(self):
        calls.append("modules.__iter__")
        return dict.__iter__(self)
    def items(self):
        calls.append("modules.items")
        return dict.items(self)

saved = sys.modules
sys.modules = Modules(saved)
try:
    policy.module_get("threading")
    out["modules"] = "ran"
except DeniedError as e:
    out["modules"] = e.message
sys.modules = saved

class PropertyModule(type(sys)):
    @property
    def modules(self):
        calls.append("modules property")
        return {}
sys.__class__ = PropertyModule
try:
    out["class"] = policy.module_get("builtins") is not None
finally:
    sys.__class__ = type(json)
out["calls"] = calls
print(json.dumps(out))
"""


@pytest.mark.parametrize("interp", interpreters()[:1] + interpreters()[-2:-1],
                         ids=lambda i: i.label)
def test_replaced_sys_attributes_are_refused_not_called(interp):
    if interp.path is None:
        pytest.skip(interp.missing_reason)
    out = subprocess.run([interp.path, "-I", "-S", "-c", _SYS_SCRIPT % str(ROOT)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["calls"] == []
    assert "sys._current_frames has been replaced" in report["threads"]
    assert "sys.modules has been replaced" in report["modules"]
    assert report["class"] is True     # read through ModuleType's own __dict__ slot


# --- collections held off the agent thread (item 6a) -------------------------------
def test_guard_switches_off_and_back_only_what_it_switched():
    was = gc.isenabled()
    try:
        gc.enable()
        guard = gcguard.Guard()
        guard.hold()
        assert not gc.isenabled()
        guard.release()
        assert gc.isenabled()
        gc.disable()                  # the target keeps it off: left alone
        guard.hold()
        guard.release()
        assert not gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()


_GARBAGE_SCRIPT = r"""
import gc, sys
sys.path.insert(0, %r)
gc.disable()
gc.collect()
gc.set_debug(gc.DEBUG_SAVEALL)
from payloads import agent, evaluator, gcguard, policy
evaluator.evaluate("sorted([2, 1])", evaluator.Scope({}))
gc.collect()
print(sorted(type(o).__name__ for o in gc.garbage if type(o).__name__ in ("frame", "list")))
"""


@pytest.mark.parametrize("interp", interpreters()[:1] + interpreters()[-2:-1],
                         ids=lambda i: i.label)
def test_loading_and_a_query_leave_no_cyclic_frames(interp):
    """Cyclic garbage waits for the target's next collection (which the agent
    holds off while it works): loading the payload and running a query must
    leave no frame cycle (one kept every boot-file source alive per attach)."""
    if interp.path is None:
        pytest.skip(interp.missing_reason)
    out = subprocess.run([interp.path, "-I", "-S", "-c", _GARBAGE_SCRIPT % str(ROOT)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_guard_never_calls_a_replaced_gc_function(monkeypatch):
    """A target that monkeypatched one gc function: the guard still holds, with
    a private instance of the C module, and never calls the target's."""
    calls = []
    real_isenabled, real_enable = gc.isenabled, gc.enable
    was = real_isenabled()
    real_enable()
    monkeypatch.setattr(gc, "isenabled", lambda: calls.append("isenabled") or False)
    guard = gcguard.Guard()
    try:
        guard.hold()
        assert guard.off is True and real_isenabled() is False
        guard.release()
        assert real_isenabled() is True
    finally:
        (real_enable if was else gc.disable)()
    assert calls == []
    assert sys.modules["gc"] is gc
