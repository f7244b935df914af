"""Text rendering of snapshots, stacks and process lists (pure functions).

Snapshot nodes (docs/DESIGN.md, "Snapshots") are rendered in a Python-like
notation. Nothing here talks to a target; the CLI prints what these return.
"""

from __future__ import annotations

from collections.abc import Iterable

from ._text import term_safe as term_safe  # re-exported for the TUI (public API)
from .models import ThreadStack, Value
from .procs import PythonProcess

TYPE_CHECKING = False  # typing's constant without importing typing (mypy reads it as True)
if TYPE_CHECKING:  # the census/task/memory renderers are given these
    from typing import Any

    from .diagnostics import (
        Census,
        CensusDelta,
        Dump,
        GreenletInfo,
        Greenlets,
        HubInfo,
        MemorySummary,
        TaskInfo,
        TaskNode,
    )

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
    """A one-line rendering of a node (the target's text escaped: term_safe)."""
    return term_safe(_inline(node))


def _inline(node: dict[str, Any]) -> str:
    kind = node.get("kind")
    tname = str(node.get("type", "?"))
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
        text = str(node.get("text", ""))
        if text.startswith("<"):  # the agent's own `<function f>`, `<module os>`
            return text
        return "<%s %s>" % (tname, text) if text else "<%s>" % tname
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
        opener, closer = _OPEN_CLOSE.get(tname, (term_safe(tname) + "([", "])"))
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
        lines = ["<%s" % term_safe(tname)]
        for k, v in (node.get("attrs") or {}).items():
            lines.append("%s%s=%s" % (pad, term_safe(k), pretty(v, width, indent + 1)))
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
        lines.append("%s%s = %s" % (pad, term_safe(name), body))
    if node.get("truncated"):
        lines.append(pad + _ellipsis(node, len(node.get("items", []))))
    return lines


def render_stacks(stacks: Iterable[ThreadStack], *, width: int = 100,
                  ids: bool = False) -> str:
    """Every thread's frames; with `ids`, each frame line ends with its
    frame id (`id=0x...`, for `eval --frame-id`)."""
    out: list[str] = []
    for st in stacks:
        t = st.thread
        flags = [f for f, on in (("main", t.is_main), ("daemon", t.daemon)) if on]
        native = " native %d" % t.native_id if t.native_id is not None else ""
        out.append('Thread %d "%s"%s%s' % (
            t.ident, term_safe(t.name or "?"), native, " (%s)" % ", ".join(flags) if flags else ""))
        if not st.frames:
            out.append("  (no Python frames)")
        for f in st.frames:
            line = "  #%-2d %s (%s:%d)" % (f.index, term_safe(f.qualname),
                                          term_safe(f.file), f.line)
            if ids and f.frame_id is not None:
                line += "  id=0x%x" % f.frame_id
            out.append(line)
            if f.source:
                out.append("        " + term_safe(f.source))
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


def render_processes(rows: Iterable[PythonProcess], width: int | None = 120) -> str:
    """The `ps` table; COMMAND is cut at `width` columns (None: never cut)."""
    header = "%7s  %-10s %-6s %6s %8s %4s  %-8s %s" % ("PID", "USER", "PYTHON", "CPU%", "RSS",
                                                       "THR", "AGENT", "COMMAND")
    lines = [header]
    for p in rows:
        line = "%7d  %-10s %-6s %6.1f %8s %4d  %-8s %s" % (
            p.pid, p.user[:10], p.version, p.cpu_percent, human_bytes(p.rss), p.num_threads,
            p.agent or "-", p.command)
        lines.append(line[:width] if width else line)
    return "\n".join(lines)


# -- object census, memory summary, asyncio tasks, dumps ------------------------


def _n(value: int) -> str:
    return format(value, ",")


def _signed(value: int) -> str:
    return ("+" if value > 0 else "") + format(value, ",")


def _signed_bytes(value: int) -> str:
    return ("+" if value >= 0 else "-") + human_bytes(abs(value))


def _ms(seconds: float) -> str:
    return "%.0f ms" % (seconds * 1000) if seconds < 1 else "%.2f s" % seconds


def census_rows(census: Census) -> list[tuple[str, str, str]]:
    """(count, size, type) cells for a table of a census (TUI and CLI)."""
    return [(_n(e.count), human_bytes(e.size), e.type) for e in census.entries]


