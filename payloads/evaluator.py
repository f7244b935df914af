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
   ``_HANDLERS``: deny by default, an unknown node (a new Python's syntax, a
   statement, lambda, walrus, await, yield) is refused. Nothing is ever passed
   to eval/exec/compile beyond that parse.
2. Attribute reads are static (``snapshot.read_attribute``): no property,
   ``__getattr__``, ``__getattribute__`` or descriptor of a target class runs.
3. Calls go only to the allowlist (``policy.py``), checked on the actual callee
   object at every call, before its arguments are evaluated.
4. Operators, comparisons, ``in``, truthiness, hashing, sorting, formatting are
   applied only to exact builtin data (``_plain``), recursively for
   containers, so no target ``__eq__ __lt__ __hash__ __bool__ __len__
   __iter__ __format__ __repr__ __index__`` ever runs. Dict subscripts use the
   unbound C ``dict.get`` (never ``__missing__``; a defaultdict does not grow)
   after checking that no stored key could run an ``__eq__`` (``_keys_safe``).
5. Budgets (``limits.py``) are checked before the costly operation.
6. Comprehension variables live in the evaluator (``env``), never in the
   target; the target's locals/globals dicts are only read.
"""
from __future__ import annotations

import builtins
import time

from . import policy, static
from .errors import AgentError, BudgetError, DeniedError, MalformedQueryError, QueryError
from .limits import Limits
from .policy import (
    ATOMIC_IDS,
    BOOL,
    BYTEARRAY,
    BYTES,
    COMPLEX,
    DICT,
    FLOAT,
    FROZENSET,
    INT,
    LIST,
    RANGE,
    SET,
    STR,
    TUPLE,
    TYPE,
)
from .snapshot import (
    DictView,
    LazyIter,
    attrs_copy,
    read_attribute,
    redact_value,
    refuse_marker,
    type_name,
    type_name_of,
)

PYCF_ONLY_AST = 0x400
MISSING = static.MISSING

_TYPE_NAME = TYPE.__dict__["__name__"].__get__
_BUILTIN_SELF = policy.BUILTIN_FUNCTION.__dict__["__self__"].__get__
_BUILTIN_NAME = policy.BUILTIN_FUNCTION.__dict__["__name__"].__get__
_MDESC_OBJCLASS = policy.METHOD_DESCRIPTOR.__dict__["__objclass__"].__get__
_MDESC_NAME = policy.METHOD_DESCRIPTOR.__dict__["__name__"].__get__
_METHOD_DESC_GET = policy.METHOD_DESCRIPTOR.__dict__["__get__"]
_GETSET_GET = policy.GETSET_DESCRIPTOR.__dict__["__get__"]
_INT_BITS = INT.__dict__["bit_length"]
_DICT_GET = DICT.__dict__["get"]
_DICT_ITEMS = DICT.__dict__["items"]
_DICT_ITER = DICT.__dict__["__iter__"]
_DICT_VALUES = DICT.__dict__["values"]
_DICT_LEN = DICT.__dict__["__len__"]
_DICT_CONTAINS = DICT.__dict__["__contains__"]
_LIST_ID, _TUPLE_ID, _DICT_ID, _SET_ID, _FROZENSET_ID = map(id, (LIST, TUPLE, DICT, SET,
                                                              FROZENSET))
_CONTAINER_IDS = frozenset((_LIST_ID, _TUPLE_ID, _DICT_ID, _SET_ID, _FROZENSET_ID))
_PLAIN_IDS = ATOMIC_IDS | _CONTAINER_IDS
_HASHABLE_IDS = ATOMIC_IDS | frozenset((_TUPLE_ID, _FROZENSET_ID))
_SEQ_BASES = (LIST, TUPLE, STR, BYTES, BYTEARRAY, RANGE)
# `__eq__` implementations that compare by C code only: a stored dict key
# whose type resolves `__eq__` to one of these cannot run target code.
_C_EQ_IDS = frozenset(id(static.class_dict_get(t, "__eq__"))
                      for t in (policy.OBJECT, INT, STR, BYTES, FLOAT, COMPLEX))


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
        result = _ev(ctx, _field(tree, "body"), ())
        if type(result) is LazyIter:
            result = _materialize(ctx, result, "the result", options.limits.max_result_items,
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
        raise QueryError(type_name_of(exc), _exc_message(exc)) from None


def _exc_message(exc) -> str:
    """The message of an exception, without calling its __str__ (may be target code)."""
    try:
        args = BaseException.__dict__["args"].__get__(exc)
    except Exception:
        return ""
    if type(args) is TUPLE and len(args) >= 1 and type(args[0]) is STR:
        return args[0][:300]
    return ""


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

    def scan(self, n: int, what: str) -> None:
        """Account for one C-level pass over n items (holds the GIL)."""
        if n > self.limits.max_scan_items:
            raise BudgetError("max_scan_items", "%s would scan %d items in one call (budget "
                              "max_scan_items=%d)" % (what, n, self.limits.max_scan_items))
        self.tick(1 + n // 256)


# ---------------------------------------------------------------------------
# Parsing: text checks, parse, tree checks
# ---------------------------------------------------------------------------
def _probe_nested_quotes() -> bool:
    # feature detection: PEP 701 (3.12) lets f-string expressions reuse the quote
    try:
        compile('f"{"a"}"', "<probe>", "eval", PYCF_ONLY_AST)
        return True
    except SyntaxError:
        return False


_FSTRING_NESTS_QUOTES = _probe_nested_quotes()
_PREFIX_CHARS = frozenset("rRbBuUfF")
_KEYWORD_OPS = frozenset(["and", "or", "not", "in", "is", "if", "else", "for", "lambda",
                          "await", "yield", "async"])
_OPERATOR_CHARS = frozenset("+-*/%@&|^~<>=!.")


_VALID_ESCAPES = frozenset("\n\\'\"abfnrtv01234567xuU")
_KEYWORDS_AFTER_NUMBER = frozenset(["and", "or", "not", "in", "is", "if", "else", "for"])


def _refuse_text(reason: str):
    raise DeniedError("query text refused: " + reason)


def check_text(source, limits: Limits) -> None:
    """Refuse query text the parser must not see, BEFORE parsing it.

    Budgets: length, bracket depth and an estimate of the syntax tree's depth
    (operators, dots and keywords since the last comma, summed over the open
    brackets), skipping string literals. f-string contents are counted as code
    (their replacement fields are parsed too), and a closing bracket inside an
    f-string never lowers the depth below the f-string's start, so literal text
    cannot hide nesting. Over-counting is harmless; the tree is re-checked
    after parsing.

    Side effects of parsing itself are refused too: a non-ASCII identifier
    makes the parser import `unicodedata` (NFKC normalisation), so does a
    `\\N{...}` escape; an invalid escape sequence or a number glued to a
    keyword makes it print a SyntaxWarning on the target's stderr.
    """
    if type(source) is not STR:
        raise DeniedError("query of type %s refused: a query is a str" % type_name_of(source))
    n = len(source)
    if n > limits.max_query_chars:
        raise BudgetError("max_query_chars", "query of %d characters refused (budget "
                          "max_query_chars=%d)" % (n, limits.max_query_chars))
    if "\x00" in source:
        raise QueryError("SyntaxError", "the query contains a null character")
    if "\\N{" in source:
        _refuse_text("\\N{...} escapes make the parser import unicodedata into the target; "
                     "use \\u escapes")
    chain = [0]          # operator count per open bracket (one entry per level)
    floors = []          # bracket depth at which each open f-string started
    fstring = []         # (quote, triple, raw) of each open f-string
    i = 0
    while i < n:
        c = source[i]
        if c == "#" and not fstring:
            j = source.find("\n", i)
            j = n if j < 0 else j
            if "coding" in source[i:j]:
                _refuse_text("an encoding declaration in a comment")
            i = j
            continue
        if c > "\x7f" and (not fstring or len(chain) > floors[-1]):
            _refuse_text("non-ASCII character %r outside a string literal (normalising "
                         "identifiers imports unicodedata into the target)" % c)
        if c in _PREFIX_CHARS or c == "'" or c == '"':
            j = i
            while j < n and source[j] in _PREFIX_CHARS and j - i < 2:
                j += 1
            if j < n and (source[j] == "'" or source[j] == '"') and \
                    (j == i or not (i > 0 and (source[i - 1].isalnum() or source[i - 1] == "_"))):
                prefix = source[i:j].lower()
                quote = source[j]
                triple = source[j:j + 3] == quote * 3
                if fstring and quote == fstring[-1][0] and not _FSTRING_NESTS_QUOTES \
                        and not prefix:
                    # this quote ends the enclosing f-string (before PEP 701)
                    fstring.pop()
                    del floors[-1]
                    i = j + 1
                    continue
                start = j + (3 if triple else 1)
                if "f" in prefix:
                    fstring.append((quote, triple, "r" in prefix))
                    floors.append(len(chain))
                    i = start
                    continue
                i = _skip_string(source, start, quote, triple, "r" in prefix)
                continue
            if j > i:                 # an identifier starting with r/b/u/f
                k = i
                while k < n and (source[k].isalnum() or source[k] == "_"):
                    k += 1
                _check_identifier(source[i:k])
                i = k
                continue
        if fstring and c == fstring[-1][0]:
            q, t3, raw = fstring[-1]
            if not t3 or source[i:i + 3] == q * 3:
                fstring.pop()
                del floors[-1]
                i += 3 if t3 else 1
                continue
        if fstring and c == "\\":
            if not fstring[-1][2] and source[i + 1:i + 2] not in _VALID_ESCAPES:
                _refuse_text("invalid escape sequence %r (the parser would print a "
                             "warning into the target)" % source[i:i + 2])
            i += 2
            continue
        if c == "(" or c == "[" or c == "{":
            chain.append(0)
            if len(chain) - 1 > limits.max_nesting:
                raise BudgetError("max_nesting", "query nests brackets deeper than %d (budget "
                                  "max_nesting)" % limits.max_nesting)
        elif c == ")" or c == "]" or c == "}":
            floor = floors[-1] if floors else 1
            if len(chain) > max(floor, 1):
                chain.pop()
        elif c == "," or c == ":":
            chain[-1] = 0
        elif c in _OPERATOR_CHARS:
            chain[-1] += 1
        elif c.isalpha() or c == "_":
            k = i
            while k < n and (source[k].isalnum() or source[k] == "_"):
                k += 1
            word = source[i:k]
            _check_identifier(word)
            if word in _KEYWORD_OPS:
                chain[-1] += 1
                if word in _KEYWORDS_AFTER_NUMBER and i > 0 and source[i - 1].isdigit():
                    _refuse_text("a number glued to %r (the parser would print a warning "
                                 "into the target); add a space" % word)
            i = k
            continue
        if sum(chain) + len(chain) > limits.max_chain:
            raise BudgetError("max_chain", "query has an operator chain or nesting of more "
                              "than %d levels (budget max_chain)" % limits.max_chain)
        i += 1


def _check_identifier(word: str) -> None:
    if not word.isascii():
        _refuse_text("non-ASCII identifier %r (normalising it would import unicodedata "
                     "into the target)" % word)


def _skip_string(source: str, i: int, quote: str, triple: bool, raw: bool) -> int:
    n = len(source)
    end = quote * 3 if triple else quote
    while i < n:
        c = source[i]
        if c == "\\":
            if not raw and source[i + 1:i + 2] not in _VALID_ESCAPES:
                _refuse_text("invalid escape sequence %r (the parser would print a warning "
                             "into the target)" % source[i:i + 2])
            i += 2
            continue
        if source.startswith(end, i):
            return i + len(end)
        i += 1
    return n


_AST_BASE = static.mro(type(compile("0", "<probe>", "eval", PYCF_ONLY_AST)))[-2]


def _is_node(value) -> bool:
    return static.is_subclass(type(value), _AST_BASE)


# Per-class facts about the parser's node classes, read statically once.
# (The target could have patched attributes of ast classes; we never use
# normal attribute access on nodes.) id(cls) -> (cls, name, __dict__ getset)
_NODE_CLASSES = {}


def _node_class(node) -> tuple:
    cls = type(node)
    entry = _NODE_CLASSES.get(id(cls))
    if entry is not None and entry[0] is cls:
        return entry
    module = static.class_dict_get(cls, "__module__", None)
    if module != "ast" and module != "_ast":
        raise DeniedError("syntax node of type %s refused: not from the parser" % type_name(cls))
    desc, _ = static.find_in_mro(cls, "__dict__")
    if type(desc) is not policy.GETSET_DESCRIPTOR:
        raise DeniedError("syntax node class %s has no readable fields" % type_name(cls))
    entry = (cls, _TYPE_NAME(cls), desc)
    _NODE_CLASSES[id(cls)] = entry
    return entry


def _node_name(node) -> str:
    return _node_class(node)[1]


def _fields(node) -> dict:
    entry = _node_class(node)
    d = _GETSET_GET(entry[2], node, entry[0])
    if type(d) is not DICT:
        raise DeniedError("syntax node without fields refused")
    return d


def _field(node, name: str):
    return _DICT_GET(_fields(node), name)


_REFUSED_SYNTAX = {
    "Lambda": "lambda is refused: queries cannot define functions",
    "NamedExpr": "assignment expression ':=' is refused: queries cannot assign",
    "Await": "await is refused: queries cannot run coroutines",
    "Yield": "yield is refused: queries cannot define generators",
    "YieldFrom": "yield from is refused: queries cannot define generators",
    "Store": "assignment is refused: queries cannot assign",
    "Del": "del is refused: queries cannot delete",
}
# operator/context nodes that are data, not evaluated by themselves
_MARKER_NODES = frozenset([
    "Load", "Add", "Sub", "Mult", "Div", "FloorDiv", "Mod", "Pow", "LShift", "RShift",
    "BitOr", "BitXor", "BitAnd", "MatMult", "UAdd", "USub", "Not", "Invert", "And", "Or",
    "Eq", "NotEq", "Lt", "LtE", "Gt", "GtE", "Is", "IsNot", "In", "NotIn",
    "comprehension", "keyword", "Index", "Slice", "ExtSlice",
])


def parse(source, limits: Limits):
    """Check the text, parse it, check the tree; return the Expression node."""
    check_text(source, limits)
    try:
        # PyCF_ONLY_AST: the same call ast.parse makes. Nothing is compiled
        # to bytecode and nothing is executed.
        tree = compile(source, "<query>", "eval", PYCF_ONLY_AST)
    except SyntaxError as exc:
        _refuse_statement(source)
        where = " at column %d" % exc.offset if type(exc.offset) is int else ""
        raise MalformedQueryError(
            "malformed query: %s%s; a query is one Python expression, e.g. len(orders)"
            % (_exc_message(exc) or "invalid syntax", where)) from None
    except (ValueError, MemoryError, RecursionError) as exc:
        raise BudgetError("max_nesting", "the parser refused the query: %s: %s"
                          % (type_name_of(exc), _exc_message(exc))) from None
    _check_tree(tree, limits)
    return tree


def _refuse_statement(source: str) -> None:
    """If the text is a statement (import, assignment, del ...), say so (exit 3)."""
    try:
        module = compile(source, "<query>", "exec", PYCF_ONLY_AST)    # parse only
    except Exception:
        return
    body = _field(module, "body")
    if type(body) is LIST and body:
        raise DeniedError("statement %r is refused: a query is one expression (no import, "
                          "assignment, del, global ...)" % _node_name(body[0]))


def _check_tree(tree, limits: Limits) -> None:
    """Iteratively check depth, size and node kinds (deny by default)."""
    stack = [(tree, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > limits.max_ast_nodes:
            raise BudgetError("max_ast_nodes", "query has more than %d syntax nodes (budget "
                              "max_ast_nodes)" % limits.max_ast_nodes)
        if depth > limits.max_ast_depth:
            raise BudgetError("max_ast_depth", "query nests deeper than %d (budget "
                              "max_ast_depth)" % limits.max_ast_depth)
        name = _node_name(node)
        if name == "Store" and depth > 2:
            pass      # comprehension targets; checked when binding
        elif name in _REFUSED_SYNTAX:
            raise DeniedError(_REFUSED_SYNTAX[name])
        elif name not in _HANDLERS and name not in _MARKER_NODES and name != "Expression":
            raise DeniedError("syntax %r is not allowed: only expressions made of literals, "
                              "names, attributes, subscripts, operators, comparisons, calls "
                              "and comprehensions are" % name)
        for value in list(_fields(node).values()):
            if type(value) is LIST:
                for item in value:
                    if _is_node(item):
                        stack.append((item, depth + 1))
            elif _is_node(value):
                stack.append((value, depth + 1))


# ---------------------------------------------------------------------------
# The interpreter
# ---------------------------------------------------------------------------
def _ev(ctx: _Ctx, node, env: tuple):
    ctx.tick()
    handler = _HANDLERS.get(_node_name(node))
    if handler is None:
        raise DeniedError("syntax %r is not allowed here" % _node_name(node))
    return handler(ctx, node, env)


def _h_expression(ctx, node, env):
    return _ev(ctx, _field(node, "body"), env)


def _h_constant(ctx, node, env):
    value = _field(node, "value")
    t = type(value)
    if id(t) in ATOMIC_IDS or t is policy.ELLIPSIS_TYPE:
        return value
    raise DeniedError("constant of type %s refused" % type_name(t))


def _h_name(ctx, node, env):
    name = _field(node, "id")
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
    value = _EVAL_HELPERS.get(name, MISSING)
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
    value = _ev(ctx, _field(node, "value"), env)
    return read_attribute(value, _field(node, "attr"), allow_properties=ctx.allow_properties,
                          redact=ctx.redact, limit=ctx.limits.max_snapshot_items * 10)


def _h_subscript(ctx, node, env):
    value = _ev(ctx, _field(node, "value"), env)
    index = _index_value(ctx, _field(node, "slice"), env)
    return _subscript(ctx, value, index)


def _index_value(ctx, node, env):
    name = _node_name(node)
    if name == "Index":                                   # 3.8
        return _ev(ctx, _field(node, "value"), env)
    if name == "Slice":
        parts = []
        for part in ("lower", "upper", "step"):
            sub = _field(node, part)
            v = None if sub is None else _ev(ctx, sub, env)
            if v is not None and type(v) is not INT and type(v) is not BOOL:
                refuse_marker(v, "slice")
                raise DeniedError("slice bound of type %s refused: only int or None (it "
                                  "would run its __index__)" % type_name_of(v))
            parts.append(v)
        return slice(parts[0], parts[1], parts[2])
    if name == "ExtSlice":                                # 3.8
        return tuple(_index_value(ctx, d, env) for d in _field(node, "dims"))
    if name == "Tuple":
        return tuple(_index_value(ctx, e, env) for e in _field(node, "elts"))
    return _ev(ctx, node, env)


def _h_tuple(ctx, node, env):
    return tuple(_elements(ctx, _field(node, "elts"), env, "tuple literal"))


def _h_list(ctx, node, env):
    return _elements(ctx, _field(node, "elts"), env, "list literal")


def _h_set(ctx, node, env):
    items = _elements(ctx, _field(node, "elts"), env, "set literal")
    return set([_data(ctx, item, "set element", hashable=True) for item in items])


def _elements(ctx, elts, env, what: str) -> list:
    out = []
    for elt in elts:
        if _node_name(elt) == "Starred":
            value = _ev(ctx, _field(elt, "value"), env)
            out.extend(_materialize(ctx, value, "*-unpacking in a " + what,
                                    ctx.limits.max_sequence, "max_sequence"))
        else:
            out.append(_ev(ctx, elt, env))
    ctx.grow(len(out), what)
    return out


def _h_dict(ctx, node, env):
    out = {}
    keys = _field(node, "keys")
    values = _field(node, "values")
    for knode, vnode in zip(keys, values):
        if knode is None:                                 # {**mapping}
            mapping = _ev(ctx, vnode, env)
            for k, v in _dict_pairs(ctx, mapping, "**-unpacking in a dict literal"):
                out[k] = v
            continue
        k = _data(ctx, _ev(ctx, knode, env), "dict key", hashable=True)
        out[k] = _ev(ctx, vnode, env)
    ctx.grow(len(out), "dict literal")
    return out


def _h_starred(ctx, node, env):
    raise DeniedError("*-unpacking is only allowed in calls and list/tuple/set literals")


# --- operators ---------------------------------------------------------------
_BINOP_SYMBOLS = {
    "Add": "+", "Sub": "-", "Mult": "*", "Div": "/", "FloorDiv": "//", "Mod": "%",
    "Pow": "**", "LShift": "<<", "RShift": ">>", "BitOr": "|", "BitXor": "^",
    "BitAnd": "&", "MatMult": "@",
}


def _h_binop(ctx, node, env):
    left = _ev(ctx, _field(node, "left"), env)
    right = _ev(ctx, _field(node, "right"), env)
    return _binop(ctx, _node_name(_field(node, "op")), left, right)


def _binop(ctx, op: str, a, b):
    symbol = _BINOP_SYMBOLS.get(op, op)
    what = "operator %r" % symbol
    refuse_marker(a, what)
    refuse_marker(b, what)
    ta, tb = type(a), type(b)
    if id(ta) in policy.NUMBER_IDS and id(tb) in policy.NUMBER_IDS:
        return _arith(ctx, op, a, b, what)
    if op == "Add" and ta is tb and (ta is STR or ta is BYTES or ta is LIST or ta is TUPLE):
        ctx.grow(len(a) + len(b), what)
        return a + b
    if op == "Mult":
        seq, count = (a, b) if (tb is INT or tb is BOOL) else (b, a)
        ts = type(seq)
        if (ts is STR or ts is BYTES or ts is LIST or ts is TUPLE) and \
                (type(count) is INT or type(count) is BOOL):
            if _INT_BITS(count) > 64:
                raise BudgetError("max_sequence", "%s with a count of %d bits refused (budget "
                                  "max_sequence)" % (what, _INT_BITS(count)))
            ctx.grow(len(seq) * max(count, 0), what)
            return seq * count
    if op == "Mod" and (ta is STR or ta is BYTES):
        raise DeniedError("operator '%' formatting of str/bytes is refused: it calls str() "
                          "of its arguments and reads mappings; use an f-string")
    if (ta is SET or ta is FROZENSET) and (tb is SET or tb is FROZENSET) and \
            (op == "BitOr" or op == "BitAnd" or op == "Sub" or op == "BitXor"):
        a = _data(ctx, a, what)
        b = _data(ctx, b, what)
        ctx.grow(len(a) + len(b), what)
        if op == "BitOr":
            return a | b
        if op == "BitAnd":
            return a & b
        if op == "Sub":
            return a - b
        return a ^ b
    if op == "BitOr" and ta is DICT and tb is DICT:
        if not hasattr(DICT, "__or__"):
            raise QueryError("TypeError", "unsupported operand type(s) for |: 'dict' and "
                             "'dict' (dict union needs Python 3.9)")
        out = dict(_dict_pairs(ctx, a, what))
        out.update(_dict_pairs(ctx, b, what))
        ctx.grow(len(out), what)
        return out
    raise DeniedError("%s refused on %s and %s: operators apply to builtin values only "
                      "(it would run their methods)" % (what, type_name(ta), type_name(tb)))


def _int_operand(ctx, x, what: str) -> None:
    if (type(x) is INT) and _INT_BITS(x) > ctx.limits.max_int_bits:
        raise BudgetError("max_int_bits", "%s on an int of %d bits refused (budget "
                          "max_int_bits=%d)" % (what, _INT_BITS(x), ctx.limits.max_int_bits))


def _arith(ctx, op: str, a, b, what: str):
    _int_operand(ctx, a, what)
    _int_operand(ctx, b, what)
    lim = ctx.limits.max_int_bits
    ints = (type(a) is INT or type(a) is BOOL) and (type(b) is INT or type(b) is BOOL)
    if op == "Add":
        return a + b
    if op == "Sub":
        return a - b
    if op == "Mult":
        if ints and _INT_BITS(a) + _INT_BITS(b) > lim:
            raise BudgetError("max_int_bits", "%s would build an int of about %d bits (budget "
                              "max_int_bits=%d)" % (what, _INT_BITS(a) + _INT_BITS(b), lim))
        return a * b
    if op == "Div":
        return a / b
    if op == "FloorDiv":
        return a // b
    if op == "Mod":
        return a % b
    if op == "Pow":
        if ints and b > 0 and (a > 1 or a < -1):
            estimate = (_INT_BITS(a) - 1) * b
            if estimate > lim:
                raise BudgetError("max_int_bits", "%s would build an int of at least %d bits "
                                  "(budget max_int_bits=%d)" % (what, estimate, lim))
        elif type(b) is INT and _INT_BITS(b) > 64 and type(a) is not INT:
            pass       # float/complex ** huge int: C raises OverflowError quickly
        return a ** b
    if op == "LShift":
        if ints and a != 0 and b > 0 and _INT_BITS(a) + b > lim:
            raise BudgetError("max_int_bits", "%s would build an int of %d bits (budget "
                              "max_int_bits=%d)" % (what, _INT_BITS(a) + b, lim))
        return a << b
    if op == "RShift":
        return a >> b
    if op == "BitOr":
        return a | b
    if op == "BitAnd":
        return a & b
    if op == "BitXor":
        return a ^ b
    raise DeniedError("%s refused: no builtin number supports it" % what)


def _h_unaryop(ctx, node, env):
    op = _node_name(_field(node, "op"))
    value = _ev(ctx, _field(node, "operand"), env)
    if op == "Not":
        return not _truth(ctx, value, "'not'")
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
    is_and = _node_name(_field(node, "op")) == "And"
    value = None
    for sub in _field(node, "values"):
        value = _ev(ctx, sub, env)
        truth = _truth(ctx, value, "'and'" if is_and else "'or'")
        if is_and and not truth:
            return value
        if not is_and and truth:
            return value
    return value


def _h_ifexp(ctx, node, env):
    if _truth(ctx, _ev(ctx, _field(node, "test"), env), "conditional expression"):
        return _ev(ctx, _field(node, "body"), env)
    return _ev(ctx, _field(node, "orelse"), env)


_COMPARE_SYMBOLS = {"Eq": "==", "NotEq": "!=", "Lt": "<", "LtE": "<=", "Gt": ">",
                    "GtE": ">=", "Is": "is", "IsNot": "is not", "In": "in",
                    "NotIn": "not in"}


def _h_compare(ctx, node, env):
    left = _ev(ctx, _field(node, "left"), env)
    for op_node, right_node in zip(_field(node, "ops"), _field(node, "comparators")):
        right = _ev(ctx, right_node, env)
        if not _compare(ctx, _node_name(op_node), left, right):
            return False
        left = right
    return True


def _compare(ctx, op: str, a, b) -> bool:
    what = "comparison %r" % _COMPARE_SYMBOLS.get(op, op)
    refuse_marker(a, what)
    refuse_marker(b, what)
    if op == "Is":
        return a is b
    if op == "IsNot":
        return a is not b
    if op == "In":
        return _contains(ctx, b, a)
    if op == "NotIn":
        return not _contains(ctx, b, a)
    a = _data(ctx, a, what)
    b = _data(ctx, b, what)
    if op == "Eq":
        return a == b
    if op == "NotEq":
        return a != b
    if op == "Lt":
        return a < b
    if op == "LtE":
        return a <= b
    if op == "Gt":
        return a > b
    if op == "GtE":
        return a >= b
    raise DeniedError("%s is not supported" % what)


# --- the data rules ------------------------------------------------------------
def _data(ctx, x, what: str, hashable: bool = False, depth: int = 0):
    """x as builtin data all the way down, or refuse; returns a private copy.

    C code compares, hashes, sorts and prints only what this returns, so no
    target method can run: every object in it is an exact builtin scalar or an
    exact builtin container of such. Mutable containers are copied atomically
    (one C call) *before* being checked, so another thread cannot slip a target
    object in between the check and the use. Bounded depth and size; with
    redaction on, a dict holding a secret-looking key is refused (its value
    would be printed or compared whole).
    """
    t = type(x)
    tid = id(t)
    if tid in ATOMIC_IDS:
        return x
    if tid not in _CONTAINER_IDS:
        refuse_marker(x, what)
        if t is LazyIter or t is DictView:
            raise DeniedError("%s refused on a %s: materialise it first with list(...)"
                              % (what, x.label if t is LazyIter else repr(x)))
        raise DeniedError("%s refused: %s is not builtin data (it would run its methods: "
                          "__eq__, __hash__, __lt__, __repr__, __format__ ...)"
                          % (what, type_name(t)))
    if hashable and (t is LIST or t is DICT or t is SET):
        raise QueryError("TypeError", "unhashable type: %r" % type_name(t))
    if depth >= ctx.limits.max_value_depth:
        raise BudgetError("max_value_depth", "%s refused: value nests deeper than %d (budget "
                          "max_value_depth)" % (what, ctx.limits.max_value_depth))
    if t is DICT:
        pairs = list(_DICT_ITEMS(x))                 # atomic copy, compares nothing
        ctx.scan(2 * len(pairs), what)
        if not pairs:
            return {}
        keys, values = zip(*pairs)
        keys = _data_items(ctx, keys, what, True, depth, _HASHABLE_IDS)
        if ctx.redact and (id(STR) in set(map(id, map(type, keys)))
                           or id(BYTES) in set(map(id, map(type, keys)))):
            for k in keys:
                ctx.tick()
                if policy.looks_secret(k):
                    raise DeniedError("%s refused: the dict has the key %r, whose value is "
                                      "redacted because it looks like a secret; %s"
                                      % (what, k, policy.REDACTED_HINT))
        values = _data_items(ctx, values, what, False, depth, _PLAIN_IDS)
        return dict(zip(keys, values))
    if t is LIST:
        items = LIST.copy(x)                         # atomic copy
    elif t is SET:
        items = list(SET.__iter__(x))                # atomic copy
    else:
        items = x                                    # tuple, frozenset: immutable
    ctx.scan(len(items), what)
    allowed = _HASHABLE_IDS if (t is SET or t is FROZENSET or hashable) else _PLAIN_IDS
    checked = _data_items(ctx, items, what, t is SET or t is FROZENSET or hashable, depth,
                          allowed)
    if t is LIST:
        return list(checked)
    if t is TUPLE:
        return x if checked is items else tuple(checked)
    if t is SET:
        return set(checked)
    return x if checked is items else frozenset(checked)


def _data_items(ctx, items, what: str, hashable: bool, depth: int, allowed: frozenset):
    """Check a snapshot of items; returns it, or a new list if nested copies differ."""
    ids = set(map(id, map(type, items)))          # C-level pass: no target code
    if ids <= ATOMIC_IDS:
        return items
    for vid in ids:
        if vid not in allowed:
            _refuse_element(items, vid, what, hashable)
    out = []
    for item in items:                            # nested containers: recurse
        ctx.tick()
        if id(type(item)) in _CONTAINER_IDS:
            item = _data(ctx, item, what, hashable, depth + 1)
        out.append(item)
    return out


def _refuse_element(items, type_id: int, what: str, hashable: bool) -> None:
    for item in items:
        if id(type(item)) == type_id:
            refuse_marker(item, what)
            if hashable and id(type(item)) in _CONTAINER_IDS:
                raise QueryError("TypeError", "unhashable type: %r" % type_name_of(item))
            raise DeniedError("%s refused: it contains a %s, which is not builtin data (it "
                              "would run its methods)" % (what, type_name_of(item)))
    raise DeniedError("%s refused: the container changed while being checked" % what)


def _keys_safe(ctx, container, base, what: str) -> None:
    """Refuse if looking a key up in this dict/set could run target code.

    A C lookup compares the probe with every stored key of equal hash, calling
    the stored key's __eq__. Safe if every stored key's type compares by C code:
    builtin scalars, tuples/frozensets of builtin data, or classes whose __eq__
    is object's/int's/str's... (identity or C comparison: enums, IntEnums).
    """
    n = base.__dict__["__len__"](container)
    ctx.scan(n, what)
    keys = base.__dict__["__iter__"](container)
    ids = set(map(id, map(type, keys)))
    if ids <= policy.SAFE_KEY_IDS:
        return
    checked = set()
    for k in list(base.__dict__["__iter__"](container)):
        kid = id(type(k))
        if kid in policy.SAFE_KEY_IDS:
            continue
        ctx.tick()
        if kid == _TUPLE_ID or kid == _FROZENSET_ID:
            _data(ctx, k, what, hashable=True)
            continue
        if kid in checked:
            continue
        eq, _ = static.find_in_mro(type(k), "__eq__")
        if id(eq) not in _C_EQ_IDS:
            raise DeniedError("%s refused: the %s has keys of type %s, whose __eq__ would run "
                              "on a hash collision; iterate .items() and compare with 'is' "
                              "instead" % (what, type_name_of(container), type_name_of(k)))
        checked.add(kid)


def _truth(ctx, x, what: str) -> bool:
    """Truthiness of builtin values only (never a target __bool__/__len__)."""
    t = type(x)
    if id(t) in ATOMIC_IDS or id(t) in _CONTAINER_IDS or t is RANGE or t is BYTEARRAY:
        return bool(x)
    refuse_marker(x, "truth value in " + what)
    if t is DictView:
        return x.length() != 0
    if t is LazyIter:
        return True
    base = static.builtin_base(x, _SEQ_BASES + (DICT, SET, FROZENSET) + _deque_tuple())
    if base is not None and base is not STR and base is not BYTES:
        # a builtin container subclass: its storage's length, not its __len__
        return base.__dict__["__len__"](x) != 0
    raise DeniedError("truth value of %s refused in %s: it would run its __bool__/__len__"
                      % (type_name(t), what))


def _deque_tuple() -> tuple:
    d = policy.deque_type()
    return (d,) if d is not None else ()


def _contains(ctx, container, item) -> bool:
    what = "'in'"
    refuse_marker(container, what)
    refuse_marker(item, what)
    t = type(container)
    if t is DictView:
        if container.which == "keys":
            item = _data(ctx, item, what, hashable=True)
            _keys_safe(ctx, container.d, DICT, what)
            return _DICT_CONTAINS(container.d, item)
        return _contains(ctx, LazyIter(_view_iter(ctx, container), "dict view"), item)
    if t is LazyIter:
        item = _data(ctx, item, what)
        for x in container.gen:
            ctx.tick()
            if _data(ctx, x, what) == item:
                return True
        return False
    base = static.builtin_base(container, (STR, BYTES, BYTEARRAY, DICT, SET, FROZENSET, LIST,
                                           TUPLE, RANGE) + _deque_tuple())
    if base is STR:
        if type(item) is not STR:
            raise DeniedError("'in' on a str needs a str, not %s" % type_name_of(item))
        return STR.__contains__(container, item)
    if base is BYTES or base is BYTEARRAY:
        if type(item) is not BYTES and type(item) is not INT:
            raise DeniedError("'in' on bytes needs bytes or an int, not %s"
                              % type_name_of(item))
        return base.__contains__(container, item)
    if base is DICT or base is SET or base is FROZENSET:
        item = _data(ctx, item, what, hashable=True)
        _keys_safe(ctx, container, base, what)
        return base.__dict__["__contains__"](container, item)
    if base is RANGE:
        item = _data(ctx, item, what)
        return RANGE.__contains__(container, item)
    if base is not None:
        item = _data(ctx, item, what)
        return item in _exact_copy(ctx, container, base, what)
    raise DeniedError("'in' refused on %s: it would run its __contains__/__iter__"
                      % type_name(t))


def _exact_copy(ctx, container, base, what: str):
    """A checked private copy (list) of a builtin sequence or a subclass of one."""
    n = base.__dict__["__len__"](container)
    ctx.scan(n, what)
    copy = list(base.__dict__["__iter__"](container))   # atomic C copy
    return _data_items(ctx, copy, what, False, 0, _PLAIN_IDS)


def _subscript(ctx, value, index):
    what = "subscript"
    refuse_marker(value, what)
    refuse_marker(index, what)
    deque = policy.deque_type()
    base = static.builtin_base(value, _SEQ_BASES + (DICT,) + _deque_tuple())
    if base is DICT:
        index = _data(ctx, index, what, hashable=True)
        _keys_safe(ctx, value, DICT, what)
        # the unbound C dict.get: never __missing__ (a defaultdict does not grow,
        # a Counter's Python __missing__ does not run)
        result = _DICT_GET(value, index, MISSING)
        if result is MISSING:
            raise QueryError("KeyError", _short(index))
        if ctx.redact and policy.looks_secret(index):
            return redact_value(index, result)
        return result
    if base is not None:
        ti = type(index)
        if ti is policy.SLICE:
            if base is deque:
                raise QueryError("TypeError", "sequence index must be integer, not 'slice'")
            length = base.__dict__["__len__"](value)
            n = len(range(*index.indices(length)))
            ctx.grow(n, "slice")
            return base.__dict__["__getitem__"](value, index)
        if ti is not INT and ti is not BOOL:
            raise DeniedError("subscript of %s with %s refused: indices are ints or slices "
                              "(anything else would run its __index__)"
                              % (type_name_of(value), type_name(ti)))
        return base.__dict__["__getitem__"](value, index)
    if type(value) is DictView or type(value) is LazyIter:
        raise QueryError("TypeError", "%r object is not subscriptable; materialise it with "
                         "list(...)" % type_name_of(value))
    raise DeniedError("subscript of %s refused: it would run its __getitem__"
                      % type_name_of(value))


def _short(x) -> str:
    t = type(x)
    if id(t) in ATOMIC_IDS:
        if t is STR or t is BYTES:
            return repr(x[:80]) + ("..." if len(x) > 80 else "")
        if t is INT and _INT_BITS(x) > 256:
            return "<int of %d bits>" % _INT_BITS(x)
        return repr(x)
    return "<%s>" % type_name(t)


# --- iteration -------------------------------------------------------------------
def _iterate(ctx, value, what: str):
    """A Python iterator over a builtin container or an evaluator-built iterator.

    Target generators/iterators are never advanced; user iterables never have
    their __iter__ called (builtin subclasses are read through the base type).
    """
    refuse_marker(value, what)
    t = type(value)
    if t is LazyIter:
        return value.gen
    if t is DictView:
        return _view_iter(ctx, value)
    deque = policy.deque_type()
    base = static.builtin_base(value, _SEQ_BASES + (DICT, SET, FROZENSET) + _deque_tuple())
    if base is None:
        if t is policy.GENERATOR or t is policy.COROUTINE or t is policy.ASYNC_GENERATOR:
            raise DeniedError("iterating a %s of the target refused: it would advance it "
                              "(next() is never called on target iterators)" % type_name(t))
        raise DeniedError("%s refused: iterating %s would run its __iter__ (only builtin "
                          "containers are iterated)" % (what, type_name(t)))
    iterator = base.__dict__["__iter__"](value)
    if base is DICT or base is SET or base is FROZENSET or (deque is not None and base is deque):
        return _guarded(iterator, type_name(t))
    return iterator


def _guarded(iterator, tname: str):
    """Iterate a live dict/set/deque; a concurrent resize becomes a clean QueryError."""
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except RuntimeError:
            raise QueryError("RuntimeError", "the %s changed size while being read (another "
                             "thread is modifying it); retry the query" % tname) from None
        yield item


def _view_iter(ctx, view: DictView):
    for k, v in _guarded(iter(_DICT_ITEMS(view.d)), "dict"):
        yield view.transform(k, v)


def _materialize(ctx, value, what: str, limit: int, budget: str) -> list:
    """A new list of value's items, at most `limit` (BudgetError beyond)."""
    refuse_marker(value, what)
    t = type(value)
    if t is not LazyIter and t is not DictView:
        base = static.builtin_base(value, _SEQ_BASES + (DICT, SET, FROZENSET) + _deque_tuple())
        if base is not None:
            n = base.__dict__["__len__"](value)
            if n > limit:
                raise BudgetError(budget, "%s over %d items refused (budget %s=%d)"
                                  % (what, n, budget, limit))
            ctx.scan(n, what)
            ctx.grow(n, what)
            return list(base.__dict__["__iter__"](value))    # atomic C copy
    out = []
    for item in _iterate(ctx, value, what):
        ctx.tick()
        if len(out) >= limit:
            raise BudgetError(budget, "%s produced more than %d items (budget %s)"
                              % (what, limit, budget))
        out.append(item)
    ctx.grow(len(out), what)
    return out


