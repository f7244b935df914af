"""Snapshots: the node format of docs/DESIGN.md, built without target code."""
from __future__ import annotations

import collections
import threading

import pytest

from payloads.errors import DeniedError, QueryError
from payloads.limits import Limits
from payloads.snapshot import (
    PropertyMarker,
    Redacted,
    navigate,
    snapshot,
    snapshot_namespace,
)
from tests import payload_cases as cases


@pytest.fixture()
def target():
    scope = cases.build_scope()
    yield scope
    assert cases.CANARY == []


def test_scalars():
    assert snapshot(None) == {"type": "NoneType", "kind": "scalar", "text": "None",
                              "value": None}
    assert snapshot(True)["value"] is True
    assert snapshot(42) == {"type": "int", "kind": "scalar", "text": "42", "value": 42}
    assert snapshot(1.5)["value"] == 1.5
    assert "value" not in snapshot(float("nan"))
    assert snapshot(1j)["text"] == "1j"


def test_huge_int_is_bounded_text():
    node = snapshot(1 << 100_000)
    assert node["kind"] == "scalar" and "bits" in node["text"] and "value" not in node


def test_str_and_bytes_are_truncated_with_full_length():
    node = snapshot("a" * 5000, limits=Limits(max_snapshot_chars=10))
    assert node == {"type": "str", "kind": "str", "text": "a" * 10, "len": 5000,
                    "truncated": True}
    node = snapshot(b"\x00ab")
    assert node["kind"] == "bytes" and node["text"] == "b'\\x00ab'" and node["len"] == 3


def test_containers_first_items():
    node = snapshot(list(range(1000)), limits=Limits(max_snapshot_items=3))
    assert node["kind"] == "seq" and node["len"] == 1000 and node["truncated"]
    assert [n["value"] for n in node["items"]] == [0, 1, 2]
    assert snapshot({1, 2})["kind"] == "set"
    node = snapshot({"a": 1})
    assert node["kind"] == "map" and node["items"][0][0]["text"] == "a"
    assert snapshot(collections.deque([1]))["kind"] == "seq"
    assert snapshot(range(5))["len"] == 5


def test_dict_subclasses_never_trigger_missing(target):
    node = snapshot(target["missing_dict"])
    assert node["type"] == "tests.payload_cases.CountingDefault" and node["kind"] == "map"
    assert snapshot(target["defaults"])["type"] == "collections.defaultdict"
    assert snapshot(target["counter"])["type"] == "collections.Counter"


def test_objects_are_static_attrs_and_hooks_never_run(target):
    node = snapshot(target["canary"])
    assert node["kind"] == "object" and node["type"] == "tests.payload_cases.Canary"
    assert node["attrs"]["label"]["text"] == "canary"
    node = snapshot(target["config"])
    assert node["attrs"]["password"]["kind"] == "redacted"
    assert node["attrs"]["api_key"]["kind"] == "redacted"
    assert "hunter2" not in repr(node)
    assert snapshot(target["config"], redact=False)["attrs"]["password"]["text"] == "hunter2"


def test_map_values_redacted_by_key(target):
    node = snapshot(target["settings"])
    values = {k["text"]: v for k, v in node["items"]}
    assert values["password"]["kind"] == "redacted" and values["user"]["text"] == "admin"


def test_opaque_things(target):
    assert snapshot(target["fn"]) == {"type": "function", "kind": "opaque",
                                      "text": "<function target_function>"}
    assert snapshot(target["codecs"])["text"] == "<module codecs>"
    assert snapshot(target["Config"])["text"] == "<class tests.payload_cases.Config>"
    assert snapshot(len)["kind"] == "opaque"
    assert snapshot(target["gen"])["kind"] == "opaque"


def test_markers():
    assert snapshot(Redacted("token", "str")) == {
        "type": "str", "kind": "redacted", "reason": "name 'token' looks like a secret"}
    node = snapshot(PropertyMarker("url", "myapp.Config", "property"))
    assert node["kind"] == "property" and "url" in node["text"]