def census_summary(census: Census) -> str:
    """One line: how many objects, how big, how long it took, what it cost."""
    line = ("%s objects tracked by the GC (%s shallow) in %s types; census took %s, "
            "longest GIL hold %s" % (
                _n(census.total_objects), human_bytes(census.total_size),
                _n(census.distinct_types), _ms(census.duration),
                _ms(max(census.max_hold, census.list_pause))))
    if not census.complete:
        line += "  [PARTIAL: stopped by %s; counts are low]" % (census.stopped or "a budget")
    return line


def render_census(census: Census, width: int = 100) -> str:
    lines = [census_summary(census), ""]
    lines.append("%12s %10s  %s" % ("COUNT", "SIZE", "TYPE"))
    for count, size, name in census_rows(census):
        lines.append(("%12s %10s  %s" % (count, size, name))[:width])
    shown = len(census.entries)
    if shown < census.distinct_types:
        lines.append("(top %d of %s types by %s)" % (shown, _n(census.distinct_types),
                                                    census.sort))
    if census.frozen:
        lines.append("(%s objects frozen by gc.freeze() are not counted)" % _n(census.frozen))
    return "\n".join(lines)


def census_diff_rows(deltas: Iterable[CensusDelta],
                     seconds: float) -> list[tuple[str, str, str, str, str]]:
    """(count delta, count now, size delta, per second, type) cells for a growth table."""
    rows = []
    for d in deltas:
        rate = d.count_delta / seconds if seconds > 0 else 0.0
        rows.append((_signed(d.count_delta), _n(d.count_after), _signed_bytes(d.size_delta),
                     "%.1f" % rate, d.type + ("  (new)" if d.new else "")))
    return rows


def render_census_diff(deltas: list[CensusDelta], before: Census, after: Census,
                       width: int = 100) -> str:
    seconds = max(0.0, after.taken_at - before.taken_at)
    lines = ["Growth over %.1f s: %s -> %s objects (%s), %s -> %s (%s)" % (
        seconds, _n(before.total_objects), _n(after.total_objects),
        _signed(after.total_objects - before.total_objects), human_bytes(before.total_size),
        human_bytes(after.total_size), _signed_bytes(after.total_size - before.total_size))]
    for label, census in (("first", before), ("second", after)):
        if not census.complete:
            lines.append("warning: the %s census is partial (%s)" % (label, census.stopped))
    lines.append("")
    if not deltas:
        lines.append("no type grew")
        return "\n".join(lines)
    lines.append("%10s %12s %10s %8s  %s" % ("+COUNT", "COUNT", "+SIZE", "PER S", "TYPE"))
    for row in census_diff_rows(deltas, seconds):
        lines.append(("%10s %12s %10s %8s  %s" % row)[:width])
    return "\n".join(lines)


def _by_loop(tasks: Iterable[TaskInfo]) -> dict[int | None, list[TaskInfo]]:
    groups: dict[int | None, list[TaskInfo]] = {}
    for t in tasks:
        groups.setdefault(t.loop.id if t.loop else None, []).append(t)
    return groups


def task_tree(tasks: Iterable[TaskInfo]) -> list[TaskNode]:
    """A forest: roots are tasks no other listed task waits on; children are the
    tasks each one waits on (await, gather, TaskGroup). Cycles are cut."""
    tasks = list(tasks)
    by_id = {t.id: t for t in tasks}
    awaited = {child for t in tasks for child in t.awaiting if child in by_id}

    from .diagnostics import TaskNode

    def build(task: TaskInfo, path: frozenset[int]) -> TaskNode:
        if task.id in path:
            return TaskNode(task, (), cycle=True)
        inner = path | {task.id}
        children = tuple(build(by_id[c], inner) for c in task.awaiting if c in by_id)
        return TaskNode(task, children)

    roots = [t for t in tasks if t.id not in awaited]
    if not roots and tasks:  # everything waits on something: a cycle; start anywhere
        roots = tasks[:1]
    return [build(t, frozenset()) for t in roots]


