"""The wire format between client and agent: framing, JSON codec, protocol.

This module is the single source of truth for the protocol; the client
imports it. It runs inside the target, so it has its own small JSON codec
instead of the ``json`` module, which a target may have monkeypatched or not
imported at all. The syntax is plain RFC 8259 JSON, so the client may decode
with any JSON parser.

Frame: 4-byte big-endian length, then UTF-8 JSON text of one object.
"""
from __future__ import annotations

PROTOCOL_VERSION = 1
MAX_FRAME = 32 * 1024 * 1024  # bytes, either direction
MAX_REQUEST_FRAME = 1024 * 1024  # what the agent accepts from a client
MAX_DEPTH = 64  # JSON nesting depth accepted by the decoder
HEADER_SIZE = 4  # big-endian unsigned length (no `struct`: it may not be loaded in the target)

# Error kinds carried in replies; the client maps them to exceptions and
# exit codes (see docs/DESIGN.md, "Contracts").
ERROR_KINDS = ("denied", "budget", "eval", "usage", "frame_gone", "protocol", "internal", "lost")


class ProtocolError(Exception):
    """A frame or message that does not follow the protocol."""


# ---------------------------------------------------------------- encoding

_ESCAPES = {i: "\\u%04x" % i for i in range(0x20)}
_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\", 0x7F: "\\u007f"})
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def _encode_str(s: str) -> str:
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return '"' + s + '"'  # nothing to escape: most names, paths and reprs
    out = s.translate(_ESCAPES)
    try:
        out.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (e.g. from surrogateescape) cannot be UTF-8 encoded;
        # JSON can carry them as \\uXXXX escapes.
        out = "".join("\\u%04x" % ord(c) if 0xD800 <= ord(c) <= 0xDFFF else c for c in out)
    return '"' + out + '"'


def dumps(obj: object) -> bytes:
    """Encode a tree of dict/list/tuple/str/int/float/bool/None as JSON bytes.

    Only exact builtin types are accepted: this never calls code of the
    objects it encodes. Raises ProtocolError for anything else.
    """
    parts: list = []
    _encode(obj, parts, 0)
    return "".join(parts).encode("utf-8")


def _encode(obj: object, parts: list, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ProtocolError("value nested deeper than %d levels" % MAX_DEPTH)
    t = type(obj)
    if obj is None:
        parts.append("null")
    elif obj is True:
        parts.append("true")
    elif obj is False:
        parts.append("false")
    elif t is str:
        parts.append(_encode_str(obj))  # type: ignore[arg-type]
    elif t is int:
        parts.append(int.__repr__(obj))  # type: ignore[arg-type]
    elif t is float:
        if obj != obj or obj in (float("inf"), float("-inf")):
            raise ProtocolError("non-finite float cannot be sent")
        parts.append(float.__repr__(obj))  # type: ignore[arg-type]
    elif t is dict:
        parts.append("{")
        first = True
        for key, value in obj.items():  # type: ignore[attr-defined]
            if type(key) is not str:
                raise ProtocolError("object keys must be strings")
            if not first:
                parts.append(",")
            first = False
            parts.append(_encode_str(key))
            parts.append(":")
            _encode(value, parts, depth + 1)
        parts.append("}")
    elif t is list or t is tuple:
        parts.append("[")
        for i, value in enumerate(obj):  # type: ignore[arg-type]
            if i:
                parts.append(",")
            _encode(value, parts, depth + 1)
        parts.append("]")
    else:
        raise ProtocolError("cannot encode a %s" % t.__name__)


# ---------------------------------------------------------------- decoding

_WS = " \t\n\r"
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
                   "t": "\t"}
_NUMBER_CHARS = frozenset("0123456789+-.eE")