def test_cycles_and_depth_and_node_budget():
    a = [1]
    a.append(a)
    node = snapshot(a)
    assert node["items"][1]["kind"] == "cycle" and node["items"][1]["id"] == id(a)
    deep = [[[[[[[[1]]]]]]]]
    node = snapshot(deep, limits=Limits(max_snapshot_depth=2))
    assert node["items"][0]["items"][0]["kind"] == "cut"
    node = snapshot([[i] for i in range(100)], limits=Limits(max_snapshot_nodes=10))
    assert any(n["kind"] == "cut" for n in node["items"])


def test_snapshot_of_a_dict_mutated_by_another_thread_never_fails():
    shared = {i: i for i in range(2000)}
    stop = threading.Event()

    def mutate():
        i = 2000
        while not stop.is_set():
            shared[i] = i
            shared.pop(i - 2000, None)
            i += 1

    worker = threading.Thread(target=mutate, daemon=True)
    worker.start()
    try:
        for _ in range(200):
            assert snapshot(shared)["kind"] == "map"
    finally:
        stop.set()
        worker.join(5)


def test_navigate_paths(target):
    assert navigate(target["cache"], [["attr", "_data"], ["item", 0], ["item", 2]]) == 3
    assert navigate(target["orders"], [["item", 1], ["item", 0]]) == 2     # value of pair 0
    assert type(navigate(target["config"], [["attr", "password"]])) is Redacted
    assert type(navigate(target["config"], [["attr", "url"]])) is PropertyMarker
    with pytest.raises(DeniedError, match="code and frame internals"):
        navigate(target["fn"], [["attr", "__globals__"]])
    with pytest.raises(QueryError, match="IndexError"):
        navigate([1], [["item", 5]])
    with pytest.raises(QueryError):
        navigate(target["canary"], [["item", 0]])


def test_snapshot_namespace_redacts_and_hides(target):
    ns = dict(target, __builtins__={}, password="x")
    node = snapshot_namespace(ns)
    names = [k["text"] for k, _ in node["items"]]
    assert "__builtins__" not in names
    values = dict((k["text"], v) for k, v in node["items"])
    assert values["password"]["kind"] == "redacted"
    assert values["secret_key"]["kind"] == "redacted"


def test_offset_pages_through_the_top_level_container_only():
    from payloads.limits import Limits
    from payloads.snapshot import snapshot as snap

    lim = Limits(max_snapshot_items=3)
    data = {"k%d" % i: [i, i, i, i] for i in range(10)}
    node = snap(data, limits=lim, offset=3)
    assert node["offset"] == 3 and node["len"] == 10 and node["truncated"] is True
    assert [k["text"] for k, _ in node["items"]] == ["k3", "k4", "k5"]
    inner = node["items"][0][1]
    assert "offset" not in inner and len(inner["items"]) == 3  # nested: from item 0
    last = snap(list(range(10)), limits=lim, offset=9)
    assert [i["value"] for i in last["items"]] == [9] and last["truncated"] is False


def test_offset_is_validated():
    import pytest

    from payloads.errors import BudgetError, QueryError
    from payloads.snapshot import snapshot as snap

    with pytest.raises(QueryError):
        snap([1], offset=-1)
    with pytest.raises(BudgetError):
        snap({1: 2}, offset=10**9)  # dicts are scanned: the budget bounds the scan
    assert snap([1], offset=10**9)["items"] == []  # lists slice: nothing there


def test_lists_page_and_index_beyond_the_scan_budget():
    from payloads.limits import Limits
    from payloads.snapshot import item_at, navigate
    from payloads.snapshot import snapshot as snap

    lim = Limits(max_snapshot_items=2, max_scan_items=100)
    big = list(range(1000))
    node = snap(big, limits=lim, offset=500)
    assert [i["value"] for i in node["items"]] == [500, 501] and node["offset"] == 500
    assert item_at(big, 999, limits=lim) == 999
    assert navigate(big, [["item", 750]], limits=lim) == 750
    import pytest

    from payloads.errors import BudgetError, QueryError

    with pytest.raises(QueryError):
        item_at(big, 1000, limits=lim)
    with pytest.raises(BudgetError):  # a set has no O(1) index: the scan budget applies
        snap(set(big), limits=lim, offset=500)
