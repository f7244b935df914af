"""Parse a query (parse only) and check its syntax tree against the policy.

Nodes are read statically (their class's ``__dict__`` getset): the target may
have patched attributes of the ``ast`` classes. The syntax a query may use is
``policy.ALLOWED_SYNTAX``; anything else is refused by name.
"""
from __future__ import annotations

from . import policy, static
from .errors import BudgetError, DeniedError, MalformedQueryError, message_of
from .limits import Limits
from .policy import DICT, LIST, TYPE
from .query_text import PYCF_ONLY_AST, check_text
from .snapshot import type_name, type_name_of

_TYPE_NAME = TYPE.__dict__["__name__"].__get__
_GETSET_GET = policy.GETSET_DESCRIPTOR.__dict__["__get__"]
_DICT_GET = DICT.__dict__["get"]


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


def node_name(node) -> str:
    return _node_class(node)[1]


def fields(node) -> dict:
    entry = _node_class(node)
    d = _GETSET_GET(entry[2], node, entry[0])
    if type(d) is not DICT:
        raise DeniedError("syntax node without fields refused")
    return d


def field(node, name: str):
    return _DICT_GET(fields(node), name)


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
            % (message_of(exc) or "invalid syntax", where)) from None
    except (ValueError, MemoryError, RecursionError) as exc:
        raise BudgetError("max_nesting", "the parser refused the query: %s: %s"
                          % (type_name_of(exc), message_of(exc))) from None
    check_tree(tree, limits)
    return tree


def _refuse_statement(source: str) -> None:
    """If the text is a statement (import, assignment, del ...), say so (exit 3)."""
    try:
        module = compile(source, "<query>", "exec", PYCF_ONLY_AST)    # parse only
    except Exception:
        return
    body = field(module, "body")
    if type(body) is LIST and body:
        raise DeniedError("statement %r is refused: a query is one expression (no import, "
                          "assignment, del, global ...)" % node_name(body[0]))


def check_tree(tree, limits: Limits) -> None:
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
        name = node_name(node)
        if name == "Store" and depth > 2:
            pass      # comprehension targets; checked when binding
        elif name in policy.REFUSED_SYNTAX:
            raise DeniedError(policy.REFUSED_SYNTAX[name])
        elif name not in policy.ALLOWED_SYNTAX and name not in policy.MARKER_SYNTAX:
            raise DeniedError("syntax %r is not allowed: only expressions made of literals, "
                              "names, attributes, subscripts, operators, comparisons, calls "
                              "and comprehensions are" % name)
        for value in list(fields(node).values()):
            if type(value) is LIST:
                for item in value:
                    if _is_node(item):
                        stack.append((item, depth + 1))
            elif _is_node(value):
                stack.append((value, depth + 1))

