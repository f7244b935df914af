"""The query text lexer: refuse text the parser must not see, before parsing.

CPython's parser can crash on deep input (gh-126710), imports ``unicodedata``
for non-ASCII identifiers and ``\\N{...}`` escapes, and prints SyntaxWarnings
on the target's stderr for invalid escapes: all refused here, on the raw text.
"""
from __future__ import annotations

from .errors import BudgetError, DeniedError, QueryError
from .limits import Limits
from .policy import STR
from .snapshot import type_name_of

PYCF_ONLY_AST = 0x400


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

