"""Framework objects the evaluator reads from their storage (policy.STORED_DESCRIPTORS,
policy.PROPERTY_STORAGE), against the real packages pinned in the `test` extra:
traitlets, Django, SQLAlchemy, Flask/werkzeug, FastAPI/Starlette, gunicorn.

The objects are examples/framework_objects.py's, built in this process. Every
test asserts the answer *and* that nothing ran: the getters there append to
CALLS, and the storages (instance dicts, traitlets' _trait_values) gain no key.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import pytest

from payloads import policy, static
from payloads.errors import BudgetError, DeniedError
from payloads.evaluator import EvalOptions, Scope, evaluate
from payloads.snapshot import PropertyMarker, Redacted, navigate, read_attribute

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "framework_objects.py"


@pytest.fixture(scope="module")
def service():
    """The example service's module and objects (Django's settings are process-wide:
    built once)."""
    spec = importlib.util.spec_from_file_location("framework_objects_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    objects, missing = module.build()
    assert missing == [], ("the frameworks %s are pinned in the test extra: "
                           "pip install -e '.[test]'" % missing)
    return module, objects


@pytest.fixture
def ns(service):
    module, objects = service
    del module.CALLS[:]
    yield objects
    assert module.CALLS == [], "target code ran: %s" % module.CALLS


def ev(ns, query, **options):
    return evaluate(query, Scope(ns), EvalOptions(**options))


def refused(ns, query, match):
    with pytest.raises(DeniedError, match=match):
        ev(ns, query)


# --- what each framework answers ------------------------------------------------
def test_traitlets_values_are_read_from_trait_values(ns):
    """ipykernel's shape: app.kernel (Instance), kernel.shell.user_ns (Dict), Int."""
    assert ev(ns, "app.workers") == 4
    assert ev(ns, "app.kernel.shell.user_ns") == {"x": 1, "df_rows": 1200}
    assert ev(ns, "app.kernel.shell.user_ns['df_rows'] * 2") == 2400
    assert ev(ns, "type(app.kernel).__name__") == "Kernel"
    assert type(ev(ns, "app.kernel.session_token")) is Redacted      # by its name
    assert ev(ns, "app.kernel.session_token", redact=False) == "tok-0123456789"


def test_traitlets_default_never_computed_is_refused(ns):
    """A dynamic default not computed yet: refused, its @default never runs, no key."""
    app = ns["app"]
    before = sorted(app._trait_values)
    refused(ns, "app.banner", r"^attribute 'banner' of .*ServiceApp refused: it is a "
            r"traitlets.traitlets.Unicode whose value is not stored yet \(reading it would run "
            r"traitlets code to compute or load it\); --isolated --allow-calls")
    assert sorted(app._trait_values) == before and "banner" not in app._trait_values


def test_django_fields_and_foreign_key_ids(ns):
    """Plain fields (already readable: DeferredAttribute has no __set__) and the FK's
    attname (ForeignKeyDeferredAttribute has one: read through the table)."""
    assert ev(ns, "(order.id, order.sku, order.qty)") == (7, "A-100", 3)
    assert ev(ns, "order.customer_id") == 12
    kind, _ = static.lookup(ns["order"], "customer_id")
    assert kind == "descriptor"                 # the table made it answer


def test_django_deferred_field_is_refused(ns):
    """A deferred field would run refresh_from_db (a query): refused, nothing stored."""
    deferred = ns["deferred"]
    keys = sorted(deferred.__dict__)
    refused(ns, "deferred.qty", r"DeferredAttribute whose value is not stored yet .*Django")
    refused(ns, "order.customer", r"ForwardManyToOneDescriptor \(reading it would run")
    assert sorted(deferred.__dict__) == keys


def test_sqlalchemy_columns_and_unloaded_relationship(ns):
    user = ns["user"]
    keys = sorted(user.__dict__)
    assert ev(ns, "(user.id, user.name)") == (1, "ada")
    refused(ns, "user.addresses", r"InstrumentedAttribute whose value is not stored yet "
            r".*SQLAlchemy")
    assert sorted(user.__dict__) == keys        # no empty collection was initialised


def test_flask_url_map_and_werkzeug_cached_property(ns):
    assert ev(ns, "[r.rule for r in flask_app.url_map._rules]") == [
        "/static/<path:filename>", "/orders/<int:order_id>"]
    assert ev(ns, "flask_app.name") == "shop"
    assert ev(ns, "sorted(flask_app.url_map._rules_by_endpoint)") == ["order", "static"]


def test_werkzeug_rules_are_bounded(ns):
    """Map._rules builds a new list: its size is checked before it is built."""
    with pytest.raises(BudgetError, match="max_snapshot_items"):
        read_attribute(ns["flask_app"].url_map, "_rules", limit=1)


def test_fastapi_routes(ns):
    assert ev(ns, "[r.path for r in api.routes][-1]") == "/items/{item_id}"
    assert ev(ns, "api.routes is api.router.routes") is True


def test_gunicorn_num_workers(ns):
    assert ev(ns, "arbiter.num_workers") == 3
    assert ev(ns, "arbiter.num_workers + 1") == 4


def test_cached_property_computed_or_refused(ns):
    report = ns["report"]
    assert ev(ns, "report.total") == 7
    refused(ns, "report.pending", r"functools.cached_property whose value is not stored yet")
    assert sorted(report.__dict__) == ["rows", "total"]