def _dict_pairs(ctx, mapping, what: str) -> list:
    """[(key, value)] copied from a dict, with secret-looking keys' values redacted."""
    refuse_marker(mapping, what)
    if static.builtin_base(mapping, (DICT,)) is None:
        raise DeniedError("%s refused on %s: only dicts are unpacked (it would run its "
                          "keys()/__getitem__)" % (what, type_name_of(mapping)))
    _keys_safe(ctx, mapping, DICT, what)
    n = _DICT_LEN(mapping)
    ctx.scan(n, what)
    ctx.grow(n, what)
    pairs = list(_DICT_ITEMS(mapping))
    for k, _ in pairs:
        if id(type(k)) not in _HASHABLE_IDS:
            raise DeniedError("%s refused: key of type %s is not builtin data"
                              % (what, type_name_of(k)))
    if ctx.redact:
        out = []
        for k, v in pairs:
            ctx.tick()
            if policy.looks_secret(k):
                v = redact_value(k, v)
            out.append((k, v))
        return out
    return pairs


# --- comprehensions ------------------------------------------------------------
def _bind(ctx, target, value, frame: dict) -> None:
    name = _node_name(target)
    if name == "Name":
        frame[_field(target, "id")] = value
        return
    if name == "Tuple" or name == "List":
        elts = _field(target, "elts")
        refuse_marker(value, "unpacking")
        t = type(value)
        if t is TUPLE or t is LIST:
            items = value
        else:
            items = _materialize(ctx, value, "unpacking", len(elts) + 1, "max_sequence")
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
    if _field(comp, "is_async"):
        raise DeniedError("async comprehensions are refused")
    iterable = first_iter if first_iter is not MISSING else _ev(ctx, _field(comp, "iter"), env)
    target = _field(comp, "target")
    conditions = _field(comp, "ifs")
    last = index + 1 == len(generators)
    for item in _iterate(ctx, iterable, "comprehension"):
        ctx.tick()
        frame = {}
        _bind(ctx, target, item, frame)
        inner = env + (frame,)
        ok = True
        for cond in conditions:
            if not _truth(ctx, _ev(ctx, cond, inner), "comprehension condition"):
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
    generators = _field(node, "generators")
    return generators, _ev(ctx, _field(generators[0], "iter"), env)


