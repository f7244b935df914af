"""Text from the target, made safe for the operator's terminal and logs.

Everything a target sends (thread names, values, keys, source lines, error
messages, its command line) is hostile: an OSC or CSI sequence in a thread
name retitles the window, clears the screen or fakes output. `term_safe`
escapes every character a terminal may act on instead of printing it:

- C0 controls and DEL (ESC, BEL, CR, backspace, ...), and C1 controls
  (U+0080-U+009F: U+009B is a one-character CSI on many terminals, U+0085 a
  newline);
- line and paragraph separators (U+2028, U+2029);
- invisible format characters, among them the bidi overrides and isolates
  (U+202A-U+202E, U+2066-U+2069) that reorder what the operator reads,
  zero-width characters, and lone surrogates.

Escapes look like Python's: ``\\x1b``, ``\\u2028``, ``\\U000e0001``. Printable
text, including backslashes, is left alone, so escaping twice changes
nothing more. `json_dumps` is the one JSON writer for --json, dumps and the
audit log: pure ASCII (so no C1, no U+2028), hence one record per line.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable

TYPE_CHECKING = False  # typing's constant without importing typing (mypy reads it as True)
if TYPE_CHECKING:
    from typing import Any, TextIO

# Cc, Zl, Zp and the Cf (format) characters, plus surrogates.
_UNSAFE_CLASS = (
    "[\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\ud800-\udfff\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]"
)


@functools.cache
def _unsafe(keep_newline: bool) -> re.Pattern[str]:
    """The pattern, compiled when first needed: ~2 ms for the two, which
    plain ASCII text (most of what a cold `inspector stack` prints) never needs."""
    if keep_newline:
        return re.compile(_UNSAFE_CLASS.replace("\x00-\x1f", "\x00-\x09\x0b-\x1f"))
    return re.compile(_UNSAFE_CLASS)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x100:
        return "\\x%02x" % code
    if code < 0x10000:
        return "\\u%04x" % code
    return "\\U%08x" % code


def term_safe(text: object) -> str:
    """One line of target text, safe to print: no control or format character."""
    s = text if type(text) is str else str(text)
    if s.isascii() and s.isprintable():  # (printable ASCII: 0x20-0x7e, none of the class)
        return s
    return _unsafe(False).sub(_escape, s)


def term_safe_lines(text: str) -> str:
    """Like term_safe, but keeps newlines (for a block the client laid out)."""
    if text.isascii() and text.replace("\n", "").isprintable():
        return text
    return _unsafe(True).sub(_escape, text)


def json_dumps(obj: Any, *, default: Callable[[Any], Any] | None = None,
               indent: int | None = None) -> str:
    """ASCII-only JSON: every non-ASCII character (C1, U+2028, bidi) and every
    control character is a \\u escape; the text holds no line break of any kind
    unless `indent` asks for layout."""
    return json.dumps(obj, ensure_ascii=True, default=default, indent=indent)


class SafeStream:
    """A text stream wrapper that escapes what `term_safe_lines` escapes, for
    the CLI's stdout and stderr (the client itself writes no escape codes)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(term_safe_lines(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