def loads(data: bytes) -> object:
    """Decode JSON text (bytes) with a nesting-depth bound."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("frame is not valid UTF-8") from None
    value, pos = _Decoder(text).value(0, 0)
    pos = _skip_ws(text, pos)
    if pos != len(text):
        raise ProtocolError("trailing data after JSON value at offset %d" % pos)
    return value


def _skip_ws(text: str, pos: int) -> int:
    n = len(text)
    while pos < n and text[pos] in _WS:
        pos += 1
    return pos


class _Decoder:
    def __init__(self, text: str) -> None:
        self.text = text

    def value(self, pos: int, depth: int) -> tuple:
        text = self.text
        pos = _skip_ws(text, pos)
        if pos >= len(text):
            raise ProtocolError("unexpected end of JSON")
        c = text[pos]
        if c == "{":
            return self.object(pos + 1, depth + 1)
        if c == "[":
            return self.array(pos + 1, depth + 1)
        if c == '"':
            return self.string(pos + 1)
        for word, val in (("null", None), ("true", True), ("false", False)):
            if text.startswith(word, pos):
                return val, pos + len(word)
        return self.number(pos)

    def _check_depth(self, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise ProtocolError("JSON nested deeper than %d levels" % MAX_DEPTH)

    def object(self, pos: int, depth: int) -> tuple:
        self._check_depth(depth)
        text = self.text
        out: dict = {}
        pos = _skip_ws(text, pos)
        if text.startswith("}", pos):
            return out, pos + 1
        while True:
            pos = _skip_ws(text, pos)
            if not text.startswith('"', pos):
                raise ProtocolError("expected a string key at offset %d" % pos)
            key, pos = self.string(pos + 1)
            pos = _skip_ws(text, pos)
            if not text.startswith(":", pos):
                raise ProtocolError("expected ':' at offset %d" % pos)
            out[key], pos = self.value(pos + 1, depth)
            pos = _skip_ws(text, pos)
            if text.startswith(",", pos):
                pos += 1
            elif text.startswith("}", pos):
                return out, pos + 1
            else:
                raise ProtocolError("expected ',' or '}' at offset %d" % pos)

    def array(self, pos: int, depth: int) -> tuple:
        self._check_depth(depth)
        text = self.text
        out: list = []
        pos = _skip_ws(text, pos)
        if text.startswith("]", pos):
            return out, pos + 1
        while True:
            item, pos = self.value(pos, depth)
            out.append(item)
            pos = _skip_ws(text, pos)
            if text.startswith(",", pos):
                pos += 1
            elif text.startswith("]", pos):
                return out, pos + 1
            else:
                raise ProtocolError("expected ',' or ']' at offset %d" % pos)

    def string(self, pos: int) -> tuple:
        text = self.text
        chunks = []
        while True:
            end = pos
            n = len(text)
            while end < n and text[end] != '"' and text[end] != "\\":
                if text[end] < " ":
                    raise ProtocolError("control character in string at offset %d" % end)
                end += 1
            if end >= n:
                raise ProtocolError("unterminated string")
            chunks.append(text[pos:end])
            if text[end] == '"':
                return "".join(chunks), end + 1
            esc = text[end + 1:end + 2]
            if esc in _SIMPLE_ESCAPES:
                chunks.append(_SIMPLE_ESCAPES[esc])
                pos = end + 2
            elif esc == "u":
                hexdigits = text[end + 2:end + 6]
                if len(hexdigits) != 4 or not all(h in "0123456789abcdefABCDEF" for h in hexdigits):
                    raise ProtocolError("bad \\u escape at offset %d" % end)
                code = int(hexdigits, 16)
                pos = end + 6
                if 0xD800 <= code < 0xDC00 and text.startswith("\\u", pos):
                    low_hex = text[pos + 2:pos + 6]
                    if len(low_hex) == 4 and all(h in "0123456789abcdefABCDEF" for h in low_hex):
                        low = int(low_hex, 16)
                        if 0xDC00 <= low < 0xE000:
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                            pos += 6
                chunks.append(chr(code))
            else:
                raise ProtocolError("bad escape at offset %d" % end)

    def number(self, pos: int) -> tuple:
        text = self.text
        end = pos
        while end < len(text) and text[end] in _NUMBER_CHARS:
            end += 1
        token = text[pos:end]
        if not token:
            raise ProtocolError("unexpected character %r at offset %d" % (text[pos], pos))
        if len(token) > 400:
            raise ProtocolError("number too long at offset %d" % pos)
        try:
            if "." in token or "e" in token or "E" in token:
                val = float(token)
                if val != val or val in (float("inf"), float("-inf")):
                    raise ValueError(token)
                return val, end
            return int(token), end
        except ValueError:
            raise ProtocolError("bad number %r at offset %d" % (token, pos)) from None


# ---------------------------------------------------------------- framing

def recv_exact(sock, n, deadline=None, clock=None):
    """Read exactly n bytes from a socket; EOFError if it closes first.

    With `deadline` (a `clock()` value), the whole read must end by then
    (TimeoutError): a peer dripping one byte just inside each read's timeout
    is still cut off. Without it, the socket's own timeout applies per read.
    """
    chunks = []
    while n:
        if deadline is not None:
            remaining = deadline - clock()
            if remaining <= 0:
                raise TimeoutError("no complete frame before the deadline")
            sock.settimeout(remaining)
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def encode_frame(message: dict, limit: int = MAX_FRAME) -> bytes:
    """One message as a frame; ProtocolError if it exceeds `limit`."""
    body = dumps(message)
    if len(body) > limit:
        raise ProtocolError("message of %d bytes exceeds the %d-byte frame limit"
                            % (len(body), limit))
    return len(body).to_bytes(HEADER_SIZE, "big") + body


def frame_length(header: bytes, limit: int = MAX_FRAME) -> int:
    """Validate a 4-byte header and return the body length."""
    if len(header) != HEADER_SIZE:
        raise ProtocolError("truncated frame header")
    length = int.from_bytes(header, "big")
    if length > limit:
        raise ProtocolError("frame of %d bytes exceeds the %d-byte limit" % (length, limit))
    return length


def decode_body(body: bytes) -> dict:
    """Decode a frame body that must hold one JSON object."""
    message = loads(body)
    if type(message) is not dict:
        raise ProtocolError("a frame must hold a JSON object")
    return message  # type: ignore[return-value]
