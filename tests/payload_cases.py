"""The evaluator's cases as pure data, runnable on every CPython 3.8-3.13.

Standard library only and valid on 3.8: ``tests/payload_runner.py`` runs these
cases under each interpreter (``python3.X -I -S``), and the unit tests run them
in-process. ``build_scope()`` makes a realistic target namespace, including a
*canary*: objects whose ``__repr__ __eq__ __hash__ __len__ __iter__ __bool__
__format__ __index__ __getattr__``, property and metaclass hooks append to
``CANARY``. ``fingerprint()`` captures the canary and every mutable piece of
target state, so a runner can assert that no case changed anything.

A case is ``(query, expected)`` or ``(query, expected, options)`` where
expected is one of

* ``"denied"`` / ``"budget"`` / ``"eval"``: the error kind (exit 3 / 4 / 1);
* ``("ok", value)``: the result, compared as plain data through its snapshot;
* ``("kind", k)``: the result's snapshot kind (``redacted``, ``property`` ...).
"""
from __future__ import annotations

import builtins
import codecs
import collections
import enum
import functools
import operator
import queue
import sys

CANARY = []
OPTED_IN = []


class Meta(type):
    """A metaclass whose hooks must never run (hashing/comparing a class)."""

    def __hash__(cls):
        CANARY.append("Meta.__hash__")
        return 1

    def __eq__(cls, other):
        CANARY.append("Meta.__eq__")
        return False

    def __instancecheck__(cls, obj):
        CANARY.append("Meta.__instancecheck__")
        return True

    @property
    def __mro__(cls):                       # noqa: PLE0302 - a trap, on purpose
        CANARY.append("Meta.__mro__")
        return (object,)


class Canary(metaclass=Meta):
    """Every hook appends to CANARY: the evaluator must trigger none of them."""

    def __init__(self, label="canary"):
        self.label = label

    def __repr__(self):
        CANARY.append("__repr__")
        return "Canary()"

    def __str__(self):
        CANARY.append("__str__")
        return "Canary"

    def __eq__(self, other):
        CANARY.append("__eq__")
        return True

    def __ne__(self, other):
        CANARY.append("__ne__")
        return False

    def __lt__(self, other):
        CANARY.append("__lt__")
        return True

    def __hash__(self):
        CANARY.append("__hash__")
        return hash(42)

    def __len__(self):
        CANARY.append("__len__")
        return 1

    def __iter__(self):
        CANARY.append("__iter__")
        return iter([1])

    def __contains__(self, item):
        CANARY.append("__contains__")
        return True

    def __bool__(self):
        CANARY.append("__bool__")
        return True

    def __format__(self, spec):
        CANARY.append("__format__")
        return "Canary"

    def __index__(self):
        CANARY.append("__index__")
        return 0

    def __getitem__(self, key):
        CANARY.append("__getitem__")
        return 1

    def __getattr__(self, name):
        CANARY.append("__getattr__ " + name)
        return 1

    def __add__(self, other):
        CANARY.append("__add__")
        return 1

    def __call__(self, *args):
        CANARY.append("__call__")
        return 1

    @property
    def prop(self):
        CANARY.append("prop")
        return 1

    @property
    def __class__(self):                    # a lying __class__ (isinstance reads it)
        CANARY.append("__class__ property")
        return dict

    def method(self):
        CANARY.append("method")
        return 1


class Config:
    DEFAULT_TIMEOUT = 10

    def __init__(self):
        self.timeout = 30
        self.host = "db.internal"
        self.port = 5432
        self.password = "hunter2"
        self.api_key = "AKIA-SECRET"
        self.retries = [1, 2, 3]

    @property
    def url(self):
        OPTED_IN.append("Config.url")     # runs only with allow_properties
        return f"postgres://{self.host}:{self.port}"


class Worker:
    def __init__(self, name, alive):
        self.name = name
        self.alive = alive


class Slotted:
    __slots__ = ("x", "y", "unset")

    def __init__(self):
        self.x = 1
        self.y = "two"


class Cache:
    def __init__(self):
        self._data = {"a": [1, 2, 3], "b": [4], "c": []}
        self.hits = 7