def _task_items(node: TaskNode) -> tuple[str, list[Any]]:
    """(label, children) of a task for the tree drawing: its await chain nested,
    outermost first, and the tasks it waits on under the innermost link."""
    t = node.task
    flags = [t.state]
    if t.current:
        flags.append("running")
    if t.exception:
        flags.append("raised " + t.exception)
    label = "(T) %s [%s]" % (t.label, ", ".join(flags))
    if node.cycle:
        return label + " (await cycle: shown above)", []
    children: list[Any] = [_task_items(c) for c in node.children]
    links = [link for link in t.chain if link.kind in ("coroutine", "generator")]
    if not node.children and t.state == "pending":
        awaited = t.waiter or next((lk.name for lk in t.chain if lk.kind == "awaitable"), None)
        if awaited:
            children = [("awaiting " + awaited, [])]
    if any(link.kind == "cut" for link in t.chain):
        children = [("… deeper links not shown", [])] + children
    for link in reversed(links):
        children = [(" " + link.label, children)]
    return label, children


def _draw(items: list[Any], prefix: str, out: list[str]) -> None:
    for i, (label, children) in enumerate(items):
        last = i == len(items) - 1
        out.append(prefix + ("└── " if last else "├── ") + label)
        _draw(children, prefix + ("    " if last else "│   "), out)


def task_tree_lines(tasks: Iterable[TaskInfo]) -> list[str]:
    """The pstree-like drawing of one loop's tasks (CPython 3.14 `asyncio pstree`)."""
    out: list[str] = []
    _draw([_task_items(n) for n in task_tree(tasks)], "", out)
    return out


def loop_label(task: TaskInfo) -> str:
    loop = task.loop
    if loop is None:
        return "Tasks without a loop"
    where = ('thread "%s" (ident %d)' % (loop.thread_name or "?", loop.thread)
             if loop.thread is not None else "no thread")
    if loop.closed:
        state = "closed"
    elif loop.running is None:
        state = "state unknown (no thread is inside its run_forever/run_until_complete)"
    else:
        state = "running" if loop.running else "stopped"
    return "Event loop %s at %#x on %s, %s" % (loop.type, loop.id, where, state)


def render_tasks(tasks: Iterable[TaskInfo], width: int = 200) -> str:
    tasks = list(tasks)
    if not tasks:
        return "no asyncio tasks"
    out: list[str] = []
    for group in _by_loop(tasks).values():
        out.append("%s: %d task%s" % (loop_label(group[0]), len(group),
                                      "" if len(group) == 1 else "s"))
        out.extend(line[:width] for line in task_tree_lines(group))
        out.append("")
    return "\n".join(out).rstrip("\n")


def _thread_text(ident: int | None, name: str | None) -> str:
    if ident is None:
        return "an unknown thread"
    return 'thread "%s" (ident %d)' % (name, ident) if name else "thread ident %d" % ident


def _hub_line(hub: HubInfo, state: str) -> str:
    pending = ("%d pending callbacks" % hub.pending_callbacks
               if hub.pending_callbacks is not None
               else "pending callbacks not readable (kept in the loop's C state)")
    return "Hub %s at %#x on %s, %s: loop %s, %s" % (
        hub.type, hub.id, _thread_text(hub.thread, hub.thread_name), state,
        hub.loop_type or "?", pending)


def _greenlet_line(g: GreenletInfo) -> str:
    role = "Hub" if g.is_hub else ("Main greenlet" if g.is_main else "Greenlet")
    where = " on " + _thread_text(g.thread, g.thread_name) if g.thread is not None else ""
    return "%s %s at %#x (%s) [%s]%s" % (role, g.label, g.id, g.type, g.state, where)


def greenlets_lines(result: Greenlets, width: int = 160) -> list[str]:
    """Hubs, then every greenlet with its stack (innermost frame first)."""
    states = {g.id: g.state for g in result.greenlets}
    out = [_hub_line(h, states.get(h.id, "?"))[:width] for h in result.hubs]
    if result.hubs:
        out.append("")
    counts: dict[str, int] = {}
    for g in result.greenlets:
        counts[g.state] = counts.get(g.state, 0) + 1
    summary = ", ".join("%d %s" % (n, state) for state, n in sorted(counts.items()))
    shown = len(result.greenlets)
    out.append("%d greenlet%s%s%s" % (result.total, "" if result.total == 1 else "s",
                                       " (%s)" % summary if summary else "",
                                       "" if shown == result.total else "; %d listed" % shown))
    for g in result.greenlets:
        out.append(_greenlet_line(g)[:width])
        for f in g.frames:
            out.append(("  #%-2d %s (%s:%d)" % (f.index, f.qualname, f.file, f.line))[:width])
        if g.frames_cut:
            out.append("  … deeper frames not shown")
        if not g.frames and g.state == "running":
            out.append("  (running now: its frames are its thread's stack, `inspector stack`)")
    if not result.complete:
        out.append("(the heap walk ran out of time: greenlets may be missing; raise "
                   "--max-seconds)")
    return out