def _h_listcomp(ctx, node, env):
    generators, first = _first_iter(ctx, node, env)
    elt = _field(node, "elt")
    out = []
    for inner in _comp_envs(ctx, generators, 0, env, first):
        out.append(_ev(ctx, elt, inner))
        ctx.grow(1, "list comprehension")
    return out


def _h_setcomp(ctx, node, env):
    generators, first = _first_iter(ctx, node, env)
    elt = _field(node, "elt")
    out = set()
    for inner in _comp_envs(ctx, generators, 0, env, first):
        value = _data(ctx, _ev(ctx, elt, inner), "set comprehension element", hashable=True)
        out.add(value)
        ctx.grow(1, "set comprehension")
    return out


def _h_dictcomp(ctx, node, env):
    generators, first = _first_iter(ctx, node, env)
    key_node, value_node = _field(node, "key"), _field(node, "value")
    out = {}
    for inner in _comp_envs(ctx, generators, 0, env, first):
        k = _data(ctx, _ev(ctx, key_node, inner), "dict comprehension key", hashable=True)
        out[k] = _ev(ctx, value_node, inner)
        ctx.grow(1, "dict comprehension")
    return out


def _h_genexp(ctx, node, env):
    generators, first = _first_iter(ctx, node, env)
    elt = _field(node, "elt")

    def gen():
        for inner in _comp_envs(ctx, generators, 0, env, first):
            yield _ev(ctx, elt, inner)
    return LazyIter(gen(), "generator expression")


