"""Static attribute reads: what obj.name is, without running any target code."""
from __future__ import annotations

import pytest

from payloads import static
from payloads.errors import DeniedError
from payloads.snapshot import PropertyMarker, read_attribute

CALLS = []


class Meta(type):
    def __getattribute__(cls, name):
        CALLS.append("Meta.__getattribute__ " + name)
        return type.__getattribute__(cls, name)

    @property
    def __mro__(cls):
        CALLS.append("Meta.__mro__")
        return (object,)


class Base(metaclass=Meta):
    shared = "class value"

    @property
    def prop(self):
        CALLS.append("prop")
        return 1

    def method(self):
        CALLS.append("method")


class Thing(Base):
    def __init__(self):
        self.x = 1
        self.prop_shadow = 2

    def __getattr__(self, name):
        CALLS.append("__getattr__ " + name)
        return 42

    def __getattribute__(self, name):
        CALLS.append("__getattribute__ " + name)
        return object.__getattribute__(self, name)


class DictProperty:
    @property
    def __dict__(self):
        CALLS.append("__dict__ property")
        return {"fake": 1}


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self):
        self.a = "A"


class NoisyKey:
    """A key whose hash equals hash('x'): a dict lookup of 'x' would call __eq__."""

    def __hash__(self):
        return hash("x")

    def __eq__(self, other):
        CALLS.append("NoisyKey.__eq__")
        return False


class DataDesc:
    def __get__(self, obj, cls=None):
        CALLS.append("DataDesc.__get__")
        return 1

    def __set__(self, obj, value):
        CALLS.append("DataDesc.__set__")


class WithDesc:
    d = DataDesc()


def made(obj):
    """Objects are built before the check starts (building them runs hooks)."""
    del CALLS[:]
    return obj


@pytest.fixture(autouse=True)
def no_calls():
    del CALLS[:]
    yield
    assert CALLS == []


def test_instance_dict_then_class_attribute():
    """Given an instance attr and a class attr, both are read statically."""
    t = made(Thing())
    assert static.lookup(t, "x") == ("value", 1)
    assert static.lookup(t, "shared") == ("value", "class value")


def test_property_is_a_descriptor_not_called():
    t = made(Thing())
    kind, value = static.lookup(t, "prop")
    assert kind == "descriptor" and type(value) is property


def test_missing_does_not_run_getattr():
    t = made(Thing())
    assert static.lookup(t, "nope") == ("missing", None)
    with pytest.raises(AttributeError):
        static.getattr_static(t, "nope")
    assert static.getattr_static(t, "nope", 0) == 0


def test_function_on_class_is_returned_raw():
    t = made(Thing())
    kind, value = static.lookup(t, "method")
    assert kind == "value" and value is type.__dict__["__dict__"].__get__(Base)["method"]


def test_metaclass_mro_and_getattribute_are_bypassed():
    t = made(Thing())
    assert static.mro(Thing)[:2] == (Thing, Base)
    assert static.lookup_on_class(Thing, "shared") == ("value", "class value")
    assert static.is_class(Thing) and not static.is_class(t)


def test_dict_property_hides_the_instance_dict():
    """A class that defines __dict__ as a property has no readable instance dict here."""
    assert static.instance_dict(DictProperty()) is None
    assert static.instance_attrs(DictProperty()) == ([], False)


def test_slots_read_through_member_descriptor():
    s = Slotted()
    assert static.lookup(s, "a") == ("slot", "A")
    assert static.lookup(s, "b") == ("missing", None)       # unset slot
    assert static.instance_attrs(s) == ([("a", "A")], False)


def test_user_data_descriptor_is_not_run():
    kind, value = static.lookup(WithDesc(), "d")
    assert kind == "descriptor"


def test_non_str_key_with_colliding_hash_is_never_compared():
    """Given an instance dict holding a key with hash('x'), reading .x never calls its __eq__."""
    t = made(Base())
    d = static.instance_dict(t)
    d[NoisyKey()] = "noise"
    d["x"] = "real"            # inserting compares with the noisy key: setup only
    del CALLS[:]
    assert static.dict_get_str(d, "x") == "real"
    assert static.lookup(t, "x") == ("value", "real")


def test_instance_attrs_are_bounded():
    t = made(Base())
    for i in range(50):
        static.instance_dict(t)[f"a{i}"] = i
    attrs, truncated = static.instance_attrs(t, limit=10)
    assert len(attrs) == 10 and truncated


def test_read_attribute_rules():
    """The evaluator's attribute rule: a property read is refused (a listing gets a
    marker), __class__ is the real type."""
    t = made(Thing())
    with pytest.raises(DeniedError, match="'prop' of .*Thing refused: it is a property"):
        read_attribute(t, "prop")
    assert type(read_attribute(t, "prop", placeholder=True)) is PropertyMarker
    assert read_attribute(t, "__class__") is Thing
    assert read_attribute(Thing, "__name__") == "Thing"
    assert read_attribute((1).real.__class__, "__name__") == "int"
    assert read_attribute(1 + 2j, "imag") == 2.0
