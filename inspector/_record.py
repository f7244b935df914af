"""Light records: what `dataclasses` gave our data classes, without its import.

`import dataclasses` pulls in `inspect` (and with it `ast`, `dis`,
`tokenize`, `linecache`), and every `@dataclass` execs half a dozen
generated methods: together most of a cold `inspector stack`'s import
(docs/DESIGN.md, "Round 5: the cold path"). A record keeps what our callers
rely on: keyword or positional construction in annotation order, defaults and
`field(default_factory=...)`, equality and hash over the fields, a dataclass
style repr, immutability (`frozen`, the default), and `fields`/`asdict`/
`replace` for the CLI's JSON and the dump's rebuild. mypy reads a record as
a dataclass (PEP 681, `dataclass_transform`).

Annotations stay strings (every module of ours has `from __future__ import
annotations`); `fields()` hands them on as written, and `dump.py` resolves
them with `typing.get_type_hints` where it rebuilds records from JSON.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    _T = TypeVar("_T")
else:
    def dataclass_transform(**_kwargs: object) -> Callable[[_T], _T]:
        return lambda decorated: decorated


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()  # a field with no default


class FrozenRecordError(AttributeError):
    """Assignment to a field of a frozen record (as dataclasses'
    FrozenInstanceError, also an AttributeError)."""


class Field:
    """One field of a record: its name, its annotation (a string) and its default."""

    __slots__ = ("name", "type", "default", "default_factory")

    def __init__(self, name: str, type: str, default: Any, default_factory: Any) -> None:
        self.name = name
        self.type = type
        self.default = default
        self.default_factory = default_factory

    def __repr__(self) -> str:
        return "Field(name=%r, type=%r)" % (self.name, self.type)


class _Factory:
    __slots__ = ("factory",)

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.factory = factory


def field(*, default_factory: Callable[[], Any]) -> Any:
    """A field whose default is made fresh for each record (`dict`, `list`)."""
    return _Factory(default_factory)


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def record(cls: type[_T]) -> type[_T]:
    """Make `cls` a frozen record (see the module docstring)."""
    return _build(cls, frozen=True)


@dataclass_transform(field_specifiers=(field,))
def mutable_record(cls: type[_T]) -> type[_T]:
    """Make `cls` a record whose fields can be assigned (no hash, as a
    dataclass with eq and without frozen)."""
    return _build(cls, frozen=False)


def _build(cls: type[_T], *, frozen: bool) -> type[_T]:
    own: dict[str, Any] = getattr(cls, "__annotations__", {})  # its own (3.10+), strings
    inherited: list[Field] = []
    for base in reversed(cls.__mro__[1:]):
        inherited += [f for f in getattr(base, "__record_fields__", ())
                      if f.name not in own and f.name not in [i.name for i in inherited]]
    result = list(inherited)
    for name, annotation in own.items():
        if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
            continue
        value = cls.__dict__.get(name, MISSING)
        if isinstance(value, _Factory):
            result.append(Field(name, annotation, MISSING, value.factory))
            delattr(cls, name)
        else:
            result.append(Field(name, annotation, value, MISSING))
    seen_default = False
    for f in result:
        if f.default is MISSING and f.default_factory is MISSING:
            if seen_default:
                raise TypeError("non-default field %r follows a default one" % f.name)
        else:
            seen_default = True
    fields_ = tuple(result)
    names = tuple(f.name for f in fields_)
    ns: dict[str, Any] = {"MISSING": MISSING}
    params, body = [], []
    for f in fields_:
        if f.default_factory is not MISSING:
            ns["_factory_" + f.name] = f.default_factory
            params.append("%s=MISSING" % f.name)
            body.append("  d[%r] = _factory_%s() if %s is MISSING else %s"
                        % (f.name, f.name, f.name, f.name))
        else:
            if f.default is not MISSING:
                ns["_default_" + f.name] = f.default
                params.append("%s=_default_%s" % (f.name, f.name))
            else:
                params.append(f.name)
            body.append("  d[%r] = %s" % (f.name, f.name))
    source = "def __init__(self, %s):\n  d = self.__dict__\n%s\n" % (
        ", ".join(params), "\n".join(body) or "  pass")
    # exec of the text, not of compile()'s code: the builtin compile() checks
    # for an AST argument, and the first such check builds the `_ast` types
    # (2-3 ms, measured on 3.11); exec(str) parses without them
    exec(source, ns)
    init = ns["__init__"]
    init.__qualname__ = "%s.__init__" % cls.__qualname__
    members: dict[str, Any] = {"__init__": init, "__record_fields__": fields_,
                               "__match_args__": names}
    if "__repr__" not in cls.__dict__:
        members["__repr__"] = _repr
    if "__eq__" not in cls.__dict__:
        members["__eq__"] = _eq
    if frozen:
        members["__setattr__"] = _frozen_setattr
        members["__delattr__"] = _frozen_delattr
        if cls.__dict__.get("__hash__") is None:  # not defined, or None since __eq__ was
            members["__hash__"] = _hash
    elif cls.__dict__.get("__hash__") is None:
        members["__hash__"] = None
    for name, value in members.items():
        setattr(cls, name, value)
    return cls


def _values(obj: Any) -> tuple[Any, ...]:
    d = obj.__dict__
    return tuple(d[f.name] for f in obj.__record_fields__)


def _repr(self: Any) -> str:
    d = self.__dict__
    return "%s(%s)" % (type(self).__qualname__, ", ".join(
        "%s=%r" % (f.name, d[f.name]) for f in self.__record_fields__))


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is self.__class__:
        return _values(self) == _values(other)
    return NotImplemented


def _hash(self: Any) -> int:
    return hash(_values(self))


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenRecordError("cannot assign to field %r" % name)


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenRecordError("cannot delete field %r" % name)


def is_record(obj: Any) -> bool:
    """A record class or an instance of one."""
    return hasattr(obj, "__record_fields__")


def fields(obj: Any) -> tuple[Field, ...]:
    """The fields of a record class or instance, in order."""
    try:
        result: tuple[Field, ...] = obj.__record_fields__
    except AttributeError:
        raise TypeError("%r is not a record" % (obj,)) from None
    return result


def asdict(obj: Any) -> dict[str, Any]:
    """A record as a dict, recursively (records, lists, tuples and dicts
    inside are converted or copied, as `dataclasses.asdict` does)."""
    if not is_record(obj) or isinstance(obj, type):
        raise TypeError("asdict() should be called on record instances")
    result: dict[str, Any] = _convert(obj)
    return result


def _convert(obj: Any) -> Any:
    if hasattr(obj, "__record_fields__"):
        d = obj.__dict__
        return {f.name: _convert(d[f.name]) for f in obj.__record_fields__}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a named tuple
        return type(obj)(*[_convert(v) for v in obj])
    if isinstance(obj, (list, tuple)):
        return type(obj)(_convert(v) for v in obj)
    if isinstance(obj, dict):
        return type(obj)((_convert(k), _convert(v)) for k, v in obj.items())
    return obj  # immutable values (str, int, float, bool, None) as they are


def replace(obj: _T, **changes: Any) -> _T:
    """A copy of the record `obj` with some fields changed."""
    d = obj.__dict__
    kwargs = {f.name: d[f.name] for f in fields(obj)}
    for name in changes:
        if name not in kwargs:
            raise TypeError("%s has no field %r" % (type(obj).__name__, name))
    kwargs.update(changes)
    return type(obj)(**kwargs)


# `class X(NamedTuple)` as typing builds it (a collections.namedtuple with the
# class's annotations, defaults, methods and docstring), without importing
# typing (~3-5 ms of every cold command, docs/DESIGN.md "Round 5b"). mypy
# sees typing's own.
if TYPE_CHECKING:
    from typing import NamedTuple as NamedTuple
else:
    _PROHIBITED = frozenset(("__new__", "__init__", "__slots__", "__getnewargs__", "_fields",
                             "_field_defaults", "_make", "_replace", "_asdict", "_source"))
    _SPECIAL = frozenset(("__module__", "__name__", "__annotations__"))

    class _NamedTupleMeta(type):
        def __new__(mcls, name, bases, ns):
            if ns.get("_root", False):
                return super().__new__(mcls, name, bases, ns)
            from collections import namedtuple

            annotations = ns.get("__annotations__", {})
            with_default = []
            for field_name in annotations:
                if field_name in ns:
                    with_default.append(field_name)
                elif with_default:
                    raise TypeError("Non-default namedtuple field %s cannot follow default "
                                    "field%s %s" % (field_name, "s" * (len(with_default) > 1),
                                                    ", ".join(with_default)))
            cls = namedtuple(name, list(annotations), defaults=[ns[n] for n in with_default],
                             module=ns["__module__"])
            cls.__annotations__ = cls.__new__.__annotations__ = dict(annotations)
            for key, value in ns.items():
                if key in _PROHIBITED:
                    raise AttributeError("Cannot overwrite NamedTuple attribute " + key)
                if key not in _SPECIAL and key not in cls._fields:
                    setattr(cls, key, value)
            return cls

    class NamedTuple(metaclass=_NamedTupleMeta):
        _root = True