# --- f-strings -----------------------------------------------------------------
def _h_joinedstr(ctx, node, env):
    parts = []
    total = 0
    for value_node in _field(node, "values"):
        if _node_name(value_node) == "Constant":
            text = _field(value_node, "value")
        else:
            text = _h_formattedvalue(ctx, value_node, env)
        total += len(text)
        ctx.grow(len(text), "f-string")
        parts.append(text)
    if total > ctx.limits.max_sequence:
        raise BudgetError("max_sequence", "f-string too long")
    return "".join(parts)


def _h_formattedvalue(ctx, node, env):
    value = _ev(ctx, _field(node, "value"), env)
    conversion = _field(node, "conversion")
    spec_node = _field(node, "format_spec")
    spec = "" if spec_node is None else _ev(ctx, spec_node, env)
    if conversion == 115:        # !s
        value = _to_str(ctx, value, "f-string !s")
    elif conversion == 114:      # !r
        value = _to_repr(ctx, value, "f-string !r")
    elif conversion == 97:       # !a
        _to_repr(ctx, value, "f-string !a")          # the checks and the size budget
        value = ascii(_data(ctx, value, "f-string !a"))
    return _format(ctx, value, spec, "f-string")


def _check_spec(ctx, spec, what: str) -> None:
    if type(spec) is not STR:
        raise DeniedError("%s format spec must be a str" % what)
    if len(spec) > 32 or not spec.isascii():
        raise DeniedError("%s format spec %r refused: specs are short ASCII" % (what, spec[:40]))
    number = ""
    for c in spec + " ":
        if "0" <= c <= "9":
            number += c
        else:
            if number and int(number) > ctx.limits.max_format_width:
                raise BudgetError("max_format_width", "%s width/precision %s refused (budget "
                                  "max_format_width=%d)" % (what, number,
                                                            ctx.limits.max_format_width))
            number = ""