class Report:
    """functools.cached_property: read from the instance dict once computed;
    a query never computes one (the getters append to CANARY)."""

    def __init__(self):
        self.rows = [3, 4]

    @functools.cached_property
    def total(self):
        CANARY.append("Report.total")
        return sum(self.rows)

    @functools.cached_property
    def pending(self):
        CANARY.append("Report.pending")
        return 0


# the same cached_property under a second name (no __set_name__): its value is
# stored under attrname "total"
Report.alias = Report.__dict__["total"]


class CountingDefault(dict):
    def __missing__(self, key):
        CANARY.append("__missing__")
        return 0


def _gen():
    CANARY.append("generator advanced")
    yield 1


def _traceback():
    try:
        raise ValueError("x")
    except ValueError as exc:
        return exc.__traceback__


def target_function(x):
    CANARY.append("target_function")
    return x


class FieldName(str):
    """A str-subclass dict key (issue 11): its hooks must never run."""

    def __str__(self):
        CANARY.append("FieldName.__str__")
        return "field"

    def __repr__(self):
        CANARY.append("FieldName.__repr__")
        return "field"

    def __len__(self):
        CANARY.append("FieldName.__len__")
        return 5

    def __eq__(self, other):
        CANARY.append("FieldName.__eq__")
        return str.__eq__(self, other)

    __hash__ = str.__hash__

    def lower(self):
        CANARY.append("FieldName.lower")
        return "field"


class Field(str, enum.Enum):        # what enum.StrEnum (3.11+) members are: str subclasses
    PASSWORD = "db_password"
    USER = "user"


class TrapBytes(bytes):
    def __len__(self):
        CANARY.append("TrapBytes.__len__")
        return 1


class TrapBytearray(bytearray):
    def __len__(self):
        CANARY.append("TrapBytearray.__len__")
        return 1


STATE = {}
BIG = list(range(300_000))          # built once: queries only read it
HAYSTACK = "a" * 1_000_000
COLLIDING = [i * ((1 << 61) - 1) for i in range(20_000)]   # hash() == 0 on 64-bit builds
LONG_YS = ["y" * 100_000] * 5_000
ODD_Y = "y" * 99_999 + "z"
DEEP = 1
for _ in range(10_000):
    DEEP = (DEEP,)                   # 10^4-deep tuple: hashing it would crash a C stack


def build_scope() -> dict:
    """A realistic target namespace (the globals the queries run against)."""
    q = queue.Queue()
    for i in range(3):
        q.put(i)
    canary = Canary()
    report = Report()
    assert report.total == 7                        # computed once, by the target
    scope = {
        "config": Config(),
        "Config": Config,
        "queue": q,
        "cache": Cache(),
        "orders": [{"id": 1, "qty": 2, "sku": "A"}, {"id": 2, "qty": 5, "sku": "B"},
                   {"id": 3, "qty": 1, "sku": "A"}, {"id": 4, "qty": 7, "sku": "C"}],
        "registry": {"zeta": 1, "alpha": 2, "mid": 3},
        "workers": [Worker("w1", True), Worker("w2", False), Worker("w3", True)],
        "groups": {"a": [1, 2], "b": [3], "c": []},
        "sizes": [3, 9, 2, 7],
        "names": ["abc", "def", "xyz"],
        "flag": True, "a": 1, "b": 2, "host": "example.org", "port": 8080,
        "name": "xavier", "obj": Config(), "x": {"k": 1}, "done": False, "retries": 5,
        "slotted": Slotted(),
        "canary": canary,
        "Canary": Canary,
        "canaries": [canary, 1],
        "canary_keys": {canary: 1, 42: 2},
        "defaults": collections.defaultdict(list, {"present": [1]}),
        "counter": collections.Counter("aab"),
        "ordered": collections.OrderedDict([("one", 1), ("two", 2)]),
        "missing_dict": CountingDefault(a=1),
        "gen": _gen(),
        "tb": _traceback(),
        "fn": target_function,
        "settings": {"password": "pw", "user": "admin", "token": "t0k"},
        "secret_key": "s3cr3t",
        "big": BIG,
        "codecs": codecs,
        "operator": operator,
        "sys": sys,
        "deep": DEEP,
        # issue 11: time, subclasses, str-subclass keys
        "haystack": HAYSTACK,
        "bhaystack": HAYSTACK.encode(),
        "huge_range": range(10 ** 18),
        "colliding": COLLIDING,
        "long_ys": LONG_YS,
        "odd_y": ODD_Y,
        "fielded": {FieldName("db_password"): "hunter2", FieldName("user"): "admin"},
        "enum_keyed": {Field.PASSWORD: "hunter2", Field.USER: "admin"},
        "trap_bytes": TrapBytes(b"abc"),
        "trap_bytearray": TrapBytearray(b"abc"),
        "trap_slice": slice(canary, None),
        "report": report,
    }
    # what a target would have as builtins (absent under python -S): calling
    # them must be refused either way
    for name in ("exit", "quit", "help"):
        scope[name] = builtins.__dict__.get(name, sys.exit)
    del CANARY[:]         # building canary_keys hashed and compared the canary
    STATE.clear()
    STATE.update(scope)
    return scope


