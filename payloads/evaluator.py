"""The sandboxed, read-only query evaluator: an AST interpreter.

A query is a Python expression typed by an operator and evaluated *inside a
live production process*. The process must come out unchanged, alive and
responsive. This module is the security boundary; its rules (see
docs/DESIGN.md "Evaluator" and the tables in ``policy.py``):

1. Parse only. The source is parsed with ``compile(source, "<query>", "eval",
   PyCF_ONLY_AST)`` (exactly what ``ast.parse`` does, without importing the
   ``ast`` module, which the target may not have imported), after checking the
   raw text's length, bracket depth and operator-chain length (the parser
   itself can crash on deep input, CPython gh-126710). The tree is then
   interpreted here, dispatching on the node class's name through
   ``_HANDLERS`` (one per ``policy.ALLOWED_SYNTAX`` node): deny by default, an
   unknown node (a new Python's syntax, a statement, lambda, walrus, await,
   yield) is refused. Nothing is ever passed to eval/exec/compile beyond that
   parse. The text checks are in ``query_text.py``, parsing and the tree
   check in ``query_tree.py``.
2. Attribute reads are static (``snapshot.read_attribute``): no property,
   ``__getattr__``, ``__getattribute__`` or descriptor of a target class runs.
   A read that would run one is refused (exit 3), wherever it is in the
   query (``snapshot.not_run``); the framework descriptors of
   ``policy.STORED_DESCRIPTORS``/``PROPERTY_STORAGE`` are read from their
   storage instead (``static.stored_value``).
3. Calls go only to the allowlist (``policy.py``), checked on the actual callee
   object at every call, before its arguments are evaluated
   (``callables.resolve``; the implementations are in ``callables.py``).
4. Operators, comparisons, ``in``, truthiness, hashing, sorting, formatting are
   applied only to exact builtin data (``datasafety.as_data``), recursively for
   containers, so no target ``__eq__ __lt__ __hash__ __bool__ __len__
   __iter__ __format__ __repr__ __index__`` ever runs. Dict subscripts use the
   unbound C ``dict.get`` (never ``__missing__``; a defaultdict does not grow)
   after checking that no stored key could run an ``__eq__`` (``keys_safe``).
5. Budgets (``limits.py``) are checked before the costly operation, time
   included: every C call whose time is not linear in its output is priced
   by the cost model (``costs.py``, docs/DESIGN.md) before it starts.
6. Comprehension variables live in the evaluator (``env``), never in the
   target; the target's locals/globals dicts are only read.
"""
from __future__ import annotations

import builtins
import time

from . import callables, costs, policy, static
from .datasafety import as_data, build_dict, build_set, truth
from .errors import AgentError, BudgetError, DeniedError, QueryError, message_of
from .limits import Limits
from .operators import (
    binop,
    compare,
    dict_pairs,
    format_value,
    iterate,
    materialize,
    subscript,
    to_repr,
    to_str,
)
from .policy import ATOMIC_IDS, BOOL, COMPLEX, DICT, FLOAT, INT, LIST, STR, TUPLE
from .query_tree import field, node_name, parse
from .snapshot import LazyIter, read_attribute, redact_value, refuse_marker, type_name, type_name_of

_BUILTIN_SELF = policy.BUILTIN_FUNCTION.__dict__["__self__"].__get__
_BUILTIN_NAME = policy.BUILTIN_FUNCTION.__dict__["__name__"].__get__
_DICT_GET = DICT.__dict__["get"]
_DICT_ITER = DICT.__dict__["__iter__"]

MISSING = static.MISSING


def _genuine_clock():
    """A clock that is really C code (freezegun & co. replace time.monotonic)."""
    namespace = static.instance_dict(time) or {}
    for name in ("monotonic", "perf_counter", "time"):
        fn = _DICT_GET(namespace, name)
        if type(fn) is policy.BUILTIN_FUNCTION and _BUILTIN_NAME(fn) == name:
            owner = _BUILTIN_SELF(fn)
            if type(owner) is policy.MODULE and owner is time:
                return fn
    return None