def render_greenlets(result: Greenlets, width: int = 160) -> str:
    return "\n".join(greenlets_lines(result, width))


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return "%dd %dh" % (days, hours)
    if hours:
        return "%dh %dm" % (hours, minutes)
    return "%dm %ds" % (minutes, secs) if minutes else "%ds" % secs


def memory_lines(summary: MemorySummary) -> list[str]:
    """The memory summary as text lines (CLI, TUI, show)."""
    out = []
    p = summary.process
    if p is not None:
        fds = _n(p.num_fds) if p.num_fds is not None else "?"
        out.append("Process: RSS %s, VMS %s, CPU %.1f s user + %.1f s system, %d threads, "
                   "%s fds, up %s" % (human_bytes(p.rss), human_bytes(p.vms), p.cpu_user,
                                      p.cpu_system, p.num_threads, fds, _duration(p.uptime)))
    out.append("Garbage collector: %s; thresholds %s; counts now %s" % (
        "enabled" if summary.gc_enabled else "DISABLED",
        "/".join(str(n) for n in summary.gc_thresholds),
        "/".join(str(n) for n in summary.gc_counts)))
    out.append("  %3s %12s %12s %14s" % ("GEN", "COLLECTIONS", "COLLECTED", "UNCOLLECTABLE"))
    for g in summary.generations:
        cells = [_n(v) if v is not None else "?"
                 for v in (g.collections, g.collected, g.uncollectable)]
        out.append("  %3s %12s %12s %14s" % (str(g.index), *cells))
    garbage = _n(summary.garbage) if summary.garbage is not None else "?"
    out.append("  gc.garbage: %s objects; frozen by gc.freeze(): %s" % (garbage,
                                                                         _n(summary.frozen)))
    tm = summary.tracemalloc
    if tm is None:
        out.append("tracemalloc: not tracing, not imported by the target (the inspector never "
                   "starts it)")
    elif tm.tracing is None:
        out.append("tracemalloc: not read (%s)" % (tm.note or "unavailable"))
    elif not tm.tracing:
        out.append("tracemalloc: imported but not tracing (the inspector never starts it)")
    else:
        since = "" if tm.imported else " since startup (-X tracemalloc or PYTHONTRACEMALLOC)"
        out.append("tracemalloc: tracing%s; %s now, peak %s (its own overhead %s, traceback "
                   "limit %s)" % (since, human_bytes(tm.current or 0), human_bytes(tm.peak or 0),
                                  human_bytes(tm.overhead or 0), tm.traceback_limit))
        if tm.top:
            out.append("  %10s %8s  %s" % ("SIZE", "BLOCKS", "SITE"))
            for site in tm.top:
                out.append("  %10s %8s  %s:%d" % (human_bytes(site.size), _n(site.count),
                                                   site.file, site.line))
        if tm.note:
            out.append("  " + tm.note)
    return out


def render_memory(summary: MemorySummary) -> str:
    return "\n".join(memory_lines(summary))


def render_dump(dump: Dump, width: int = 100) -> str:
    """A whole dump as text: what `inspector show dump.json` prints."""
    t = dump.target
    out = ["Dump of process %d (Python %s) on %s, taken %s by %s" % (
        t.pid, ".".join(str(n) for n in t.python), t.host or "?", dump.created, dump.tool),
        "Command: %s" % t.cmdline]
    notes = []
    if dump.with_locals:
        notes.append("with locals" + (", secrets redacted" if dump.redacted
                                      else ", SECRETS NOT REDACTED"))
    if notes:
        out.append("(%s)" % "; ".join(notes))
    sections: list[tuple[str, str | None]] = [
        ("Threads", render_stacks(dump.threads, width=width) if dump.threads else None),
        ("asyncio tasks", render_tasks(dump.tasks, width) if dump.tasks is not None else None),
        ("Memory", render_memory(dump.memory) if dump.memory is not None else None),
        ("Object census", render_census(dump.census, width) if dump.census else None),
    ]
    for title, body in sections:
        key = title.split()[-1].lower()
        if body is None and key not in dump.errors and title == "Object census":
            continue
        out.extend(["", "== %s ==" % title])
        if body is not None:
            out.append(body)
        else:
            out.append("(not in this dump: %s)" % dump.errors.get(key, "not collected"))
    return "\n".join(out)