def test_unknown_descriptor_is_refused_and_not_run(ns):
    refused(ns, "probe.value", r"^attribute 'value' of .*Probe refused: it is a "
            r".*Recorder \(reading it would run target code\); --isolated --allow-calls")
    refused(ns, "[probe.value]", "Recorder")


def test_listings_keep_the_placeholder(ns):
    """navigate (the TUI, paths) shows what was not read; it does not refuse."""
    marker = navigate(ns["app"], [["attr", "banner"]])
    assert type(marker) is PropertyMarker and "not stored yet" in marker.text()


# --- what must not be read through the table ------------------------------------
def test_a_trait_subclass_overriding_get_is_not_read(ns):
    """A TraitType subclass with its own get(): not the reviewed code, refused."""
    import traitlets

    calls = []

    class Computed(traitlets.Int):
        def get(self, obj, cls=None):
            calls.append("get")
            return 99

    class Holder(traitlets.HasTraits):
        n = Computed(5)

    h = Holder()
    h._trait_values["n"] = 5
    with pytest.raises(DeniedError, match="Computed"):
        read_attribute(h, "n")
    assert calls == []


def test_a_lookalike_class_is_not_the_framework(ns):
    """A class named TraitType with module traitlets.traitlets that is not the one in
    sys.modules does not match."""
    calls = []

    class TraitType:
        def __get__(self, obj, cls=None):
            calls.append("get")
            return 1

        def __set__(self, obj, value):
            pass

        def get(self, obj, cls=None):
            calls.append("get")

    TraitType.__module__ = "traitlets.traitlets"
    TraitType.__qualname__ = "TraitType"          # matches by name, not by identity
    trait = TraitType()
    trait.name = "n"

    class Holder:
        n = trait

        def __init__(self):
            self._trait_values = {"n": 3}

    with pytest.raises(DeniedError, match="TraitType"):
        read_attribute(Holder(), "n")
    assert calls == []


def test_hostile_names_and_storages_are_refused(ns):
    """A str-subclass trait name, a dict-subclass _trait_values: refused, no method run."""
    import traitlets

    calls = []

    class Name(str):
        def __eq__(self, other):
            calls.append("__eq__")
            return True

        __hash__ = str.__hash__

    class Spy(dict):
        def __getitem__(self, key):
            calls.append("__getitem__")
            return 0

    class Holder(traitlets.HasTraits):
        a = traitlets.Int(1)
        b = traitlets.Int(2)

    h = Holder()
    h.a, h.b = 1, 2
    Holder.__dict__["a"].name = Name("a")
    try:
        with pytest.raises(DeniedError, match="not stored yet"):
            read_attribute(h, "a")
    finally:
        Holder.__dict__["a"].name = "a"
    h._trait_values = Spy(h._trait_values)
    with pytest.raises(DeniedError, match="not stored yet"):
        read_attribute(h, "b")
    # a str-subclass *key* in the storage is never compared with __eq__
    h._trait_values = {Name("zz"): 0, "b": 2}
    assert read_attribute(h, "b") == 2
    assert calls == []


def test_a_replaced_property_is_not_read_statically(ns):
    """Arbiter.num_workers replaced by the target: not the reviewed getter."""
    from gunicorn.arbiter import Arbiter

    calls = []
    original = Arbiter.__dict__["num_workers"]
    Arbiter.num_workers = property(lambda self: calls.append("getter") or self._num_workers)
    try:
        refused(ns, "arbiter.num_workers", "it is a property")
    finally:
        Arbiter.num_workers = original
    assert calls == []
    assert ev(ns, "arbiter.num_workers") == 3


def test_an_entry_whose_module_is_not_imported_is_inert(ns, monkeypatch):
    """The tables look classes up in sys.modules only: without gunicorn.arbiter
    there, Arbiter.num_workers is an ordinary property (refused), nothing imported."""
    monkeypatch.delitem(sys.modules, "gunicorn.arbiter")
    refused(ns, "arbiter.num_workers", "it is a property")
    assert "gunicorn.arbiter" not in sys.modules


def test_allow_properties_prefers_the_storage(ns):
    """With allow_properties a table property is still read statically."""
    assert ev(ns, "arbiter.num_workers", allow_properties=True) == 3


# --- the table against the pinned packages ----------------------------------------
@pytest.mark.parametrize("entry", policy.STORED_DESCRIPTORS, ids=lambda e: e["type"])
def test_every_stored_descriptor_entry_names_real_code(service, entry):
    """Each entry's class exists in its module with its own reviewed methods, and the
    attributes the table reads are what the reviewed __get__ reads."""
    cls = getattr(importlib.import_module(entry["module"]), entry["type"])
    for method in entry["methods"]:
        assert method in vars(cls), (entry["type"], method)
    names = set(vars(cls)["get" if "get" in entry["methods"] else "__get__"].__code__.co_names)
    for part in entry["key"][:1] + entry["store"]:
        assert part in names, (entry["type"], part)


@pytest.mark.parametrize("entry", policy.PROPERTY_STORAGE, ids=lambda e: e["attr"])
def test_every_property_entry_is_the_pinned_getter(service, entry):
    """The getter of the pinned version is the one the table describes, and the path
    reads only names the getter reads."""
    cls = getattr(importlib.import_module(entry["module"]), entry["type"])
    prop = vars(cls)[entry["attr"]]
    assert type(prop) is property
    assert prop.fget.__qualname__ == entry["getter"]
    assert prop.fget.__code__.co_names == entry["names"]
    assert set(entry["path"]) <= set(entry["names"])