def fingerprint() -> dict:
    """Everything a query could have changed, as plain data (no target hooks run)."""
    s = STATE
    return {
        "canary": list(CANARY),
        "config": sorted((k, repr(v)) for k, v in s["config"].__dict__.items()),
        "config_class": sorted(Config.__dict__),
        "cache": repr(s["cache"]._data),
        "orders": repr(s["orders"]),
        "registry": repr(s["registry"]),
        "queue": repr(list(s["queue"].queue)),
        "defaults": repr(sorted(dict.items(s["defaults"]))),
        "counter": repr(sorted(dict.items(s["counter"]))),
        "missing_dict": repr(sorted(dict.items(s["missing_dict"]))),
        "settings": repr(s["settings"]),
        "workers": [(w.name, w.alive) for w in s["workers"]],
        "big": len(s["big"]),
        "modules": sorted(k for k in sys.modules if not k.startswith("_inspector")),
        "builtins": sorted(builtins.__dict__),
        "gen_frame_lasti": s["gen"].gi_frame.f_lasti if s["gen"].gi_frame else None,
        "fielded": sorted((str.__str__(k), v) for k, v in dict.items(s["fielded"])),
        "trap_bytes": bytes.hex(s["trap_bytes"]) + bytearray.hex(s["trap_bytearray"]),
        "report": sorted(s["report"].__dict__),
    }