def _format(ctx, value, spec, what: str) -> str:
    _check_spec(ctx, spec, what)
    refuse_marker(value, what)
    t = type(value)
    if id(t) not in ATOMIC_IDS:
        if spec:
            raise DeniedError("%s of %s with a format spec refused: only builtin scalars are "
                              "formatted (it would run its __format__)" % (what, type_name(t)))
        return _to_str(ctx, value, what)
    if t is STR:
        return format(value, spec) if spec else value
    if t is INT:
        _int_text_check(ctx, value, what)
    return format(value, spec)


def _int_text_check(ctx, value, what: str) -> None:
    digits = int(_INT_BITS(value) * 0.30103) + 1
    if digits > ctx.limits.max_int_digits:
        raise BudgetError("max_int_digits", "%s of an int of about %d digits refused (budget "
                          "max_int_digits=%d)" % (what, digits, ctx.limits.max_int_digits))


def _text_size(ctx, x, depth: int = 0) -> int:
    """An upper bound of len(repr(x)) for builtin data (already checked plain)."""
    t = type(x)
    if t is STR or t is BYTES:
        return 4 * len(x) + 3
    if t is INT:
        _int_text_check(ctx, x, "repr")
        return int(_INT_BITS(x) * 0.30103) + 2
    if id(t) in ATOMIC_IDS:
        return 64
    if depth > ctx.limits.max_value_depth:
        raise BudgetError("max_value_depth", "value nests too deeply to print")
    total = 2
    items = _DICT_ITEMS(x) if t is DICT else x
    for item in items:
        ctx.tick()
        total += 2 + _text_size(ctx, item, depth + 1)
        if total > ctx.limits.max_sequence:
            raise BudgetError("max_sequence", "the text would exceed %d characters (budget "
                              "max_sequence)" % ctx.limits.max_sequence)
    return total


def _to_repr(ctx, value, what: str) -> str:
    refuse_marker(value, what)
    value = _data(ctx, value, what)
    ctx.grow(_text_size(ctx, value), what)
    return repr(value)


def _to_str(ctx, value, what: str) -> str:
    refuse_marker(value, what)
    t = type(value)
    if t is STR:
        return value
    base = static.builtin_base(value, (STR, INT, FLOAT))
    if t is not base and base is STR:
        return STR.__dict__["__str__"](value)          # exact copy of a str subclass
    if t is not base and base is INT:
        _int_text_check(ctx, value, what)
        return INT.__dict__["__repr__"](value)
    if t is not base and base is FLOAT:
        return FLOAT.__dict__["__repr__"](value)
    return _to_repr(ctx, value, what)


