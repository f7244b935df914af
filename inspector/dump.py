"""Thread dumps for bug reports: one JSON document, readable offline.

    with inspector.attach(pid) as s:
        dump = build_dump(s, locals=True)
    text = dump_to_text(dump)              # the JSON document
    same = load_dump(text)                 # a Dump again, no target needed

Format (``"format": "inspector-dump"``, ``"version": DUMP_VERSION``): the
fields of ``models.Dump`` as JSON, every model as its record fields
(``_record.asdict``), snapshots of locals as snapshot nodes
(docs/DESIGN.md, "Snapshots"). A reader accepts any version up to its own
and ignores fields it does not know, so a newer writer may add fields
without a version bump; removing or changing one bumps the version.
"""

from __future__ import annotations

import datetime
import json
import socket
import types
import typing
from functools import cache
from typing import TYPE_CHECKING, Any

from . import _record
from ._text import json_dumps
from .diagnostics import Dump, DumpTarget
from .errors import BudgetExceeded, Denied, EvalError, UsageError

if TYPE_CHECKING:
    from .api import SessionAPI

DUMP_FORMAT = "inspector-dump"
DUMP_VERSION = 1


class DumpFormatError(UsageError):
    """The file is not a dump this inspector can read (exit code 2)."""


def build_dump(session: SessionAPI, *, locals: bool = False, census_top: int = 0) -> Dump:
    """Ask the target for everything a bug report needs (one session, several calls).

    A section the agent refuses or cannot produce (a budget, an error) is left
    out and its reason kept in `errors`; losing the target still raises.
    """
    from . import __version__

    errors: dict[str, str] = {}

    def section(name: str, fn: Any) -> Any:
        try:
            return fn()
        except (Denied, BudgetExceeded, EvalError) as e:
            errors[name] = e.message
            return None

    threads = section("threads", lambda: session.stack(locals=locals))
    tasks = section("tasks", session.tasks)
    memory = section("memory", session.memory)
    census = section("census", lambda: session.census(census_top)) if census_top else None
    target = session.target
    return Dump(
        version=DUMP_VERSION,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        tool="inspector %s" % __version__,
        target=DumpTarget(pid=target.pid, python=tuple(session.agent.python),
                          cmdline=target.cmdline, exe=target.exe, host=socket.gethostname()),
        threads=tuple(threads or ()),
        memory=memory,
        tasks=tuple(tasks) if tasks is not None else None,
        census=census,
        redacted=session.redact,
        with_locals=locals,
        errors=errors,
    )


def dump_to_json(dump: Dump) -> dict[str, Any]:
    """The dump as plain JSON data (dicts, lists, str, int, float, bool, None)."""
    doc: dict[str, Any] = {"format": DUMP_FORMAT}
    doc.update(_plain(_record.asdict(dump)))
    return doc


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def dump_to_text(dump: Dump) -> str:
    return json_dumps(dump_to_json(dump), indent=1) + "\n"


def load_dump(text: str | bytes, source: str = "the dump") -> Dump:
    """Parse a dump; raises DumpFormatError with one line saying what is wrong."""
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise DumpFormatError("%s is not JSON (%s); was it written by `inspector dump`?"
                              % (source, e)) from None
    if not isinstance(doc, dict) or doc.get("format") != DUMP_FORMAT:
        raise DumpFormatError("%s is not an inspector dump (no \"format\": \"%s\")"
                              % (source, DUMP_FORMAT))
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise DumpFormatError("%s has no valid format version" % source)
    if version > DUMP_VERSION:
        raise DumpFormatError("%s was written by a newer inspector (format version %d, this "
                              "one reads up to %d); upgrade inspector"
                              % (source, version, DUMP_VERSION))
    try:
        return typing.cast(Dump, _from_json(Dump, doc, "dump"))
    except _Malformed as e:
        raise DumpFormatError("%s is malformed: %s" % (source, e)) from None


class _Malformed(Exception):
    pass


@cache
def _hints(cls: type) -> dict[str, Any]:
    # Any too: the modules of our records import it only for mypy (they do not load typing)
    return typing.get_type_hints(cls, localns={"Any": Any})


def _from_json(tp: Any, value: Any, where: str) -> Any:
    """Rebuild a value of annotated type `tp` from its asdict() form, checking it."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _from_json(arg, value, where)
            except _Malformed:
                continue
        raise _Malformed("%s has an unexpected value %.60r" % (where, value))
    if origin is tuple:
        if not isinstance(value, list):
            raise _Malformed("%s should be a list" % where)
        (item,) = [a for a in typing.get_args(tp) if a is not Ellipsis][:1] or [Any]
        return tuple(_from_json(item, v, "%s[%d]" % (where, i)) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise _Malformed("%s should be an object" % where)
        _key, item = typing.get_args(tp) or (str, Any)
        return {str(k): _from_json(item, v, "%s.%s" % (where, k)) for k, v in value.items()}
    if isinstance(tp, type) and _record.is_record(tp):
        if not isinstance(value, dict):
            raise _Malformed("%s should be an object" % where)
        hints = _hints(tp)
        kwargs = {}
        for f in _record.fields(tp):
            if f.name in value:
                kwargs[f.name] = _from_json(hints[f.name], value[f.name],
                                            "%s.%s" % (where, f.name))
            elif f.default is _record.MISSING and f.default_factory is _record.MISSING:
                raise _Malformed("%s has no %r" % (where, f.name))
        return tp(**kwargs)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Malformed("%s should be a number" % where)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Malformed("%s should be an integer" % where)
    if tp in (str, bool):
        if type(value) is tp:
            return value
        raise _Malformed("%s should be a %s" % (where, tp.__name__))
    raise _Malformed("%s: cannot read a %r" % (where, tp))