# --- the legitimate queries (issue 3), with their values ------------------------
LEGIT = [
    ("cache._data", ("ok", {"a": [1, 2, 3], "b": [4], "c": []})),
    ("len(queue.queue)", ("ok", 3)),
    ("config.timeout * 2", ("ok", 60)),
    ('orders[0]["id"]', ("ok", 1)),
    ("orders[-3:]", ("ok", [{"id": 2, "qty": 5, "sku": "B"}, {"id": 3, "qty": 1, "sku": "A"},
                            {"id": 4, "qty": 7, "sku": "C"}])),
    ("sorted(registry.keys())[:10]", ("ok", ["alpha", "mid", "zeta"])),
    ("[t.name for t in workers if t.alive]", ("ok", ["w1", "w3"])),
    ("{k: len(v) for k, v in groups.items()}", ("ok", {"a": 2, "b": 1, "c": 0})),
    ('sum(o["qty"] for o in orders)', ("ok", 15)),
    ("max(sizes)", ("ok", 9)),
    ('"abc" in names', ("ok", True)),
    ("a if flag else b", ("ok", 1)),
    ('f"{host}:{port}"', ("ok", "example.org:8080")),
    ('name.startswith("x")', ("ok", True)),
    ("type(obj).__name__", ("ok", "Config")),
    ("isinstance(x, dict)", ("ok", True)),
    ("not done and retries > 3", ("ok", True)),
    # more everyday queries
    ("min(sizes)", ("ok", 2)),
    ("sorted(sizes, reverse=True)", ("ok", [9, 7, 3, 2])),
    ("sorted(names, key=len)", ("ok", ["abc", "def", "xyz"])),
    ("any(w.alive for w in workers)", ("ok", True)),
    ("all(w.alive for w in workers)", ("ok", False)),
    ("len([o for o in orders if o['sku'] == 'A'])", ("ok", 2)),
    ("{o['sku'] for o in orders}", ("ok", {"A", "B", "C"})),
    ("round(sum(sizes) / len(sizes), 2)", ("ok", 5.25)),
    ("list(enumerate(names))[1]", ("ok", (1, "def"))),
    ("dict(zip(names, sizes))", ("ok", {"abc": 3, "def": 9, "xyz": 2})),
    ("list(range(3))", ("ok", [0, 1, 2])),
    ("list(reversed(sizes))", ("ok", [7, 2, 9, 3])),
    ("registry.get('mid')", ("ok", 3)),
    ("registry.get('nope', -1)", ("ok", -1)),
    ("'-'.join(names)", ("ok", "abc-def-xyz")),
    ("host.split('.')", ("ok", ["example", "org"])),
    ("name.upper()[:3]", ("ok", "XAV")),
    ("f'{config.timeout:>5}|{3.14159:.2f}'", ("ok", "   30|3.14")),
    ("config.retries[1:]", ("ok", [2, 3])),
    ("Config.DEFAULT_TIMEOUT", ("ok", 10)),
    ("type(config).__module__", ("kind", "str")),
    ("slotted.x", ("ok", 1)),
    ("slotted.y", ("ok", "two")),
    ("defaults['present']", ("ok", [1])),
    ("counter['a']", ("ok", 2)),
    ("ordered['two']", ("ok", 2)),
    ("len(big)", ("ok", 300000)),
    ("big[-1]", ("ok", 299999)),
    ("'zeta' in registry", ("ok", True)),
    ("isinstance(canary, Canary)", ("ok", True)),
    ("type(canary) is Canary", ("ok", True)),
    ("canary.label", ("ok", "canary")),
    ("vars(slotted)", ("ok", {"x": 1, "y": "two"})),
    ("getattr_static(config, 'timeout')", ("ok", 30)),
    ("getattr_static(config, 'nope', 0)", ("ok", 0)),
    ("10 ** 100 > 0", ("ok", True)),
    ("divmod(17, 5)", ("ok", (3, 2))),
    ("hex(255)", ("ok", "0xff")),
    ("str(3) + str([1, 'a'])", ("ok", "3[1, 'a']")),
    ("repr('q')", ("ok", "'q'")),
    ("int('42') + float('0.5')", ("ok", 42.5)),
    ("[x * 2 for x in sizes if x > 2]", ("ok", [6, 18, 14])),
    ("[(i, j) for i in range(2) for j in range(2)]", ("ok", [(0, 0), (0, 1), (1, 0), (1, 1)])),
    ("{**registry, 'new': 0}['new']", ("ok", 0)),
    ("[*sizes, 1][-1]", ("ok", 1)),
    ("len(settings)", ("ok", 3)),
    ("settings['user']", ("ok", "admin")),
    ("sorted(settings)", ("ok", ["password", "token", "user"])),
    ("b'ab'.hex()", ("ok", "6162")),
    ("'Ünï'.encode('utf-8')", ("ok", "Ünï".encode())),
    ("config.url", "denied"),                 # one rule: a refusal, also at the top
    ("report.total", ("ok", 7)),              # a computed cached_property
    ("report.alias", ("ok", 7)),              # the same, stored under its attrname
    ("report.total + 1", ("ok", 8)),
    ("config.url", ("ok", "postgres://db.internal:5432"), {"allow_properties": True}),
    ("config.password", ("kind", "redacted")),
    ("config.password", ("ok", "hunter2"), {"redact": False}),
    ("settings['token']", ("kind", "redacted")),
    ("secret_key", ("kind", "redacted")),
    ("config", ("kind", "object")),
    ("fn", ("kind", "opaque")),
    ("codecs", ("kind", "opaque")),
    ("queue.queue", ("kind", "seq")),
    ("defaults", ("kind", "map")),
    ("１ + 1", "denied"),        # non-ASCII outside strings: refused before parsing
    ("1 +", "usage"),           # a syntax error: a malformed argument (exit 2)
    ("undefined_name", "eval"),
    ("registry['nope']", "eval"),
    ("defaults['absent']", "eval"),        # KeyError: a defaultdict lookup never inserts
    ("missing_dict['absent']", "eval"),    # never calls __missing__
    ("1 / 0", "eval"),
    ("slotted.unset", "eval"),
    ("canary.nothing", "eval"),            # __getattr__ is not run
]