# --- calls ---------------------------------------------------------------------
def _callee_label(node) -> str:
    name = _node_name(node)
    if name == "Name":
        return _field(node, "id")
    if name == "Attribute":
        inner = _callee_label(_field(node, "value"))
        return inner + "." + _field(node, "attr")
    return "<%s>" % name.lower()


def _h_call(ctx, node, env):
    func = _ev(ctx, _field(node, "func"), env)
    label = _callee_label(_field(node, "func"))
    refuse_marker(func, "call of %r" % label)
    invoke = _resolve(ctx, func, label)           # decided before any argument
    args = []
    for arg in _field(node, "args"):
        if _node_name(arg) == "Starred":
            args.extend(_materialize(ctx, _ev(ctx, _field(arg, "value"), env),
                                     "*-arguments", ctx.limits.max_sequence, "max_sequence"))
        else:
            args.append(_ev(ctx, arg, env))
    kwargs = {}
    for kw in _field(node, "keywords"):
        key = _field(kw, "arg")
        value = _ev(ctx, _field(kw, "value"), env)
        if key is None:
            for k, v in _dict_pairs(ctx, value, "**-arguments"):
                if type(k) is not STR:
                    raise QueryError("TypeError", "keywords must be strings")
                kwargs[k] = v
        else:
            kwargs[key] = value
    return invoke(ctx, args, kwargs)


def _resolve(ctx, func, label: str):
    """The handler for calling `func`, checked on the object itself."""
    fid = id(func)
    entry = policy.BUILTINS_BY_ID.get(fid)
    if entry is not None and entry[0] is func:
        name = entry[1]
        impl = _BUILTIN_IMPLS[name]
        return lambda ctx, args, kwargs: impl(ctx, args, kwargs, name)
    entry = _EVAL_HELPERS_BY_ID.get(fid)
    if entry is not None and entry[0] is func:
        impl = entry[1]
        return lambda ctx, args, kwargs: impl(ctx, args, kwargs, label)
    entry = ctx.helper_ids.get(fid)
    if entry is not None and entry[0] is func:
        return lambda ctx, args, kwargs: _call_agent_helper(ctx, func, entry[1], args, kwargs)
    t = type(func)
    if t is policy.BUILTIN_FUNCTION:
        self = _BUILTIN_SELF(func)
        name = _BUILTIN_NAME(func)
        handler = policy.method_handler(type(self), name)
        if handler is not None and policy.is_c_type(type(self)):
            impl = _METHOD_IMPLS[handler]
            return lambda ctx, args, kwargs: impl(ctx, func, self, name, args, kwargs)
        raise DeniedError(_refusal(label, func, self))
    if t is policy.METHOD_DESCRIPTOR:
        owner = _MDESC_OBJCLASS(func)
        name = _MDESC_NAME(func)
        handler = policy.method_handler(owner, name)
        if handler is not None:
            impl = _METHOD_IMPLS[handler]

            def unbound(ctx, args, kwargs):
                if not args or type(args[0]) is not owner:
                    raise DeniedError("call of %r refused: its first argument must be exactly "
                                      "a %s" % (label, type_name(owner)))
                return impl(ctx, _METHOD_DESC_GET(func, args[0], owner), args[0], name,
                            args[1:], kwargs)
            return unbound
    raise DeniedError(_refusal(label, func, None))


def _refusal(label: str, func, self) -> str:
    t = type(func)
    msg = "call of %r refused: not on the allowlist" % label
    if fid_is(func, "getattr") or fid_is(func, "hasattr"):
        return msg + " (use getattr_static(obj, name): it never runs target code)"
    if t is policy.BUILTIN_FUNCTION and self is not None:
        if type(self) is policy.MODULE:
            return msg
        if type(self) is STR and _BUILTIN_NAME(func) in ("format", "format_map"):
            return msg + " (str.format reads attributes named in the string; use an f-string)"
        return msg + " (%s.%s is not a listed pure method of an exact builtin type)" % (
            type_name_of(self), _BUILTIN_NAME(func))
    if static.is_class(func):
        return msg + " (calling a class would run its constructor)"
    if t is policy.FUNCTION or t is policy.METHOD:
        return msg + " (functions of the target are never called)"
    return msg


def fid_is(func, name: str) -> bool:
    return func is _DICT_GET(builtins.__dict__, name, MISSING) and \
        type(func) is policy.BUILTIN_FUNCTION


def _call_agent_helper(ctx, func, name: str, args, kwargs):
    for value in list(args) + list(kwargs.values()):
        if id(type(value)) not in ATOMIC_IDS:
            refuse_marker(value, "call of helper %r" % name)
            raise DeniedError("call of helper %r refused: its arguments must be builtin "
                              "scalars, not %s" % (name, type_name_of(value)))
    try:
        return func(*args, **kwargs)
    except AgentError:
        raise
    except Exception as exc:
        raise QueryError(type_name_of(exc), _exc_message(exc)) from None


def _no_kwargs(kwargs, name: str, allowed=()) -> None:
    for k in kwargs:
        if k not in allowed:
            raise QueryError("TypeError", "%s() got an unexpected keyword argument %r"
                             % (name, k))


def _arity(args, name: str, low: int, high: int) -> None:
    if not low <= len(args) <= high:
        raise QueryError("TypeError", "%s() takes %d to %d arguments (%d given)"
                         % (name, low, high, len(args)))


# --- builtin implementations ---------------------------------------------------
def _b_len(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 1, 1)
    x = args[0]
    refuse_marker(x, "len()")
    if type(x) is DictView:
        return x.length()
    base = static.builtin_base(x, _SEQ_BASES + (DICT, SET, FROZENSET) + _deque_tuple())
    if base is None:
        if type(x) is LazyIter:
            raise QueryError("TypeError", "object of type 'generator' has no len()")
        raise DeniedError("len() refused on %s: it would run its __len__ (builtin containers "
                          "only)" % type_name_of(x))
    return base.__dict__["__len__"](x)


def _numbers_only(ctx, x, what: str) -> None:
    refuse_marker(x, what)
    if id(type(x)) not in policy.NUMBER_IDS:
        raise DeniedError("%s refused on %s: builtin numbers only" % (what, type_name_of(x)))


def _b_abs(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 1, 1)
    _numbers_only(ctx, args[0], "abs()")
    return abs(args[0])


def _keyed(ctx, items: list, key, what: str) -> list:
    """The keys for sorted/min/max: computed by the evaluator, each checked plain."""
    if key is None:
        return _data(ctx, items, what)
    invoke = _resolve(ctx, key, "key function")
    keys = []
    for item in items:
        ctx.tick()
        keys.append(invoke(ctx, [item], {}))
    return _data(ctx, keys, what)


def _minmax(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name, ("key", "default"))
    if not args:
        raise QueryError("TypeError", "%s expected at least 1 argument, got 0" % name)
    lim = ctx.limits.max_sort_items
    items = list(args) if len(args) > 1 else _materialize(ctx, args[0], name + "()", lim,
                                                           "max_sort_items")
    if not items:
        if "default" in kwargs:
            return kwargs["default"]
        raise QueryError("ValueError", "%s() arg is an empty sequence" % name)
    keys = _keyed(ctx, items, kwargs.get("key"), name + "()")
    ctx.scan(len(keys), name + "()")
    pick = min if name == "min" else max
    index = pick(range(len(keys)), key=keys.__getitem__)   # C loop over builtin keys
    return items[index]


def _b_sorted(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name, ("key", "reverse"))
    _arity(args, name, 1, 1)
    items = _materialize(ctx, args[0], "sorted()", ctx.limits.max_sort_items, "max_sort_items")
    reverse = kwargs.get("reverse", False)
    if type(reverse) is not BOOL:
        raise DeniedError("sorted() reverse= must be a bool")
    keys = _keyed(ctx, items, kwargs.get("key"), "sorted()")
    ctx.scan(len(keys), "sorted()")
    order = sorted(range(len(keys)), key=keys.__getitem__, reverse=reverse)
    return [items[i] for i in order]


def _b_sum(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name, ("start",))
    _arity(args, name, 1, 2)
    total = args[1] if len(args) == 2 else kwargs.get("start", 0)
    _numbers_only(ctx, total, "sum()")
    for item in _iterate(ctx, args[0], "sum()"):       # a Python loop: yields the GIL
        ctx.tick()
        _numbers_only(ctx, item, "sum()")
        total = _arith(ctx, "Add", total, item, "sum()")
    return total


def _b_any_all(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 1, 1)
    want = name == "any"
    for item in _iterate(ctx, args[0], name + "()"):
        ctx.tick()
        if _truth(ctx, item, name + "()") == want:
            return want
    return not want


def _b_round(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name, ("ndigits",))
    _arity(args, name, 1, 2)
    x = args[0]
    if type(x) is not INT and type(x) is not FLOAT and type(x) is not BOOL:
        refuse_marker(x, "round()")
        raise DeniedError("round() refused on %s: int or float only" % type_name_of(x))
    nd = args[1] if len(args) == 2 else kwargs.get("ndigits")
    if nd is None:
        return round(x)
    if type(nd) is not INT or not -400 <= nd <= 400:
        raise DeniedError("round() ndigits must be an int between -400 and 400")
    _int_operand(ctx, x, "round()")
    return round(x, nd)


def _b_repr(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 1, 1)
    return _to_repr(ctx, args[0], "repr()")


def _b_format(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 1, 2)
    return _format(ctx, args[0], args[1] if len(args) == 2 else "", "format()")


