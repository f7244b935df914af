"""Text rendering of snapshots, stacks and process lists (pure functions).

Snapshot nodes (docs/DESIGN.md, "Snapshots") are rendered in a Python-like
notation. Nothing here talks to a target; the CLI prints what these return.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .models import ThreadStack, Value
from .procs import PythonProcess

INDENT = "  "

_OPEN_CLOSE = {
    "list": ("[", "]"), "tuple": ("(", ")"), "set": ("{", "}"), "frozenset": ("frozenset({", "})"),
    "dict": ("{", "}"),
}


def _ellipsis(node: dict[str, Any], shown: int) -> str:
    total = node.get("len")
    if isinstance(total, int) and total > shown:
        return "… %s more" % format(total - shown, ",")
    return "…"


def inline(node: dict[str, Any]) -> str:
    """A one-line rendering of a node."""
    kind = node.get("kind")
    tname = node.get("type", "?")
    if kind == "scalar":
        return str(node.get("text", node.get("value")))
    if kind in ("str", "bytes"):
        text = str(node.get("text", ""))
        if node.get("truncated"):
            return "%s… (%s chars)" % (text, format(node.get("len", 0), ","))
        return text
    if kind in ("seq", "set", "map"):
        opener, closer = _OPEN_CLOSE.get(tname, (tname + "([", "])"))
        if kind == "map":
            parts = ["%s: %s" % (inline(k), inline(v)) for k, v in node.get("items", [])]
        else:
            parts = [inline(i) for i in node.get("items", [])]
        if node.get("truncated"):
            parts.append(_ellipsis(node, len(parts)))
        if tname == "tuple" and len(parts) == 1 and not node.get("truncated"):
            parts[0] += ","
        return opener + ", ".join(parts) + closer
    if kind == "object":
        attrs = node.get("attrs") or {}
        inner = ", ".join("%s=%s" % (k, inline(v)) for k, v in attrs.items())
        if node.get("truncated"):
            inner += ", …" if inner else "…"
        return "<%s %s>" % (tname, inner) if inner else "<%s>" % tname
    if kind == "redacted":
        return "<redacted>"
    if kind == "property":
        return "<property %s: not run (--allow-properties)>" % node.get("text", "")
    if kind == "cut":
        return "<%s …>" % tname
    if kind == "cycle":
        return "<cycle: %s>" % tname
    if kind == "opaque":
        return "<%s %s>" % (tname, node.get("text", "")) if node.get("text") else "<%s>" % tname
    return "<%s>" % tname


def pretty(node: dict[str, Any], width: int = 100, indent: int = 0) -> str:
    """Multi-line rendering: inline when it fits, else one item per line."""
    one = inline(node)
    if len(one) + indent * len(INDENT) <= width:
        return one
    kind = node.get("kind")
    pad = INDENT * (indent + 1)
    tname = node.get("type", "?")
    if kind in ("seq", "set", "map"):
        opener, closer = _OPEN_CLOSE.get(tname, (tname + "([", "])"))
        lines = [opener]
        if kind == "map":
            for k, v in node.get("items", []):
                lines.append("%s%s: %s," % (pad, inline(k), pretty(v, width, indent + 1)))
        else:
            for item in node.get("items", []):
                lines.append("%s%s," % (pad, pretty(item, width, indent + 1)))
        if node.get("truncated"):
            lines.append(pad + _ellipsis(node, len(node.get("items", []))))
        lines.append(INDENT * indent + closer)
        return "\n".join(lines)
    if kind == "object":
        lines = ["<%s" % tname]
        for k, v in (node.get("attrs") or {}).items():
            lines.append("%s%s=%s" % (pad, k, pretty(v, width, indent + 1)))
        if node.get("truncated"):
            lines.append(pad + "…")
        lines.append(INDENT * indent + ">")
        return "\n".join(lines)
    return one


def render_value(value: Value, width: int = 100) -> str:
    return pretty(value.node, width)


def render_namespace(node: dict[str, Any], width: int = 100, indent: int = 0) -> list[str]:
    """`name = value` lines for a locals/globals map node."""
    pad = INDENT * indent
    lines = []
    for key, val in node.get("items", []):
        name = key.get("text", "?") if isinstance(key, dict) else str(key)
        name = name[1:-1] if name[:1] in "'\"" and name[-1:] == name[:1] else name
        body = pretty(val, width - len(pad) - len(name) - 3, indent)
        lines.append("%s%s = %s" % (pad, name, body))
    if node.get("truncated"):
        lines.append(pad + _ellipsis(node, len(node.get("items", []))))
    return lines


def render_stacks(stacks: Iterable[ThreadStack], *, width: int = 100) -> str:
    out: list[str] = []
    for st in stacks:
        t = st.thread
        flags = [f for f, on in (("main", t.is_main), ("daemon", t.daemon)) if on]
        native = " native %d" % t.native_id if t.native_id is not None else ""
        out.append('Thread %d "%s"%s%s' % (
            t.ident, t.name or "?", native, " (%s)" % ", ".join(flags) if flags else ""))
        if not st.frames:
            out.append("  (no Python frames)")
        for f in st.frames:
            out.append("  #%-2d %s (%s:%d)" % (f.index, f.qualname, f.file, f.line))
            if f.source:
                out.append("        " + f.source)
            if f.locals is not None:
                out.extend(render_namespace(f.locals.node, width, indent=4))
        if st.frames_cut:
            out.append("  … deeper frames not shown")
        out.append("")
    return "\n".join(out).rstrip("\n")


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "K", "M", "G", "T"):
        if size < 1024 or unit == "T":
            return ("%.0f%s" if unit == "B" else "%.1f%s") % (size, unit)
        size /= 1024
    return "%dB" % n


def render_processes(rows: Iterable[PythonProcess], width: int = 120) -> str:
    header = "%7s  %-10s %-6s %6s %8s %4s  %-8s %s" % ("PID", "USER", "PYTHON", "CPU%", "RSS",
                                                       "THR", "AGENT", "COMMAND")
    lines = [header]
    for p in rows:
        line = "%7d  %-10s %-6s %6.1f %8s %4d  %-8s %s" % (
            p.pid, p.user[:10], p.version, p.cpu_percent, human_bytes(p.rss), p.num_threads,
            p.agent or "-", p.command)
        lines.append(line[:width])
    return "\n".join(lines)