# --- every attack: refused (denied/budget), and nothing may change ---------------
ATTACKS = [
    # statements and forbidden syntax
    ("import os", "denied"),
    ("x = 1", "denied"),
    ("del registry['zeta']", "denied"),
    ("global x", "denied"),
    ("lambda: 0", "denied"),
    ("(lambda: 0)()", "denied"),
    ("[y := 1 for _ in (1,)]", "denied"),
    ("(yield)", "denied"),
    ("await gen", "denied"),
    ("[x async for x in gen]", "denied"),
    # imports, builtins, escapes through names
    ("__import__('os')", "denied"),
    ("__builtins__", "denied"),
    ("__builtins__['open']", "denied"),
    ("codecs.decode('bcra', 'rot13')", "denied"),
    ("codecs.lookup('rot13')", "denied"),
    ("'bcra'.encode('rot13')", "denied"),
    ("b'bcra'.decode('rot_13')", "denied"),
    ("eval('1')", "denied"),
    ("exec('1')", "denied"),
    ("compile('1', '', 'eval')", "denied"),
    ("open('/etc/passwd')", "denied"),
    ("globals()", "denied"),
    ("locals()", "denied"),
    ("vars()", "eval"),
    ("breakpoint()", "denied"),
    ("exit()", "denied"),
    ("quit()", "denied"),
    ("help()", "denied"),
    ("input()", "denied"),
    ("print(*[1])", "denied"),
    ("setattr(config, 'timeout', 1)", "denied"),
    ("delattr(config, 'timeout')", "denied"),
    ("getattr(config, 'timeout')", "denied"),
    ("getattr(config, '__cl' + 'ass__')", "denied"),
    ("hasattr(canary, 'x')", "denied"),
    ("sys.modules['os'].system('true')", "denied"),
    ("sys._getframe()", "denied"),
    ("sys.exit()", "denied"),
    ("len.__self__", "denied"),
    ("len.__self__.open", "denied"),
    ("[].append.__reduce__()", "denied"),
    ("[].append.__reduce_ex__(2)", "denied"),
    ("operator.attrgetter('__class__')(1)", "denied"),
    ("operator.methodcaller('clear')(registry)", "denied"),
    ("type('X', (), {})", "denied"),
    ("type(config)()", "denied"),
    ("object.__setattr__(config, 'timeout', 1)", "denied"),
    ("object.__getattribute__(config, 'url')", "denied"),
    ("config.__setattr__('timeout', 1)", "denied"),
    # class hierarchy walks
    ("().__class__.__bases__[0].__subclasses__()", "denied"),
    ("().__class__.__base__", "denied"),
    ("().__class__.__mro__", "denied"),
    ("type(()).mro()", "denied"),
    ("object.__subclasses__()", "denied"),
    # NFKC: full-width letters would normalise to the same names; any non-ASCII
    # identifier is refused before parsing (normalising imports unicodedata)
    ("().__class__.__\uff42\uff41\uff53\uff45\uff53__", "denied"),
    ("fn.__\uff47\uff4c\uff4f\uff42\uff41\uff4c\uff53__", "denied"),
    ("\uff46\uff4e.__\uff43\uff4f\uff44\uff45__", "denied"),
    ("\uff47\uff45\uff54\uff41\uff54\uff54\uff52(config, 'timeout')", "denied"),
    ("config.__\uff43\uff4c\uff41\uff53\uff53__", "denied"),   # would import unicodedata
    ("'\\N{BULLET}'", "denied"),
    ("'\\d'", "denied"),
    ("1if 1 else 2", "denied"),
    ("'\u00dcn' + f'\u00b0{a}'", ("ok", "\u00dcn\u00b01")),
    # function / code / frame / generator / traceback internals
    ("fn.__code__", "denied"),
    ("fn.__globals__", "denied"),
    ("fn.__globals__['CANARY']", "denied"),
    ("fn.__closure__", "denied"),
    ("fn.__defaults__", "denied"),
    ("config.__init__.__globals__", "denied"),
    ("Config.__init__", "denied"),
    ("fn('x')", "denied"),
    ("canary.method()", "denied"),
    ("canary()", "denied"),
    ("gen.gi_frame", "denied"),
    ("gen.gi_frame.f_globals", "denied"),
    ("gen.gi_code", "denied"),
    ("tb.tb_frame", "denied"),
    ("tb.tb_frame.f_back.f_globals", "denied"),
    ("tb.tb_next", "denied"),
    ("next(gen)", "denied"),
    ("[x for x in gen]", "denied"),
    ("list(gen)", "denied"),
    ("sum(gen)", "denied"),
    # str.format and friends read attributes named in strings
    ("'{0.__class__.__bases__}'.format(1)", "denied"),
    ("str.format('{0.__class__}', 1)", "denied"),
    ("'{x.__class__}'.format_map({'x': 1})", "denied"),
    ("format(canary, '')", "denied"),
    ("'%s' % (canary,)", "denied"),
    ("'%(x)s' % {'x': 1}", "denied"),
    # mutation of target containers and objects
    ("orders.append(1)", "denied"),
    ("orders.pop()", "denied"),
    ("orders.clear()", "denied"),
    ("orders.sort()", "denied"),
    ("registry.update({'x': 1})", "denied"),
    ("registry.setdefault('x', 1)", "denied"),
    ("registry.pop('zeta')", "denied"),
    ("registry.popitem()", "denied"),
    ("registry.clear()", "denied"),
    ("defaults.setdefault('x', [])", "denied"),
    ("queue.put(1)", "denied"),
    ("queue.get()", "denied"),
    ("queue.queue.append(1)", "denied"),
    ("queue.queue.popleft()", "denied"),
    ("vars(config).update({'timeout': 1})", "denied"),
    ("config.__dict__.clear()", "denied"),
    ("config.__dict__.update(timeout=1)", "denied"),
    ("dict.update(registry, x=1)", "denied"),
    ("list.append(orders, 1)", "denied"),
    ("cache._data['a'].append(9)", "denied"),
    # user-code triggers on the canary: each refused or statically answered
    ("canary == 1", "denied"),
    ("canary != 1", "denied"),
    ("canary < 1", "denied"),
    ("1 in canaries", "denied"),
    ("canary in canaries", "denied"),
    ("canary in [1, 2]", "denied"),
    ("1 in canary", "denied"),
    ("canary_keys[42]", "denied"),
    ("42 in canary_keys", "denied"),
    ("canary_keys.get(42)", "denied"),
    ("{canary: 1}", "denied"),
    ("{canary}", "denied"),
    ("hash(canary)", "denied"),
    ("len(canary)", "denied"),
    ("list(canary)", "denied"),
    ("[x for x in canary]", "denied"),
    ("bool(canary)", "denied"),
    ("not canary", "denied"),
    ("canary and 1", "denied"),
    ("1 if canary else 2", "denied"),
    ("[1 for _ in [1] if canary]", "denied"),
    ("f'{canary}'", "denied"),
    ("f'{canary!r}'", "denied"),
    ("str(canary)", "denied"),
    ("repr(canary)", "denied"),
    ("[1, 2][canary]", "denied"),
    ("[1, 2][canary:]", "denied"),
    ("canary[0]", "denied"),
    ("canary + 1", "denied"),
    ("-canary", "denied"),
    ("sorted(canaries)", "denied"),
    ("max(canaries)", "denied"),
    ("min([canary, canary])", "denied"),
    ("sum(canaries)", "denied"),
    ("any(canaries)", "denied"),
    ("set(canaries)", "denied"),
    ("canaries.index(1)", "denied"),
    ("canaries.count(canary)", "denied"),
    ("int(canary)", "denied"),
    ("range(canary)", "denied"),
    ("Canary in [int]", "denied"),
    ("{Canary: 1}", "denied"),
    ("canary.prop", "denied"),
    ("report.pending", "denied"),             # not computed: never computed by a query
    ("[report.pending]", "denied"),
    ("getattr_static(report, 'pending')", "denied"),
    ("canary_keys", ("kind", "map")),           # rendering never touches the key's hooks
    ("canaries", ("kind", "seq")),
    ("canary.nothing", "eval"),
    ("canary.__class__", ("kind", "opaque")),
    ("isinstance(canary, dict)", ("ok", False)),
    ("type(canary).__name__", ("ok", "Canary")),
    ("Canary.__name__", ("ok", "Canary")),
    ("vars(canary)", ("ok", {"label": "canary"})),
    # secrets cannot be derived piece by piece
    ("config.password[::-1]", "denied"),
    ("config.password.startswith('h')", "denied"),
    ("config.password == 'hunter2'", "denied"),
    ("len(config.password)", "denied"),
    ("config.password is None", "denied"),
    ("f'{config.password}'", "denied"),
    ("str(config.password)", "denied"),
    ("'h' in config.password", "denied"),
    ("[c for c in config.password]", "denied"),
    ("type(config.password)", "denied"),
    ("config.api_key.encode('utf-8').hex()", "denied"),
    ("str(settings)", "denied"),
    ("settings == {}", "denied"),
    ("str(vars(config))", "denied"),
    ("str(list(settings.values()))", "denied"),
    ("str(dict(settings))", "denied"),
    ("getattr_static(config, 'pass' + 'word')[0]", "denied"),
    ("settings.get('password')[0]", "denied"),
    ("[v for k, v in settings.items() if k == 'password'][0][0]", "denied"),
    # cost bombs: refused up front or cut within budget
    ("10 ** 10 ** 10", "budget"),
    ("2 ** 100000", "budget"),
    ("1 << 10 ** 9", "budget"),
    ("(10 ** 4000) * (10 ** 4000) * (10 ** 4000) * (10 ** 4000) * (10 ** 4000) * "
     "(10 ** 4000)", "budget"),
    ("pow(3, 10 ** 5000, 7)", "budget"),
    ("'a' * 10 ** 10", "budget"),
    ("[0] * 10 ** 9", "budget"),
    ("'ab' * 600000", "budget"),
    ("range(10 ** 10)", "budget"),
    ("sorted(big)", "budget"),
    ("max(big)", "budget"),
    ("sum(range(10 ** 6))", "budget"),
    ("[[y for y in range(1000)] for x in range(1000)]", "budget"),
    ("[x for x in range(1000) for y in range(1000)]", "budget"),
    ("str(10 ** 5000)", "budget"),
    ("int('9' * 5000)", "budget"),
    ("f'{1:>100000}'", "budget"),
    ("f'{1.5:.100000f}'", "budget"),
    ("'x'.center(10 ** 9)", "budget"),
    ("('a' * 100000).replace('a', 'b' * 100)", "budget"),
    ("('\\t' * 100000).expandtabs(100)", "budget"),
    ("hash(deep)", "denied"),
    ("deep == deep", "budget"),
    ("str(deep)", "budget"),
    ("(" * 100 + "1" + ")" * 100, "budget"),
    ("[" * 40 + "]" * 40, "budget"),
    ("1" + "+1" * 2047, "budget"),
    ("-" * 1000 + "1", "budget"),
    ("not " * 300 + "1", "budget"),
    ("x" + ".y" * 1000, "budget"),
    ("(" * 100000, "budget"),
    ("1 if 1 else " * 200 + "1", "budget"),
    ("'" + "a" * 5000 + "'", "budget"),
    # issue 11 item 3: one C call priced before it starts (docs/DESIGN.md "Cost model")
    ("haystack.rfind('a' * 4000 + 'b' + 'a' * 4000)", "budget"),
    ("haystack.rindex('a' * 2000 + 'b')", "budget"),
    ("haystack.rpartition('a' * 2000 + 'b')", "budget"),
    ("haystack.rsplit('a' * 2000 + 'b')", "budget"),
    ("bhaystack.rfind(b'a' * 4000 + b'b')", "budget"),
    ("bhaystack.rsplit(b'a' * 4000 + b'b', 1)", "budget"),
    ("haystack.strip('b' * 100000 + 'a')", "budget"),
    ("bhaystack.lstrip(b'b' * 100000 + b'a')", "budget"),
    ("huge_range.count(0.5)", "budget"),
    ("0.5 in huge_range", "budget"),
    ("huge_range.index(1.5)", "budget"),
    ("len(set(colliding))", "budget"),
    ("len(frozenset(colliding))", "budget"),
    ("len({k: 1 for k in colliding})", "budget"),
    ("len({k for k in colliding})", "budget"),
    ("len(dict(zip(colliding, colliding)))", "budget"),
    ("len(set(colliding[:100]) | set(colliding[100:]))", "budget"),
    ("[k for k in colliding] == list(colliding)", ("ok", True)),
    ("sorted(long_ys)[0][:1]", "budget"),
    ("odd_y in long_ys", "budget"),
    ("long_ys.count(odd_y)", "budget"),
    ("long_ys.index(odd_y)", "budget"),
    ("max(long_ys + [odd_y])[:1]", "budget"),
    ("long_ys == [odd_y] * 5000", "budget"),
    ("pow(3 ** 2000, 3 ** 2000, 7 ** 1400)", "budget"),
    # the same operations, priced and allowed when small
    ("haystack.rfind('ab')", ("ok", -1)),
    ("haystack[:100].rsplit('a', 2)[-1]", ("ok", "")),
    ("huge_range.count(5)", ("ok", 1)),
    ("10 ** 17 in huge_range", ("ok", True)),
    ("len(set(colliding[:100]))", ("ok", 100)),
    ("sorted(['b', 'a'] * 3)", ("ok", ["a", "a", "a", "b", "b", "b"])),
    ("pow(3, 10 ** 6, 10 ** 9 + 7)", ("ok", pow(3, 10 ** 6, 10 ** 9 + 7))),
    # item 4: builtins never measure or convert a subclass through its slots
    ("str(trap_bytes, 'utf-8')", "denied"),
    ("str(trap_bytearray, 'utf-8')", "denied"),
    ("str(trap_bytes, encoding='latin-1')", "denied"),
    ("names[trap_slice]", "denied"),
    ("haystack[trap_slice]", "denied"),
    ("len(trap_bytes)", ("ok", 3)),
    ("trap_bytes.decode()", "denied"),
    ("bytes.decode(trap_bytes)", "denied"),
    ("str(trap_bytes)", "denied"),
    ("bytes(trap_bytearray)", ("ok", b"abc")),
    ("list(trap_bytearray)", ("ok", [97, 98, 99])),
    ("trap_bytes in [b'abc']", "denied"),
    # item 5: a str-subclass key's value is redacted by its characters
    ("list(fielded.values())[0][0]", "denied"),
    ("[v for k, v in fielded.items()][0][0]", "denied"),
    ("list(enum_keyed.values())[0][0]", "denied"),
    ("[v for v in enum_keyed.values()][0] + 'x'", "denied"),
    ("list(fielded.values())[1]", ("ok", "admin")),
]

