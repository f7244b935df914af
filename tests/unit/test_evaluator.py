"""The evaluator answers everyday debugging queries correctly (issue 3).

The table lives in tests/payload_cases.py so the same cases also run under
every CPython 3.8-3.13 (tests/unit/test_payload_versions.py).
"""
from __future__ import annotations

import pytest

from payloads.errors import DeniedError, QueryError
from payloads.evaluator import EvalOptions, Scope, evaluate
from payloads.snapshot import LazyIter, Redacted, snapshot
from tests import payload_cases as cases


@pytest.fixture()
def target():
    """Given a realistic target namespace with an armed canary."""
    scope = cases.build_scope()
    yield scope
    assert cases.CANARY == [], f"target code ran: {cases.CANARY!r}"


@pytest.mark.parametrize("case", cases.LEGIT, ids=[c[0][:60] for c in cases.LEGIT])
def test_legitimate_query(target, case):
    """When a legitimate query runs, then it returns the expected value."""
    outcome = cases.run_case(evaluate, Scope, EvalOptions, snapshot, target, case)
    assert cases.matches(case, outcome, snapshot), outcome


def test_comprehension_variables_stay_in_the_evaluator(target):
    """Given globals without `o`, when a comprehension binds `o`, then globals are unchanged."""
    keys = sorted(target)
    assert evaluate("[o['id'] for o in orders]", Scope(target)) == [1, 2, 3, 4]
    assert sorted(target) == keys
    with pytest.raises(QueryError, match="NameError"):
        evaluate("o", Scope(target))


def test_name_lookup_order():
    """Comprehension variables shadow locals, which shadow globals, then builtins."""
    scope = Scope({"v": "global", "len": "shadowed"}, {"v": "local"})
    assert evaluate("v", scope) == "local"
    assert evaluate("[v for v in [1]]", scope) == [1]
    assert evaluate("v", Scope({"v": "global"})) == "global"
    with pytest.raises(DeniedError, match="call of 'len' refused"):
        evaluate("len([])", scope)          # a target global named len is not the builtin


def test_globals_are_never_written(target):
    """Reading many things leaves the live globals dict identical."""
    before = dict(target)
    for query in ("orders", "[x for x in sizes]", "{k: v for k, v in registry.items()}",
                  "vars(config)", "config.__dict__"):
        evaluate(query, Scope(target))
    assert target == before


def test_generator_result_is_materialised(target):
    """A generator expression as the whole query becomes a list (bounded)."""
    result = evaluate("(x for x in sizes)", Scope(target))
    assert type(result) is list and result == [3, 9, 2, 7]


def test_lazy_values_stay_lazy_inside_the_query(target):
    """any() over a generator stops at the first true item (laziness kept)."""
    assert evaluate("any(x > 2 for x in big)", Scope(target)) is True


def test_allow_properties_runs_the_getter_only_when_opted_in(target):
    """A property read is refused by default; with allow_properties its fget runs."""
    del cases.OPTED_IN[:]
    with pytest.raises(DeniedError, match=r"^attribute 'url' of tests.payload_cases.Config "
                       r"refused: it is a property .*--allow-properties"):
        evaluate("config.url", Scope(target))
    assert cases.OPTED_IN == []
    value = evaluate("config.url", Scope(target), EvalOptions(allow_properties=True))
    assert value == "postgres://db.internal:5432"
    assert cases.OPTED_IN == ["Config.url"]


def test_secrets_are_redacted_unless_opted_out(target):
    """Secret-looking names give an opaque marker; redact=False shows them."""
    assert type(evaluate("config.password", Scope(target))) is Redacted
    assert type(evaluate("settings['token']", Scope(target))) is Redacted
    assert type(evaluate("vars(config)['api_key']", Scope(target))) is Redacted
    assert type(evaluate("list(settings.values())[0]", Scope(target))) is Redacted
    assert evaluate("config.password", Scope(target), EvalOptions(redact=False)) == "hunter2"


def test_agent_helpers_get_builtin_scalars_only(target):
    """Helpers are trusted, but the evaluator only hands them builtin scalars."""
    calls = []

    def frames(thread_id=None):
        calls.append(thread_id)
        return [{"name": "main", "line": 3}]

    scope = Scope(target, helpers={"frames": frames})
    assert evaluate("frames(1)[0]['line']", scope) == 3
    with pytest.raises(DeniedError, match="builtin scalars"):
        evaluate("frames(config)", scope)
    assert calls == [1]


def test_evaluator_helpers(target):
    """type/isinstance/vars/getattr_static answer statically."""
    scope = Scope(target)
    assert evaluate("type(config) is Config", scope) is True
    assert evaluate("isinstance(config, (int, Config))", scope) is True
    assert evaluate("isinstance(True, int)", scope) is True
    assert evaluate("vars(cache)", scope) == {"_data": {"a": [1, 2, 3], "b": [4], "c": []},
                                               "hits": 7}
    with pytest.raises(DeniedError, match="'url' of tests.payload_cases.Config refused"):
        evaluate("getattr_static(config, 'url')", scope)


def test_dict_views_are_safe_and_support_len_and_in(target):
    """keys()/values()/items() work with len(), `in` and iteration."""
    scope = Scope(target)
    assert evaluate("len(registry.items())", scope) == 3
    assert evaluate("'mid' in registry.keys()", scope) is True
    assert evaluate("('mid', 3) in registry.items()", scope) is True
    assert evaluate("sorted(registry.values())", scope) == [1, 2, 3]


def test_only_errors_of_the_three_kinds_escape(target):
    """Whatever the query, only DeniedError/BudgetError/QueryError are raised."""
    from payloads.errors import AgentError
    for query in ("1/0", "[][1]", "int('x')", "'a' + 1", "None.x", "{}['k']", "(1,)[5]",
                  "float('inf') // 0", "chr(-1)", "sorted([1, 'a'])", "2.0 ** 10000"):
        with pytest.raises(AgentError):
            evaluate(query, Scope(target))


def test_lazyiter_is_not_leaked_as_generator():
    """zip/enumerate/map/filter produce evaluator-owned lazy values."""
    assert type(evaluate("zip([1], [2])", Scope({}))) is list
    scope = Scope({})
    assert evaluate("[z for z in zip([1, 2], 'ab')]", scope) == [(1, "a"), (2, "b")]
    assert LazyIter.__module__ == "payloads.snapshot"


def test_snapshot_of_results_renders_without_target_code(target):
    """The result of a query is rendered by snapshot() with no hook running."""
    node = snapshot(evaluate("[canary, config, workers]", Scope(target)))
    assert node["kind"] == "seq"
    assert [n["kind"] for n in node["items"]] == ["object", "object", "seq"]