def _b_enumerate(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name, ("start",))
    _arity(args, name, 1, 2)
    start = args[1] if len(args) == 2 else kwargs.get("start", 0)
    if type(start) is not INT:
        raise DeniedError("enumerate() start must be an int")
    source = _iterate(ctx, args[0], "enumerate()")

    def gen():
        i = start
        for item in source:
            yield (i, item)
            i += 1
    return LazyIter(gen(), "enumerate")


def _b_zip(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    sources = [_iterate(ctx, a, "zip()") for a in args]

    def gen():
        if not sources:
            return
        while True:
            row = []
            for s in sources:
                try:
                    row.append(next(s))
                except StopIteration:
                    return
            yield tuple(row)
    return LazyIter(gen(), "zip")


def _b_map(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    if len(args) < 2:
        raise QueryError("TypeError", "map() must have at least two arguments.")
    invoke = _resolve(ctx, args[0], "map() function")
    rows = _b_zip(ctx, args[1:], {}, "zip")

    def gen():
        for row in rows.gen:
            ctx.tick()
            yield invoke(ctx, list(row), {})
    return LazyIter(gen(), "map")


def _b_filter(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 2, 2)
    invoke = None if args[0] is None else _resolve(ctx, args[0], "filter() function")
    source = _iterate(ctx, args[1], "filter()")

    def gen():
        for item in source:
            ctx.tick()
            value = item if invoke is None else invoke(ctx, [item], {})
            if _truth(ctx, value, "filter()"):
                yield item
    return LazyIter(gen(), "filter")


def _b_reversed(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 1, 1)
    x = args[0]
    refuse_marker(x, "reversed()")
    base = static.builtin_base(x, (LIST, TUPLE, STR, BYTES, RANGE) + _deque_tuple())
    if base is None:
        raise DeniedError("reversed() refused on %s: builtin sequences only"
                          % type_name_of(x))
    n = base.__dict__["__len__"](x)
    ctx.scan(n, "reversed()")
    items = list(base.__dict__["__iter__"](x))
    return LazyIter(iter(items[::-1]), "reversed")


def _b_range(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 1, 3)
    for a in args:
        if type(a) is not INT and type(a) is not BOOL:
            refuse_marker(a, "range()")
            raise DeniedError("range() refused on %s: ints only" % type_name_of(a))
        _int_operand(ctx, a, "range()")
    r = range(*args)
    if len(r) > ctx.limits.max_range:
        raise BudgetError("max_range", "range of %d items refused (budget max_range=%d)"
                          % (len(r), ctx.limits.max_range))
    return r


def _b_divmod(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 2, 2)
    for a in args:
        _numbers_only(ctx, a, "divmod()")
        _int_operand(ctx, a, "divmod()")
    return divmod(args[0], args[1])


def _b_pow(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 2, 3)
    for a in args:
        _numbers_only(ctx, a, "pow()")
    if len(args) == 2:
        return _arith(ctx, "Pow", args[0], args[1], "pow()")
    lim = ctx.limits.max_powmod_bits
    for a in args:
        if type(a) is not INT and type(a) is not BOOL:
            raise QueryError("TypeError", "pow() 3rd argument not allowed unless all "
                             "arguments are integers")
        if _INT_BITS(a) > lim:
            raise BudgetError("max_powmod_bits", "pow() with a %d-bit argument refused "
                              "(budget max_powmod_bits=%d)" % (_INT_BITS(a), lim))
    return pow(args[0], args[1], args[2])


def _b_int_text(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 1, 1)
    x = args[0]
    if type(x) is not INT and type(x) is not BOOL:
        refuse_marker(x, name + "()")
        raise DeniedError("%s() refused on %s: ints only" % (name, type_name_of(x)))
    _int_operand(ctx, x, name + "()")
    return {"hex": hex, "oct": oct, "bin": bin}[name](x)


def _b_chr(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 1, 1)
    if type(args[0]) is not INT:
        raise DeniedError("chr() refused: an int is needed")
    return chr(args[0])


def _b_ord(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 1, 1)
    t = type(args[0])
    if t is not STR and t is not BYTES:
        refuse_marker(args[0], "ord()")
        raise DeniedError("ord() refused on %s: str or bytes only" % type_name(t))
    return ord(args[0])


def _b_callable(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 1, 1)
    refuse_marker(args[0], "callable()")
    return callable(args[0])        # reads the C slot tp_call: runs nothing


def _b_id(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    _arity(args, name, 1, 1)
    refuse_marker(args[0], "id()")
    return id(args[0])


def _b_str(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name, ("encoding", "errors"))
    if not args and not kwargs:
        return ""
    _arity(args, name, 1, 3)
    if len(args) > 1 or kwargs:
        if static.builtin_base(args[0], (BYTES, BYTEARRAY)) is None:
            raise DeniedError("str(x, encoding) refused: bytes only")
        encoding = args[1] if len(args) > 1 else kwargs.get("encoding", "utf-8")
        errors = args[2] if len(args) > 2 else kwargs.get("errors", "strict")
        return _codec(ctx, args[0], "decode", [encoding, errors], {})
    return _to_str(ctx, args[0], "str()")


def _b_int(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name, ("base",))
    if not args:
        return 0
    _arity(args, name, 1, 2)
    x = args[0]
    refuse_marker(x, "int()")
    base_arg = args[1] if len(args) == 2 else kwargs.get("base", MISSING)
    t = type(x)
    if t is STR or t is BYTES:
        if len(x) > ctx.limits.max_int_digits:
            raise BudgetError("max_int_digits", "int() of %d characters refused (budget "
                              "max_int_digits=%d)" % (len(x), ctx.limits.max_int_digits))
        if base_arg is MISSING:
            return int(x)
        if type(base_arg) is not INT:
            raise DeniedError("int() base must be an int")
        return int(x, base_arg)
    if base_arg is not MISSING:
        raise QueryError("TypeError", "int() can't convert non-string with explicit base")
    if t is INT or t is BOOL or t is FLOAT:
        return int(x)
    if static.builtin_base(x, (INT,)) is INT:
        return INT.__dict__["__int__"](x)       # an IntEnum/int subclass: its value
    raise DeniedError("int() refused on %s: builtin numbers and text only (it would run "
                      "its __int__/__index__)" % type_name(t))


def _b_float(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    if not args:
        return 0.0
    _arity(args, name, 1, 1)
    x = args[0]
    refuse_marker(x, "float()")
    t = type(x)
    if t is STR or t is BYTES:
        if len(x) > ctx.limits.max_int_digits:
            raise BudgetError("max_int_digits", "float() of %d characters refused" % len(x))
        return float(x)
    if t is INT or t is BOOL or t is FLOAT:
        return float(x)
    base = static.builtin_base(x, (INT, FLOAT))
    if base is FLOAT:
        return FLOAT.__dict__["__float__"](x)
    if base is INT:
        return float(INT.__dict__["__int__"](x))
    raise DeniedError("float() refused on %s: builtin numbers and text only"
                      % type_name(t))


def _b_bool(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    if not args:
        return False
    _arity(args, name, 1, 1)
    return _truth(ctx, args[0], "bool()")


def _b_bytes(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name, ("encoding", "errors"))
    if not args and not kwargs:
        return b""
    _arity(args, name, 1, 3)
    x = args[0]
    refuse_marker(x, "bytes()")
    if type(x) is STR:
        encoding = args[1] if len(args) > 1 else kwargs.get("encoding", MISSING)
        if encoding is MISSING:
            raise QueryError("TypeError", "string argument without an encoding")
        errors = args[2] if len(args) > 2 else kwargs.get("errors", "strict")
        return _codec(ctx, x, "encode", [encoding, errors], {})
    if type(x) is INT:
        raise DeniedError("bytes(n) refused: it allocates n zero bytes; use b'\\0' * n")
    if type(x) is BYTES or type(x) is BYTEARRAY:
        return bytes(x)
    items = _materialize(ctx, x, "bytes()", ctx.limits.max_sequence, "max_sequence")
    for item in items:
        if type(item) is not INT:
            raise DeniedError("bytes() of %s items refused: ints only" % type_name_of(item))
    return bytes(items)


def _b_list(ctx, args, kwargs, name):
    _no_kwargs(kwargs, name)
    if not args:
        return []
    _arity(args, name, 1, 1)
    return _materialize(ctx, args[0], "list()", ctx.limits.max_sequence, "max_sequence")


def _b_tuple(ctx, args, kwargs, name):
    return tuple(_b_list(ctx, args, kwargs, name))


def _b_set(ctx, args, kwargs, name):
    items = _b_list(ctx, args, kwargs, name)
    items = _data_items(ctx, items, name + "()", True, 0, _HASHABLE_IDS)
    return set(items) if name == "set" else frozenset(items)


def _b_dict(ctx, args, kwargs, name):
    _arity(args, name, 0, 1)
    out = {}
    if args:
        src = args[0]
        refuse_marker(src, "dict()")
        if static.builtin_base(src, (DICT,)) is not None:
            pairs = _dict_pairs(ctx, src, "dict()")
        else:
            pairs = _materialize(ctx, src, "dict()", ctx.limits.max_sequence, "max_sequence")
        for pair in pairs:
            ctx.tick()
            if type(pair) is not TUPLE and type(pair) is not LIST or len(pair) != 2:
                raise QueryError("TypeError", "dict() needs (key, value) pairs")
            out[_data(ctx, pair[0], "dict key", hashable=True)] = pair[1]
    for k, v in kwargs.items():
        out[k] = v
    ctx.grow(len(out), "dict()")
    return out


# --- the evaluator's own helpers -------------------------------------------------
def _h_type(ctx, args, kwargs, label):
    if len(args) != 1 or kwargs:
        raise DeniedError("type() with %d arguments refused: only type(x) (three arguments "
                          "would create a class)" % len(args))
    refuse_marker(args[0], "type()")
    return type(args[0])          # the real type; never reads a __class__ property


def _h_isinstance(ctx, args, kwargs, label):
    _no_kwargs(kwargs, "isinstance")
    _arity(args, "isinstance", 2, 2)
    x, classes = args
    refuse_marker(x, "isinstance()")
    if type(classes) is TUPLE:
        wanted = list(classes)
    else:
        wanted = [classes]
    for c in wanted:
        if not static.is_class(c):
            raise QueryError("TypeError", "isinstance() arg 2 must be a type or tuple of "
                             "types")
    # the real type's MRO, by identity: no __class__ property, no __instancecheck__
    for c in static.mro(type(x)):
        for w in wanted:
            if c is w:
                return True
    return False


def _h_getattr_static(ctx, args, kwargs, label):
    _no_kwargs(kwargs, "getattr_static")
    _arity(args, "getattr_static", 2, 3)
    try:
        return read_attribute(args[0], args[1], allow_properties=False, redact=ctx.redact,
                              limit=ctx.limits.max_snapshot_items * 10)
    except QueryError:
        if len(args) == 3:
            return args[2]
        raise


def _h_vars(ctx, args, kwargs, label):
    _no_kwargs(kwargs, "vars")
    _arity(args, "vars", 1, 1)
    refuse_marker(args[0], "vars()")
    return attrs_copy(args[0], ctx.redact, ctx.limits.max_snapshot_items * 10)


def getattr_static(obj, name, default=None):
    """getattr_static(obj, name[, default]): read an attribute statically (the
    query-visible helper; calls are routed to the evaluator's implementation)."""
    raise DeniedError("getattr_static is only callable from a query")


_EVAL_HELPERS = {"getattr_static": getattr_static}
_EVAL_HELPERS_BY_ID = {id(getattr_static): (getattr_static, _h_getattr_static)}


# --- method implementations ------------------------------------------------------
def _args_plain(ctx, args, kwargs, what: str):
    """Arguments of a builtin method: builtin data only (private copies)."""
    args = [_data(ctx, a, what) for a in args]
    kwargs = dict([(k, _data(ctx, v, what)) for k, v in kwargs.items()])
    return args, kwargs


# pure methods that build a new text (or list of texts) about the size of self
_TEXT_COPIES = frozenset(["capitalize", "casefold", "lower", "upper", "swapcase", "title",
                          "lstrip", "rstrip", "strip", "split", "rsplit", "splitlines",
                          "partition", "rpartition", "removeprefix", "removesuffix"])


def _m_pure(ctx, method, self, name, args, kwargs):
    args, kwargs = _args_plain(ctx, args, kwargs, name + "()")
    if name in _TEXT_COPIES:
        ctx.grow(len(self) * (3 if name == "casefold" else 1), name + "()")
    return method(*args, **kwargs)


def _m_width(ctx, method, self, name, args, kwargs):
    args, kwargs = _args_plain(ctx, args, kwargs, name + "()")
    width = args[0] if args else kwargs.get("width", 0)
    if type(width) is INT:
        ctx.grow(max(width, 0), name + "()")
    return method(*args, **kwargs)


def _m_expandtabs(ctx, method, self, name, args, kwargs):
    args, kwargs = _args_plain(ctx, args, kwargs, name + "()")
    size = args[0] if args else kwargs.get("tabsize", 8)
    if type(size) is INT:
        ctx.grow(len(self) * max(size, 1), name + "()")
    return method(*args, **kwargs)


def _m_replace(ctx, method, self, name, args, kwargs):
    args, kwargs = _args_plain(ctx, args, kwargs, name + "()")
    if len(args) >= 2 and type(args[0]) is type(self) and type(args[1]) is type(self):
        old, new = args[0], args[1]
        count = self.count(old) if old else len(self) + 1
        if len(args) >= 3 and type(args[2]) is INT and args[2] >= 0:
            count = min(count, args[2])
        ctx.grow(len(self) + count * max(len(new) - len(old), 0), name + "()")
    return method(*args, **kwargs)


def _m_join(ctx, method, self, name, args, kwargs):
    _no_kwargs(kwargs, name)
    _arity(args, name, 1, 1)
    items = _materialize(ctx, args[0], "join()", ctx.limits.max_sequence, "max_sequence")
    total = 0
    for item in items:
        if type(item) is not type(self):
            refuse_marker(item, "join()")
            raise QueryError("TypeError", "sequence item: expected %s instance, %s found"
                             % (type_name_of(self), type_name_of(item)))
        total += len(item) + len(self)
    ctx.grow(total, "join()")
    return method(items)


def _codec(ctx, value, op: str, args, kwargs):
    encoding = args[0] if args else kwargs.get("encoding", "utf-8")
    errors = args[1] if len(args) > 1 else kwargs.get("errors", "strict")
    if type(encoding) is not STR or encoding.lower() not in policy.ALLOWED_CODECS:
        raise DeniedError("%s with encoding %r refused: only %s (looking up another codec "
                          "imports a module into the target)"
                          % (op, encoding, ", ".join(sorted(policy.ALLOWED_CODECS))))
    if type(errors) is not STR or errors not in policy.ALLOWED_CODEC_ERRORS:
        raise DeniedError("%s with errors=%r refused: only %s"
                          % (op, errors, ", ".join(sorted(policy.ALLOWED_CODEC_ERRORS))))
    ctx.grow(len(value) * 4, op + "()")
    if op == "encode":
        return STR.encode(value, encoding, errors)
    if type(value) is BYTEARRAY:
        return BYTEARRAY.decode(value, encoding, errors)
    return BYTES.decode(value, encoding, errors)


def _m_codec(ctx, method, self, name, args, kwargs):
    _no_kwargs(kwargs, name, ("encoding", "errors"))
    return _codec(ctx, self, name, args, kwargs)


def _m_hex(ctx, method, self, name, args, kwargs):
    args, kwargs = _args_plain(ctx, args, kwargs, name + "()")
    ctx.grow(len(self) * 3, name + "()")
    return method(*args, **kwargs)


def _m_to_bytes(ctx, method, self, name, args, kwargs):
    args, kwargs = _args_plain(ctx, args, kwargs, name + "()")
    length = args[0] if args else kwargs.get("length", 1)
    if type(length) is INT:
        ctx.grow(max(length, 0), name + "()")
    return method(*args, **kwargs)


def _m_elements(ctx, method, self, name, args, kwargs):
    args, kwargs = _args_plain(ctx, args, kwargs, name + "()")
    if type(self) is RANGE:
        return method(*args, **kwargs)
    # index()/count() compare every item: run them on a checked private copy
    copy = _exact_copy(ctx, self, type(self), name + "()")
    return LIST.__dict__[name](list(copy), *args, **kwargs)


def _m_copy(ctx, method, self, name, args, kwargs):
    _no_kwargs(kwargs, name)
    _arity(args, name, 0, 0)
    if type(self) is DICT:
        return dict(_dict_pairs(ctx, self, "copy()"))
    n = len(self)
    ctx.scan(n, "copy()")
    ctx.grow(n, "copy()")
    return method()


def _m_setop(ctx, method, self, name, args, kwargs):
    _no_kwargs(kwargs, name)
    mine = _data(ctx, self, name + "()")
    total = len(mine)
    converted = []
    for arg in args:
        items = _materialize(ctx, arg, name + "()", ctx.limits.max_sequence, "max_sequence")
        converted.append(_data_items(ctx, items, name + "()", True, 0, _HASHABLE_IDS))
        total += len(items)
    ctx.grow(total, name + "()")
    return type(self).__dict__[name](mine, *converted)


def _m_dict_get(ctx, method, self, name, args, kwargs):
    _no_kwargs(kwargs, name)
    _arity(args, name, 1, 2)
    key = _data(ctx, args[0], "dict.get()", hashable=True)
    _keys_safe(ctx, self, DICT, "dict.get()")
    result = _DICT_GET(self, key, MISSING)
    if result is MISSING:
        return args[1] if len(args) == 2 else None
    if ctx.redact and policy.looks_secret(key):
        return redact_value(key, result)
    return result


def _m_dict_view(ctx, method, self, name, args, kwargs):
    _no_kwargs(kwargs, name)
    _arity(args, name, 0, 0)
    return DictView(self, name, ctx.redact)


_METHOD_IMPLS = {
    "pure": _m_pure, "width": _m_width, "expandtabs": _m_expandtabs, "replace": _m_replace,
    "join": _m_join, "codec": _m_codec, "hex": _m_hex, "to_bytes": _m_to_bytes,
    "elements": _m_elements, "copy": _m_copy, "setop": _m_setop, "dict_get": _m_dict_get,
    "dict_view": _m_dict_view,
}

_BUILTIN_IMPLS = {
    "len": _b_len, "abs": _b_abs, "min": _minmax, "max": _minmax, "sum": _b_sum,
    "sorted": _b_sorted, "any": _b_any_all, "all": _b_any_all, "round": _b_round,
    "repr": _b_repr, "enumerate": _b_enumerate, "zip": _b_zip, "range": _b_range,
    "reversed": _b_reversed, "map": _b_map, "filter": _b_filter, "divmod": _b_divmod,
    "pow": _b_pow, "hex": _b_int_text, "oct": _b_int_text, "bin": _b_int_text,
    "chr": _b_chr, "ord": _b_ord, "format": _b_format, "callable": _b_callable, "id": _b_id,
    "str": _b_str, "int": _b_int, "float": _b_float, "bool": _b_bool, "bytes": _b_bytes,
    "list": _b_list, "tuple": _b_tuple, "dict": _b_dict, "set": _b_set,
    "frozenset": _b_set, "type": _h_type, "isinstance": _h_isinstance, "vars": _h_vars,
}


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