CASES = LEGIT + ATTACKS


def _plain(node):
    """A snapshot node back to plain data, for comparing results (no target code)."""
    kind = node["kind"]
    if kind == "scalar":
        return node.get("value", node["text"])
    if kind == "str" or kind == "bytes":
        return node["text"]
    if kind == "seq":
        return [_plain(n) for n in node["items"]]
    if kind == "set":
        return sorted((_plain(n) for n in node["items"]), key=repr)
    if kind == "map":
        return [[_plain(k), _plain(v)] for k, v in node["items"]]
    return {"<kind>": kind}


def expected_plain(value, snapshot):
    return _plain(snapshot(value))


def run_case(evaluate, Scope, EvalOptions, snapshot, scope_globals, case) -> dict:
    """Run one case; returns {query, outcome, value, snapshot_kind, message}."""
    query, _expected = case[0], case[1]
    options = case[2] if len(case) > 2 else {}
    try:
        result = evaluate(query, Scope(scope_globals), EvalOptions(**options))
    except Exception as exc:                       # AgentError subclasses
        return {"query": query, "outcome": getattr(exc, "kind", "crash:" + type(exc).__name__),
                "message": str(exc)[:300]}
    try:
        node = snapshot(result, redact=options.get("redact", True))
    except Exception as exc:
        return {"query": query, "outcome": "snapshot-crash:" + type(exc).__name__,
                "message": str(exc)[:300]}
    return {"query": query, "outcome": "ok", "value": _plain(node),
            "snapshot_kind": node["kind"]}


def matches(case, outcome: dict, snapshot) -> bool:
    expected = case[1]
    if isinstance(expected, str):
        return outcome["outcome"] == expected
    if outcome["outcome"] != "ok":
        return False
    if expected[0] == "kind":
        return outcome["snapshot_kind"] == expected[1]
    return outcome["value"] == expected_plain(expected[1], snapshot)
