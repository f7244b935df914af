"""Measure 3: warm query latency with an attached session (round trip of one
request, p50/p99), against the anchors' cold dumps of the same 50-thread target."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from payloads import wire

from . import stats, tools
from .config import Config, python_version
from .report import Goal, Section, fmt, fmt_ratio
from .targets import Target

THREADS = 50
BIG_LIMITS = {"max_snapshot_items": 10_000, "max_snapshot_nodes": 10_010}


def timed(fn: Callable[[], object], n: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    clock = time.perf_counter
    for _ in range(n):
        t = clock()
        fn()
        out.append((clock() - t) * 1000.0)
    return out


def reply_breakdown(session: Any, op: str, args: dict, n: int) -> dict[str, float] | None:
    """Where one round trip's time goes: the agent (request sent -> first reply
    byte: work + encoding in the target), receiving, decoding with our codec
    (payloads/wire.py, pure Python on both sides), and, for comparison, the
    stdlib's C `json.loads` on the same bytes. Diagnostic only: it drives the
    session's private connection and returns None if that is not there."""
    conn = getattr(session, "_conn", None)
    sock = getattr(conn, "sock", None)
    if sock is None or not hasattr(wire, "recv_exact") or not hasattr(wire, "decode_body"):
        return None
    parts: dict[str, list[float]] = {"agent": [], "receive": [], "decode (ours)": [],
                                     "decode (json.loads)": [], "bytes": []}
    clock = time.perf_counter
    for _ in range(n):
        conn._next_id += 1
        t0 = clock()
        sock.sendall(wire.encode_frame({"id": conn._next_id, "op": op, **args}))
        header = wire.recv_exact(sock, wire.HEADER_SIZE)
        t1 = clock()
        body = wire.recv_exact(sock, int.from_bytes(header, "big"))
        t2 = clock()
        reply = wire.decode_body(body)
        t3 = clock()
        json.loads(body)
        t4 = clock()
        if reply.get("id") != conn._next_id or not reply.get("ok"):
            return None
        for key, value in (("agent", t1 - t0), ("receive", t2 - t1), ("decode (ours)", t3 - t2),
                           ("decode (json.loads)", t4 - t3)):
            parts[key].append(value * 1000.0)
        parts["bytes"].append(float(len(body)))
    return {k: stats.median(v) for k, v in parts.items()}


def run(cfg: Config) -> Section:
    n_small = cfg.reps(2000, 200)
    n_big = cfg.reps(100, 10)
    n_anchor = cfg.reps(10, 2)
    results: dict[str, list[float]] = {}
    checks: dict[str, object] = {}
    stack_key = "stack, %d threads" % (THREADS + 1)
    big_key = "eval of a 10,000-item list (all shown)"
    with Target(cfg.python, threads=THREADS) as target:
        time.sleep(0.3)
        with tools.attach(target.pid) as s:
            checks["threads_seen"] = len(s.stack())
            checks["items_10k"] = s.eval("items_10k", limits=BIG_LIMITS).node.get("len")
            shown = len(s.eval("items_10k", limits=BIG_LIMITS).node.get("items", []))
            checks["items_shown"] = shown
            cases: list[tuple[str, Callable[[], object], int]] = [
                ("ping", s.ping, n_small),
                ("eval `1+1`", lambda: s.eval("1+1"), n_small),
                ("eval `config['port']`", lambda: s.eval("config['port']"), n_small),
                (stack_key, s.stack, n_big),
                (big_key, lambda: s.eval("items_10k", limits=BIG_LIMITS), n_big),
            ]
            for name, fn, n in cases:
                results[name] = timed(fn, n)
            n_parts = cfg.reps(20, 3)
            breakdown = {
                stack_key: reply_breakdown(s, "stack", {"redact": True}, n_parts),
                big_key: reply_breakdown(s, "eval", {"expr": "items_10k", "redact": True,
                                                     "limits": BIG_LIMITS}, n_parts),
            }
        anchors = [t for t in (tools.py_spy_dump(), tools.pystack_remote())
                   if t.missing() is None]
        for tool in anchors:
            walls = []
            for _ in range(n_anchor):
                r = tool.run(target.pid)
                if r.ok:
                    walls.append(r.wall_ms)
                time.sleep(0.1)
            results["%s (cold, no session)" % tool.name] = walls

    stack_p50 = stats.median(results[stack_key])
    section = Section("warm", "3. Warm query latency (attached session, round trip)")
    section.columns = ["query", "n", "p50 ms", "p99 ms", "max ms", "× our stack p50"]
    for name, values in results.items():
        st = stats.summary(values)
        section.rows.append([name, st["n"], st["median"], st["p99"], st["max"],
                             fmt_ratio(stats.ratio(st["median"], stack_p50))
                             if "stack" in name or "cold" in name else ""])
    rows = []
    for name, parts in breakdown.items():
        if parts is None:
            continue
        rows.append([name, parts["bytes"] / 1024.0, parts["agent"], parts["receive"],
                     parts["decode (ours)"], parts["decode (json.loads)"]])
    if rows:
        section.extra_tables.append((
            "Where a big reply's time goes (ms, medians of %d raw round trips on the same "
            "session):" % cfg.reps(20, 3),
            ["reply", "KB", "agent (to first byte)", "receive", "decode, our codec",
             "decode, json.loads (for comparison)"], rows))
    trivial = max(stats.median(results["ping"]), stats.median(results["eval `1+1`"]))
    section.goals = [
        Goal("trivial query p50 ≤ 1 ms", trivial <= 1.0,
             "ping %s ms, eval `1+1` %s ms" % (fmt(stats.median(results["ping"]), 2),
                                               fmt(stats.median(results["eval `1+1`"]), 2))),
    ]
    section.notes = [
        "Target: CPython %s with %d sleeping threads (plus main); one session over the Unix "
        "socket; each query timed from the call to the decoded reply, back to back; eval and "
        "stack requests are written to the audit log (the bench points it at a temp file), "
        "ping is not. Stack replies include each frame's source line, read by the client."
        % (python_version(cfg.python), THREADS),
        "The 10,000-item snapshot raises `max_snapshot_items` to 10,000 and "
        "`max_snapshot_nodes` to 10,010 for that query (defaults 100 and 2,000); it showed "
        "%s of %s items." % (checks.get("items_shown"), checks.get("items_10k")),
        "The anchors have no session: their rows are whole cold runs, for scale.",
    ]
    section.data = {"latencies_ms": results, "checks": checks, "breakdown": breakdown}
    return section