_CLOCK = _genuine_clock()


# ---------------------------------------------------------------------------
# Public interface
# ---------------------------------------------------------------------------
class Scope:
    """What names resolve to: comprehension variables (held by the evaluator),
    then ``locals_`` (a plain dict copy of a frame's locals), then ``globals_``
    (a module's live dict: only read), then ``helpers`` (trusted callables of
    the agent, called with builtin scalar arguments only), then builtins."""

    __slots__ = ("globals", "locals", "helpers")

    def __init__(self, globals_: dict, locals_: dict | None = None,
                 helpers: dict | None = None) -> None:
        self.globals = globals_
        self.locals = locals_
        self.helpers = dict(helpers) if helpers else {}


class EvalOptions:
    """Per-query switches. ``allow_properties`` lets attribute reads run
    ``property`` getters (target code: the user opted in); ``redact=False``
    shows secret-looking names' values."""

    __slots__ = ("allow_properties", "redact", "limits")

    def __init__(self, *, allow_properties: bool = False, redact: bool = True,
                 limits: Limits | None = None) -> None:
        self.allow_properties = allow_properties is True
        self.redact = redact is not False
        self.limits = limits if limits is not None else Limits()


def evaluate(source: str, scope: Scope, options: EvalOptions | None = None) -> object:
    """Evaluate one query. Raises DeniedError, BudgetError or QueryError only."""
    if options is None:
        options = EvalOptions()
    try:
        ctx = _Ctx(scope, options)
        tree = parse(source, options.limits)
        result = _ev(ctx, field(tree, "body"), ())
        if type(result) is LazyIter:
            result = materialize(ctx, result, "the result", options.limits.max_result_items,
                                  "max_result_items")
        return result
    except AgentError:
        raise
    except RecursionError:
        raise BudgetError("max_ast_depth", "the query nests too deeply for the evaluator "
                          "(budget max_ast_depth)") from None
    except MemoryError:
        raise BudgetError("max_alloc", "the query ran out of memory (budget max_alloc)") \
            from None
    except Exception as exc:
        raise QueryError(type_name_of(exc), message_of(exc)) from None


# ---------------------------------------------------------------------------
# Per-query state
# ---------------------------------------------------------------------------
class _Ctx:
    __slots__ = ("scope", "limits", "allow_properties", "redact", "steps", "deadline",
                 "next_clock", "alloc", "ns_safe", "helper_ids")

    def __init__(self, scope: Scope, options: EvalOptions) -> None:
        if type(scope) is not Scope:
            raise QueryError("TypeError", "scope must be an evaluator.Scope")
        self.scope = scope
        self.limits = options.limits
        self.allow_properties = options.allow_properties
        self.redact = options.redact
        self.steps = 0
        self.deadline = (_CLOCK() + self.limits.max_seconds) if _CLOCK else None
        self.next_clock = 256
        self.alloc = 0
        self.ns_safe = {}
        self.helper_ids = {}
        for name, fn in scope.helpers.items():
            self.helper_ids[id(fn)] = (fn, name)

    def tick(self, n: int = 1) -> None:
        self.steps += n
        if self.steps > self.limits.max_steps:
            raise BudgetError("max_steps", "the query took more than %d steps (budget "
                              "max_steps)" % self.limits.max_steps)
        if self.steps >= self.next_clock:
            self.next_clock = self.steps + 256
            if self.deadline is not None and _CLOCK() > self.deadline:
                raise BudgetError("max_seconds", "the query ran longer than %gs (budget "
                                  "max_seconds)" % self.limits.max_seconds)

    def grow(self, n: int, what: str) -> None:
        """Account for building n items/chars (checked before building)."""
        lim = self.limits
        if n > lim.max_sequence:
            raise BudgetError("max_sequence", "%s would build %d items (budget max_sequence="
                              "%d)" % (what, n, lim.max_sequence))
        self.alloc += n
        if self.alloc > lim.max_alloc:
            raise BudgetError("max_alloc", "the query built more than %d items in total "
                              "(budget max_alloc)" % lim.max_alloc)
        self.tick(1 + n // 4096)

    def cost(self, units: int, what: str) -> None:
        """Account for one C call priced by costs.py, before it runs."""
        if units > self.limits.max_call_cost:
            raise BudgetError("max_call_cost", "%s refused: one C call priced at about %d "
                              "units (~%d ms holding the GIL; budget max_call_cost=%d, see "
                              "docs/DESIGN.md 'Cost model')"
                              % (what, units, units // 1000000, self.limits.max_call_cost))
        self.tick(1 + units // costs.UNITS_PER_STEP)

    def scan(self, n: int, what: str) -> None:
        """Account for one C-level pass over n items (holds the GIL)."""
        if n > self.limits.max_scan_items:
            raise BudgetError("max_scan_items", "%s would scan %d items in one call (budget "
                              "max_scan_items=%d)" % (what, n, self.limits.max_scan_items))
        self.tick(1 + n // 256)




# ---------------------------------------------------------------------------
# The interpreter
# ---------------------------------------------------------------------------
def _ev(ctx: _Ctx, node, env: tuple):
    ctx.tick()
    handler = _HANDLERS.get(node_name(node))
    if handler is None:
        raise DeniedError("syntax %r is not allowed here" % node_name(node))
    return handler(ctx, node, env)


def _h_expression(ctx, node, env):
    return _ev(ctx, field(node, "body"), env)


def _h_constant(ctx, node, env):
    value = field(node, "value")
    t = type(value)
    if id(t) in ATOMIC_IDS or t is policy.ELLIPSIS_TYPE:
        return value
    raise DeniedError("constant of type %s refused" % type_name(t))


def _h_name(ctx, node, env):
    name = field(node, "id")
    for frame in reversed(env):
        if name in frame:
            return frame[name]
    reason = policy.name_refusal(name)
    if reason is not None:
        raise DeniedError("name %r is not allowed: %s" % (name, reason))
    scope = ctx.scope
    for ns in (scope.locals, scope.globals):
        if ns is None:
            continue
        value = _ns_get(ctx, ns, name)
        if value is not MISSING:
            if ctx.redact and policy.looks_secret(name):
                return redact_value(name, value)
            return value
    value = _DICT_GET(scope.helpers, name, MISSING)
    if value is not MISSING:
        return value
    value = callables.EVAL_HELPERS.get(name, MISSING)
    if value is not MISSING:
        return value
    value = static.dict_get_str(builtins.__dict__, name)
    if value is not MISSING:
        return value
    raise QueryError("NameError", "name %r is not defined" % name)


def _ns_get(ctx, ns, name: str):
    if static.builtin_base(ns, (DICT,)) is None:
        raise QueryError("TypeError", "a scope namespace must be a dict")
    safe = ctx.ns_safe.get(id(ns))
    if safe is None:
        safe = static._all_str_keys(_DICT_ITER(ns))
        ctx.ns_safe[id(ns)] = safe
    if safe:
        return _DICT_GET(ns, name, MISSING)
    return static.dict_get_str(ns, name)


def _h_attribute(ctx, node, env):
    value = _ev(ctx, field(node, "value"), env)
    return read_attribute(value, field(node, "attr"), allow_properties=ctx.allow_properties,
                          redact=ctx.redact, limit=ctx.limits.max_snapshot_items * 10)


def _h_subscript(ctx, node, env):
    value = _ev(ctx, field(node, "value"), env)
    index = _index_value(ctx, field(node, "slice"), env)
    return subscript(ctx, value, index)


def _index_value(ctx, node, env):
    name = node_name(node)
    if name == "Index":                                   # 3.8
        return _ev(ctx, field(node, "value"), env)
    if name == "Slice":
        parts = []
        for part in ("lower", "upper", "step"):
            sub = field(node, part)
            v = None if sub is None else _ev(ctx, sub, env)
            if v is not None and type(v) is not INT and type(v) is not BOOL:
                refuse_marker(v, "slice")
                raise DeniedError("slice bound of type %s refused: only int or None (it "
                                  "would run its __index__)" % type_name_of(v))
            parts.append(v)
        return slice(parts[0], parts[1], parts[2])
    if name == "ExtSlice":                                # 3.8
        return tuple(_index_value(ctx, d, env) for d in field(node, "dims"))
    if name == "Tuple":
        return tuple(_index_value(ctx, e, env) for e in field(node, "elts"))
    return _ev(ctx, node, env)


def _h_tuple(ctx, node, env):
    return tuple(_elements(ctx, field(node, "elts"), env, "tuple literal"))


def _h_list(ctx, node, env):
    return _elements(ctx, field(node, "elts"), env, "list literal")


def _h_set(ctx, node, env):
    items = _elements(ctx, field(node, "elts"), env, "set literal")
    keys = [as_data(ctx, item, "set element", hashable=True) for item in items]
    return build_set(ctx, keys, "set literal")


def _elements(ctx, elts, env, what: str) -> list:
    out = []
    for elt in elts:
        if node_name(elt) == "Starred":
            value = _ev(ctx, field(elt, "value"), env)
            out.extend(materialize(ctx, value, "*-unpacking in a " + what,
                                    ctx.limits.max_sequence, "max_sequence"))
        else:
            out.append(_ev(ctx, elt, env))
    ctx.grow(len(out), what)
    return out


def _h_dict(ctx, node, env):
    pairs = []
    keys = field(node, "keys")
    values = field(node, "values")
    for knode, vnode in zip(keys, values):
        if knode is None:                                 # {**mapping}
            mapping = _ev(ctx, vnode, env)
            pairs.extend(dict_pairs(ctx, mapping, "**-unpacking in a dict literal"))
            continue
        k = as_data(ctx, _ev(ctx, knode, env), "dict key", hashable=True)
        pairs.append((k, _ev(ctx, vnode, env)))
    ctx.grow(len(pairs), "dict literal")
    return build_dict(ctx, pairs, "dict literal")


def _h_starred(ctx, node, env):
    raise DeniedError("*-unpacking is only allowed in calls and list/tuple/set literals")



# --- operators ---------------------------------------------------------------
def _h_binop(ctx, node, env):
    left = _ev(ctx, field(node, "left"), env)
    right = _ev(ctx, field(node, "right"), env)
    return binop(ctx, node_name(field(node, "op")), left, right)



def _h_unaryop(ctx, node, env):
    op = node_name(field(node, "op"))
    value = _ev(ctx, field(node, "operand"), env)
    if op == "Not":
        return not truth(ctx, value, "'not'")
    symbol = {"USub": "-", "UAdd": "+", "Invert": "~"}.get(op, op)
    what = "unary operator %r" % symbol
    refuse_marker(value, what)
    if id(type(value)) not in policy.NUMBER_IDS:
        raise DeniedError("%s refused on %s: operators apply to builtin values only"
                          % (what, type_name_of(value)))
    if op == "USub":
        return -value
    if op == "UAdd":
        return +value
    if type(value) is FLOAT or type(value) is COMPLEX:
        raise QueryError("TypeError", "bad operand type for unary ~: %r" % type_name_of(value))
    return ~value


def _h_boolop(ctx, node, env):
    is_and = node_name(field(node, "op")) == "And"
    value = None
    for sub in field(node, "values"):
        value = _ev(ctx, sub, env)
        true = truth(ctx, value, "'and'" if is_and else "'or'")
        if is_and and not true:
            return value
        if not is_and and true:
            return value
    return value


def _h_ifexp(ctx, node, env):
    if truth(ctx, _ev(ctx, field(node, "test"), env), "conditional expression"):
        return _ev(ctx, field(node, "body"), env)
    return _ev(ctx, field(node, "orelse"), env)


def _h_compare(ctx, node, env):
    left = _ev(ctx, field(node, "left"), env)
    for op_node, right_node in zip(field(node, "ops"), field(node, "comparators")):
        right = _ev(ctx, right_node, env)
        if not compare(ctx, node_name(op_node), left, right):
            return False
        left = right
    return True



# --- comprehensions ------------------------------------------------------------
def _bind(ctx, target, value, frame: dict) -> None:
    name = node_name(target)
    if name == "Name":
        frame[field(target, "id")] = value
        return
    if name == "Tuple" or name == "List":
        elts = field(target, "elts")
        refuse_marker(value, "unpacking")
        t = type(value)
        if t is TUPLE or t is LIST:
            items = value
        else:
            items = materialize(ctx, value, "unpacking", len(elts) + 1, "max_sequence")
        if len(items) != len(elts):
            raise QueryError("ValueError", "cannot unpack %d values into %d names"
                             % (len(items), len(elts)))
        for sub, item in zip(elts, items):
            _bind(ctx, sub, item, frame)
        return
    raise DeniedError("comprehension target %r refused: only names and tuples of names "
                      "(anything else would assign into the target)" % name)


def _comp_envs(ctx, generators: list, index: int, env: tuple, first_iter=MISSING):
    comp = generators[index]
    if field(comp, "is_async"):
        raise DeniedError("async comprehensions are refused")
    iterable = first_iter if first_iter is not MISSING else _ev(ctx, field(comp, "iter"), env)
    target = field(comp, "target")
    conditions = field(comp, "ifs")
    last = index + 1 == len(generators)
    for item in iterate(ctx, iterable, "comprehension"):
        ctx.tick()
        frame = {}
        _bind(ctx, target, item, frame)
        inner = env + (frame,)
        ok = True
        for cond in conditions:
            if not truth(ctx, _ev(ctx, cond, inner), "comprehension condition"):
                ok = False
                break
        if not ok:
            continue
        if last:
            yield inner
        else:
            for deeper in _comp_envs(ctx, generators, index + 1, inner):
                yield deeper


def _first_iter(ctx, node, env):
    # like Python, the first iterable is evaluated immediately
    generators = field(node, "generators")
    return generators, _ev(ctx, field(generators[0], "iter"), env)


def _h_listcomp(ctx, node, env):
    generators, first = _first_iter(ctx, node, env)
    elt = field(node, "elt")
    out = []
    for inner in _comp_envs(ctx, generators, 0, env, first):
        out.append(_ev(ctx, elt, inner))
        ctx.grow(1, "list comprehension")
    return out


def _h_setcomp(ctx, node, env):
    generators, first = _first_iter(ctx, node, env)
    elt = field(node, "elt")
    out = []
    for inner in _comp_envs(ctx, generators, 0, env, first):
        value = as_data(ctx, _ev(ctx, elt, inner), "set comprehension element", hashable=True)
        out.append(value)
        ctx.grow(1, "set comprehension")
    return build_set(ctx, out, "set comprehension")


def _h_dictcomp(ctx, node, env):
    generators, first = _first_iter(ctx, node, env)
    key_node, value_node = field(node, "key"), field(node, "value")
    out = []
    for inner in _comp_envs(ctx, generators, 0, env, first):
        k = as_data(ctx, _ev(ctx, key_node, inner), "dict comprehension key", hashable=True)
        out.append((k, _ev(ctx, value_node, inner)))
        ctx.grow(1, "dict comprehension")
    return build_dict(ctx, out, "dict comprehension")


def _h_genexp(ctx, node, env):
    generators, first = _first_iter(ctx, node, env)
    elt = field(node, "elt")

    def gen():
        for inner in _comp_envs(ctx, generators, 0, env, first):
            yield _ev(ctx, elt, inner)
    return LazyIter(gen(), "generator expression")


# --- f-strings -----------------------------------------------------------------
def _h_joinedstr(ctx, node, env):
    parts = []
    total = 0
    for value_node in field(node, "values"):
        if node_name(value_node) == "Constant":
            text = field(value_node, "value")
        else:
            text = _h_formattedvalue(ctx, value_node, env)
        total += len(text)
        ctx.grow(len(text), "f-string")
        parts.append(text)
    if total > ctx.limits.max_sequence:
        raise BudgetError("max_sequence", "f-string too long")
    return "".join(parts)


def _h_formattedvalue(ctx, node, env):
    value = _ev(ctx, field(node, "value"), env)
    conversion = field(node, "conversion")
    spec_node = field(node, "format_spec")
    spec = "" if spec_node is None else _ev(ctx, spec_node, env)
    if conversion == 115:        # !s
        value = to_str(ctx, value, "f-string !s")
    elif conversion == 114:      # !r
        value = to_repr(ctx, value, "f-string !r")
    elif conversion == 97:       # !a
        to_repr(ctx, value, "f-string !a")          # the checks and the size budget
        value = ascii(as_data(ctx, value, "f-string !a"))
    return format_value(ctx, value, spec, "f-string")



# --- calls ---------------------------------------------------------------------
def _callee_label(node) -> str:
    name = node_name(node)
    if name == "Name":
        return field(node, "id")
    if name == "Attribute":
        inner = _callee_label(field(node, "value"))
        return inner + "." + field(node, "attr")
    return "<%s>" % name.lower()


def _h_call(ctx, node, env):
    func = _ev(ctx, field(node, "func"), env)
    label = _callee_label(field(node, "func"))
    refuse_marker(func, "call of %r" % label)
    invoke = callables.resolve(ctx, func, label)           # decided before any argument
    args = []
    for arg in field(node, "args"):
        if node_name(arg) == "Starred":
            args.extend(materialize(ctx, _ev(ctx, field(arg, "value"), env),
                                     "*-arguments", ctx.limits.max_sequence, "max_sequence"))
        else:
            args.append(_ev(ctx, arg, env))
    kwargs = {}
    for kw in field(node, "keywords"):
        key = field(kw, "arg")
        value = _ev(ctx, field(kw, "value"), env)
        if key is None:
            for k, v in dict_pairs(ctx, value, "**-arguments"):
                if type(k) is not STR:
                    raise QueryError("TypeError", "keywords must be strings")
                kwargs[k] = v
        else:
            kwargs[key] = value
    return invoke(ctx, args, kwargs)


_HANDLERS = {
    "Expression": _h_expression,
    "Constant": _h_constant,
    "Name": _h_name,
    "Attribute": _h_attribute,
    "Subscript": _h_subscript,
    "Tuple": _h_tuple,
    "List": _h_list,
    "Set": _h_set,
    "Dict": _h_dict,
    "Starred": _h_starred,
    "BinOp": _h_binop,
    "UnaryOp": _h_unaryop,
    "BoolOp": _h_boolop,
    "IfExp": _h_ifexp,
    "Compare": _h_compare,
    "Call": _h_call,
    "ListComp": _h_listcomp,
    "SetComp": _h_setcomp,
    "DictComp": _h_dictcomp,
    "GeneratorExp": _h_genexp,
    "JoinedStr": _h_joinedstr,
    "FormattedValue": _h_formattedvalue,
}
if frozenset(_HANDLERS) != policy.ALLOWED_SYNTAX:
    raise ImportError("the interpreter's handlers and policy.ALLOWED_SYNTAX disagree")
