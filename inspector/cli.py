"""The `inspector` command line: the only module of the library that prints.

Each subcommand is a small class with `add_arguments` and `run`; `main`
returns the exit code (docs/DESIGN.md "Contracts"): 0 ok, 1 the query raised, 2
usage, 3 refused by the sandbox, 4 budget exceeded, 5 could not attach,
6 target lost, 7 the frame named moved or its call returned (a race: retry).
Errors are one line on stderr; `--debug` adds the traceback.
`--json` prints exactly one JSON document on stdout.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from collections.abc import Sequence
from types import SimpleNamespace

from . import _log
from ._inject import BACKENDS, DEFAULT_INJECTOR
from ._record import asdict, is_record
from ._text import SafeStream, json_dumps
from .errors import AttachError, Denied, FrameGone, InspectorError, UsageError

TYPE_CHECKING = False  # typing's constant without importing typing (mypy reads it as True)
if TYPE_CHECKING:
    import argparse
    from typing import Any, NoReturn

    from .api import SessionAPI
    from .diagnostics import Census

EXIT_OK = 0


class _ArgumentsError(Exception):
    """argparse found a usage error; main() reports it (one line, and one
    JSON document with --json)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def _terminal_columns() -> int:
    """`shutil.get_terminal_size().columns`: $COLUMNS if positive, else the
    columns of the terminal on sys.__stdout__, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    stdout = sys.__stdout__
    if columns <= 0 and stdout is not None:
        try:
            columns = os.get_terminal_size(stdout.fileno()).columns
        except (ValueError, OSError):  # closed, detached, not a terminal
            columns = 0
    return columns or 80


def _wants_json(argv: Sequence[str]) -> bool:
    """--json anywhere before `--` (argparse also takes a prefix like --js)."""
    for token in argv:
        if token == "--":
            return False
        if len(token) >= 4 and "--json".startswith(token):
            return True
    return False


def _emit_error(kind: str, message: str) -> None:
    _emit_json({"ok": False, "error": {"kind": kind, "message": message}})


def _emit_json(doc: dict[str, Any]) -> None:
    sys.stdout.write(json_dumps(doc, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if is_record(obj) and not isinstance(obj, type):
        return asdict(obj)
    raise TypeError("cannot serialise %s" % type(obj).__name__)


def _type_error(message: str) -> Exception:
    """argparse's ArgumentTypeError: the type functions below run inside
    argparse (already imported then), or on the fast path (see _fast_args)."""
    import argparse

    return argparse.ArgumentTypeError(message)


def _pid(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise _type_error("PID must be a number, not %r" % text) from None
    if value <= 0:
        raise _type_error("PID must be positive")
    return value


def _thread_selector(text: str) -> int | str:
    try:
        return int(text, 0)
    except ValueError:
        return text


class Command:
    """Base: subclasses set `name`/`help` and implement add_arguments/run."""

    name = ""
    help = ""
    usage_exit_code = 2

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        pass

    def run(self, args: argparse.Namespace) -> int:
        raise NotImplementedError


# The defaults of the options every attaching command has, and of `stack`'s
# own: the parser's, and those of the Namespace _fast_args builds.
_ATTACH_DEFAULTS: dict[str, Any] = {"injector": DEFAULT_INJECTOR, "timeout": 10.0,
                                    "no_redact": False}
_STACK_DEFAULTS: dict[str, Any] = {"locals": False, "thread": None, "ids": False,
                                   "json": False}


def _attach_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pid", type=_pid, metavar="PID", help="target process id")
    parser.add_argument("--injector", choices=BACKENDS, default=_ATTACH_DEFAULTS["injector"],
                        help="injection backend (default: native, no gdb needed)")
    parser.add_argument("--timeout", type=float, default=_ATTACH_DEFAULTS["timeout"],
                        metavar="S", help="seconds to wait for the agent (default: 10)")
    parser.add_argument("--no-redact", action="store_true",
                        default=_ATTACH_DEFAULTS["no_redact"],
                        help="show values whose names look like secrets (logged)")


def _session(args: argparse.Namespace) -> SessionAPI:
    from .session import attach

    return attach(args.pid, injector=args.injector, timeout=args.timeout,
                  redact=not args.no_redact)


class PsCommand(Command):
    name = "ps"
    help = "list Python processes (pid, user, version, CPU, RSS, command)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args: argparse.Namespace) -> int:
        from ._record import replace
        from ._resident import resident_pids
        from .procs import list_python_processes
        from .render import render_processes

        residents = resident_pids()
        rows = sorted((replace(p, agent="resident") if p.pid in residents else p
                       for p in list_python_processes()), key=lambda p: p.pid)
        if args.json:
            _emit_json({"ok": True, "value": [p.to_json() for p in rows]})
        else:
            # Piped without COLUMNS: whole command lines (a pipe has no width)
            print(render_processes(rows, _terminal_width()))
        return EXIT_OK


class StackCommand(Command):
    name = "stack"
    help = "every thread's stack (with --locals, each frame's locals)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _attach_options(parser)
        parser.add_argument("--locals", action="store_true", default=_STACK_DEFAULTS["locals"],
                            help="show each frame's locals")
        parser.add_argument("--thread", type=_thread_selector, metavar="T",
                            default=_STACK_DEFAULTS["thread"],
                            help="only this thread (ident, native id or name)")
        parser.add_argument("--ids", action="store_true", default=_STACK_DEFAULTS["ids"],
                            help="show each frame's id, for `eval --frame-id`")
        parser.add_argument("--json", action="store_true", default=_STACK_DEFAULTS["json"],
                            help="one JSON document")

    def run(self, args: argparse.Namespace) -> int:
        from .render import render_stacks

        with _session(args) as session:
            stacks = session.stack(args.thread, locals=args.locals)
        if args.json:
            _emit_json({"ok": True, "value": [asdict(s) for s in stacks]})
        else:
            print(render_stacks(stacks, width=_width(), ids=args.ids))
        return EXIT_OK


class EvalCommand(Command):
    name = "eval"
    help = "evaluate one sandboxed, read-only query in the target"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _attach_options(parser)
        parser.add_argument("expr", metavar="EXPR", help='a Python expression, e.g. "len(cache)"')
        parser.add_argument("--thread", type=_thread_selector, metavar="T",
                            help="evaluate in this thread's frame (ident, native id or name)")
        parser.add_argument("--frame", type=int, metavar="N",
                            help="frame number in that thread (0 = innermost; default 0)")
        parser.add_argument("--frame-id", type=_frame_id, metavar="ID",
                            help="that very call (an id from `stack --ids`), wherever it is "
                                 "on the stack; exit 7 once it has returned")
        parser.add_argument("--expect-function", metavar="NAME",
                            help="refuse (exit 7, naming what runs there) unless frame N runs "
                                 "this function (name or qualified name)")
        parser.add_argument("--module", metavar="NAME",
                            help="evaluate in this module's globals (default __main__)")
        parser.add_argument("--allow-properties", action="store_true",
                            help="run property getters of target classes (may run target code)")
        parser.add_argument("--isolated", action="store_true",
                            help="run the query in a disposable fork of the target")
        parser.add_argument("--allow-calls", action="store_true",
                            help="explore mode (needs --isolated): call methods, properties, "
                                 "repr(), len(), iterate - in the fork only")
        parser.add_argument("--isolated-rss-limit", type=int, metavar="MB",
                            help="refuse --isolated above this target RSS (default 1024: "
                                 "forking stalls the target ~25 ms per GB)")
        parser.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args: argparse.Namespace) -> int:
        from .render import render_value

        if args.allow_calls and not args.isolated:
            raise Denied("--allow-calls runs target code (methods, properties, repr, "
                         "iteration), which could change or crash the target; it is only "
                         "offered in a disposable fork: add --isolated")

        from . import pin

        pin.check_options(args.thread, args.frame, args.frame_id, args.expect_function)
        with _session(args) as session:
            frame, frame_id = _eval_frame(session, args)
            try:
                value = session.eval(args.expr, args.thread, frame, module=args.module,
                                     allow_properties=args.allow_properties,
                                     isolated=args.isolated, allow_calls=args.allow_calls,
                                     max_isolated_rss=(args.isolated_rss_limit * 1024 * 1024
                                                       if args.isolated_rss_limit else None),
                                     frame_id=frame_id)
            except FrameGone:
                if frame_id is None:
                    raise
                raise pin.explain_gone(session, frame_id, args.thread,
                                       args.expect_function) from None
        if args.json:
            _emit_json({"ok": True, "value": value.node})
        else:
            print(render_value(value, _width()))
        return EXIT_OK


def _frame_id(text: str) -> int:
    from .pin import parse_frame_id

    try:
        return parse_frame_id(text)
    except ValueError as e:
        raise _type_error(str(e)) from None


def _eval_frame(session: SessionAPI, args: argparse.Namespace) -> tuple[int | None, int | None]:
    """(frame index, frame id) to evaluate in: an index is pinned to the
    call it names (by its frame id) when the caller said what they expect
    there (--expect-function, or --frame with --frame-id)."""
    from .pin import pin_frame

    if args.thread is None:
        return None, None
    if args.frame is None and (args.frame_id is not None or not args.expect_function):
        return (0 if args.frame_id is None else None), args.frame_id
    if args.frame is not None and args.frame_id is None and not args.expect_function:
        return args.frame, None
    pinned = pin_frame(session, args.thread, args.frame or 0,
                       function=args.expect_function, frame_id=args.frame_id)
    if pinned.frame_id is None:  # an agent without frame ids: the index, as before
        return pinned.index, None
    return None, pinned.frame_id


class AttachCommand(Command):
    name = "attach"
    help = "check that the agent can attach; with --keep leave it resident for later commands"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _attach_options(parser)
        parser.add_argument("--keep", action="store_true",
                            help="leave a resident agent that later commands reuse")
        parser.add_argument("--idle-timeout", type=float, default=600.0, metavar="S",
                            help="a resident agent leaves after S seconds without a request "
                                 "(default: 600)")
        parser.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args: argparse.Namespace) -> int:
        from .session import attach

        if args.idle_timeout <= 0:
            raise UsageError("--idle-timeout must be positive")
        session = attach(args.pid, injector=args.injector, timeout=args.timeout,
                         idle_timeout=args.idle_timeout, redact=not args.no_redact,
                         keep=args.keep)
        with session:
            report = session.injection
            info = {
                "pid": session.pid,
                "python": ".".join(str(p) for p in session.agent.python),
                "resident": session.resident,
                "reused": report is None,
                "injection": asdict(report) if report is not None else None,
                "idle_timeout": session.agent_idle_timeout if session.resident else None,
            }
        if args.json:
            _emit_json({"ok": True, "value": info})
            return EXIT_OK
        if report is None:
            print("process %d: reused the resident agent at %s" % (session.pid, session.resident))
        else:
            print("process %d (Python %s): agent started via %s/%s; %s"
                  % (session.pid, info["python"], report.backend, report.path,
                     report.pause_text()))
        if session.resident:
            print("resident agent listening at %s; it leaves after %.0f s idle or on "
                  "`inspector detach %d`" % (session.resident, session.agent_idle_timeout,
                                              session.pid))
        return EXIT_OK


class DetachCommand(Command):
    name = "detach"
    help = "stop the resident agent of a process"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("pid", type=_pid, metavar="PID", help="target process id")
        parser.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args: argparse.Namespace) -> int:
        from . import _preflight, _resident
        from .session import connect_resident

        target = _preflight.check(args.pid)

        def gone(wait: float) -> bool:
            deadline = time.monotonic() + wait
            while _resident.find(args.pid, target.uid) is not None:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.05)
            return True

        try:
            if gone(0):
                raise _NothingToStop
            try:
                session = connect_resident(args.pid)
            except AttachError:
                # An agent that is leaving (a detach a moment ago, its idle
                # timeout) refuses us and removes its socket just after
                if gone(1.0):
                    raise _NothingToStop from None
                raise
        except _NothingToStop:
            if args.json:
                _emit_json({"ok": True, "value": {"pid": args.pid, "stopped": False}})
            else:
                print("process %d has no resident agent: nothing to stop" % args.pid)
            return EXIT_OK
        session.shutdown()
        gone(2.0)  # the agent removes its socket as it leaves: a next command sees it gone
        if args.json:
            _emit_json({"ok": True, "value": {"pid": args.pid, "stopped": True}})
        else:
            print("process %d: resident agent stopped" % args.pid)
        return EXIT_OK


class _NothingToStop(Exception):
    pass


class ProbeCommand(Command):
    name = "probe"
    help = "health checks for monitoring (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)"
    usage_exit_code = 3

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("pid", type=_pid, metavar="PID", help="target process id")
        parser.add_argument("--check", action="append", default=[], metavar="NAME=EXPR",
                            help="a check: a query returning a bool or a number (repeatable)")
        parser.add_argument("--module", metavar="NAME",
                            help="evaluate the --check queries in this module's globals "
                                 "(default __main__; a checks file says `module =` per check)")
        parser.add_argument("--file", metavar="CHECKS.toml",
                            help="checks with thresholds ([[check]] name, expr, warn, crit, "
                                 "direction, fail)")
        parser.add_argument("--timeout", type=float, default=10.0, metavar="S",
                            help="seconds for attaching and for each check (default: 10)")
        parser.add_argument("--keep", action="store_true",
                            help="leave a resident agent for the next probe (no re-injection)")
        parser.add_argument("--injector", choices=BACKENDS, default=DEFAULT_INJECTOR)
        output = parser.add_mutually_exclusive_group()
        output.add_argument("--json", action="store_true", help="one JSON document")
        output.add_argument("--prometheus", action="store_true",
                            help="Prometheus text format on stdout")
        parser.add_argument("--prometheus-file", metavar="PATH",
                            help="replace PATH atomically with the Prometheus text, whatever "
                                 "the status (node_exporter's textfile collector); nothing "
                                 "on stdout unless --json or --prometheus is also given")

    def run(self, args: argparse.Namespace) -> int:
        from . import probe
        from .session import attach

        try:
            if args.module is not None and not args.check:
                raise UsageError("--module applies to --check queries; in a checks file "
                                 "write `module = \"%s\"` in each [[check]]" % args.module)
            checks = [probe.parse_check_arg(c, args.module) for c in args.check]
            if args.file:
                checks += probe.load_checks_file(args.file)
            if not checks:
                raise UsageError("no checks: give --check NAME=EXPR or --file CHECKS.toml")
            probe.validate_names(checks)
        except UsageError as e:
            result = probe.ProbeResult(args.pid, (), 0.0, error=e.message, error_kind=e.kind)
            print("inspector: %s" % e.message, file=sys.stderr)
        else:
            result = probe.probe(args.pid, checks, attach=attach, timeout=args.timeout,
                                 keep=args.keep, injector=args.injector)
        if args.prometheus_file:
            try:
                probe.write_textfile(args.prometheus_file, probe.render_prometheus(result))
            except UsageError as e:
                print("inspector: %s" % e.message, file=sys.stderr)
                return probe.UNKNOWN
        if args.json:
            _emit_json(probe.to_json(result))
        elif args.prometheus:
            sys.stdout.write(probe.render_prometheus(result))
        elif not args.prometheus_file and not result.error_kind == "usage":
            print(probe.render_plugin(result))
        return result.status


class TuiCommand(Command):
    name = "tui"
    help = "the terminal UI (a process picker when no PID is given)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("pid", type=_pid, nargs="?", metavar="PID")
        parser.add_argument("--injector", choices=BACKENDS, default=DEFAULT_INJECTOR)
        parser.add_argument("--no-redact", action="store_true")

    def run(self, args: argparse.Namespace) -> int:
        if args.pid is not None:
            # A bad PID on the command line is refused like everywhere else
            # (exit 5, one line), before the full-screen app starts.
            from ._preflight import check

            check(args.pid)
        try:
            from tui.app import run_app
        except ImportError as e:
            raise UsageError("the TUI is not available: %s" % e) from None
        return run_app(args.pid, injector=args.injector, redact=not args.no_redact)


# -- census, tasks, memory, dump, show ------------------------------------------

KEEPALIVE = 60.0  # seconds between pings while --diff-after waits (agent idle timeout)


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise _type_error("expected a number, not %r" % text) from None
    if value < 0:
        raise _type_error("must be 0 or more")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _type_error("expected seconds, not %r" % text) from None
    if not 0 < value < 86400:
        raise _type_error("must be more than 0 and less than a day")
    return value


def _census_totals(census: Census) -> dict[str, Any]:
    doc = asdict(census)
    doc.pop("entries")
    return doc


def _warn_partial(census: Census) -> None:
    if not census.complete:
        print("inspector: warning: the census stopped early (%s budget, %.1f s); counts are "
              "partial; raise --max-seconds" % (census.stopped, census.duration),
              file=sys.stderr)


class CensusCommand(Command):
    name = "census"
    help = "count the target's objects by type; with --diff-after S, show which types grow"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _attach_options(parser)
        parser.add_argument("--top", type=_non_negative_int, default=20, metavar="N",
                            help="show the N biggest types (default 20; 0 = all)")
        parser.add_argument("--sort", choices=("count", "size"), default="count",
                            help="rank types by object count (default) or shallow size")
        parser.add_argument("--diff-after", type=_positive_seconds, metavar="S",
                            help="take a second census S seconds later and show the growth")
        parser.add_argument("--max-seconds", type=_positive_seconds, metavar="S",
                            help="time budget of one census in the target (default 10)")
        parser.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args: argparse.Namespace) -> int:
        from .census import census_diff
        from .errors import BudgetExceeded
        from .render import render_census, render_census_diff

        if args.diff_after is None:
            with _session(args) as session:
                census = session.census(args.top, sort=args.sort, max_seconds=args.max_seconds)
            _warn_partial(census)
            if args.json:
                _emit_json({"ok": True, "value": asdict(census)})
            else:
                print(render_census(census, _width()))
            return EXIT_OK
        with _session(args) as session:
            before = session.census(0, sort=args.sort, max_seconds=args.max_seconds)
            _wait_keeping_alive(session, args.diff_after)
            after = session.census(0, sort=args.sort, max_seconds=args.max_seconds)
        if not (before.complete and after.complete):
            raise BudgetExceeded("a census stopped early (its time budget ran out), so a diff "
                                 "would mislead; raise --max-seconds")
        deltas = census_diff(before, after, args.top)
        if args.json:
            growth = [dict(asdict(d), count_delta=d.count_delta, size_delta=d.size_delta)
                      for d in deltas]
            _emit_json({"ok": True, "value": {
                "interval": after.taken_at - before.taken_at, "before": _census_totals(before),
                "after": _census_totals(after), "growth": growth}})
        else:
            print(render_census_diff(deltas, before, after, _width()))
        return EXIT_OK


def _wait_keeping_alive(session: SessionAPI, seconds: float) -> None:
    import time

    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, KEEPALIVE))
        if deadline - time.monotonic() > 0:
            session.ping()  # the agent leaves after its idle timeout without requests


class TasksCommand(Command):
    name = "tasks"
    help = "asyncio tasks of every event loop, as a tree of who awaits whom"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _attach_options(parser)
        parser.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args: argparse.Namespace) -> int:
        from .render import render_tasks

        with _session(args) as session:
            tasks = session.tasks()
        if args.json:
            _emit_json({"ok": True, "value": [asdict(t) for t in tasks]})
        elif not tasks:
            print("no asyncio tasks in process %d" % args.pid)
        else:
            print(render_tasks(tasks, max(_width(), 160)))
        return EXIT_OK


class GreenletsCommand(Command):
    name = "greenlets"
    help = "greenlets (gevent) with their state and stacks, and each hub's loop"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _attach_options(parser)
        parser.add_argument("--max-seconds", type=_positive_seconds, metavar="S",
                            help="time budget of the heap walk in the target (default 10)")
        parser.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args: argparse.Namespace) -> int:
        from .render import render_greenlets

        with _session(args) as session:
            result = session.greenlets(max_seconds=args.max_seconds)
        if not result.complete:
            print("inspector: warning: the heap walk stopped early (time budget); greenlets "
                  "may be missing; raise --max-seconds", file=sys.stderr)
        if args.json:
            _emit_json({"ok": True, "value": asdict(result)})
        elif not result.greenlet:
            print("no greenlets in process %d (it never imported greenlet)" % args.pid)
        else:
            print(render_greenlets(result, max(_width(), 160)))
        return EXIT_OK


class MemoryCommand(Command):
    name = "memory"
    help = "garbage collector state, tracemalloc top sites (if tracing), RSS/CPU/threads/fds"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _attach_options(parser)
        parser.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args: argparse.Namespace) -> int:
        from .render import render_memory

        with _session(args) as session:
            summary = session.memory()
        if args.json:
            _emit_json({"ok": True, "value": asdict(summary)})
        else:
            print(render_memory(summary))
        return EXIT_OK


class DumpCommand(Command):
    name = "dump"
    help = "write threads, stacks, memory and asyncio tasks as one JSON file (see `show`)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _attach_options(parser)
        parser.add_argument("--locals", action="store_true",
                            help="include each frame's locals (secrets redacted unless "
                                 "--no-redact)")
        parser.add_argument("--census", type=_non_negative_int, default=0, metavar="N",
                            help="include an object census of the N biggest types")
        parser.add_argument("-o", "--output", metavar="FILE",
                            help="write the dump here (mode 0600: it holds locals) instead "
                                 "of stdout")
        parser.add_argument("--json", action="store_true",
                            help="one JSON document: the dump as its value, or with -o "
                                 "where it went")

    def run(self, args: argparse.Namespace) -> int:
        from .dump import build_dump, dump_to_json, dump_to_text

        with _session(args) as session:
            dump = build_dump(session, locals=args.locals, census_top=args.census)
        if args.output:
            _write_private(args.output, dump_to_text(dump))
            if args.json:
                _emit_json({"ok": True, "value": {"path": args.output,
                                                  "errors": dict(dump.errors)}})
        elif args.json:
            _emit_json({"ok": True, "value": dump_to_json(dump)})
        else:
            sys.stdout.write(dump_to_text(dump))
        for section, why in sorted(dump.errors.items()):
            print("inspector: warning: the dump has no %s: %s" % (section, why),
                  file=sys.stderr)
        return EXIT_OK


def _write_private(path: str, text: str) -> None:
    """Write a file only its owner can read (it may hold frame locals), as
    the audit log is: created 0600, and an existing file is made 0600 before
    anything is written into it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o600)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UsageError("cannot write %s: it is a symbolic link, which someone else "
                             "could point anywhere; give the real path" % path) from None
        raise UsageError("cannot write %s: %s" % (path, e.strerror)) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(text)
    except OSError as e:
        raise UsageError("cannot write %s: %s" % (path, e.strerror)) from None


class ShowCommand(Command):
    name = "show"
    help = "render a dump written by `inspector dump` (offline: no target needed)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("file", metavar="DUMP", help="the dump file ('-' for stdin)")
        output = parser.add_mutually_exclusive_group()
        output.add_argument("--tui", action="store_true",
                            help="browse it in the terminal UI (read-only, no target)")
        output.add_argument("--json", action="store_true",
                            help="one JSON document: the checked dump as its value")

    def run(self, args: argparse.Namespace) -> int:
        from .dump import dump_to_json, load_dump
        from .render import render_dump

        try:
            if args.file == "-":
                data = sys.stdin.buffer.read()
            else:
                with open(args.file, "rb") as f:
                    data = f.read()
        except OSError as e:
            raise UsageError("cannot read %s: %s" % (args.file, e.strerror)) from None
        dump = load_dump(data, args.file)
        if args.tui:
            try:
                from tui.offline import run_dump_viewer
            except ImportError as e:
                raise UsageError("the TUI is not available: %s" % e) from None
            return run_dump_viewer(dump)
        if args.json:
            _emit_json({"ok": True, "value": dump_to_json(dump)})
            return EXIT_OK
        print(render_dump(dump, _width()))
        return EXIT_OK


COMMANDS: tuple[type[Command], ...] = (PsCommand, StackCommand, EvalCommand, ProbeCommand,
                                       AttachCommand, DetachCommand, CensusCommand,
                                       TasksCommand, MemoryCommand, DumpCommand, ShowCommand,
                                       TuiCommand, GreenletsCommand)


def _terminal_width() -> int | None:
    """Columns to lay out for: $COLUMNS if set (as `ls` and `ps` honour it),
    else stdout's terminal, else None (a pipe or file)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return max(60, int(columns))
    try:
        return max(60, os.get_terminal_size(sys.stdout.fileno()).columns)
    except (OSError, ValueError):
        return None


def _width() -> int:
    return _terminal_width() or 120


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser; with `command`, one that knows only that
    subcommand (each subparser costs argparse's gettext lookups: building
    all thirteen was 10-28 ms of every cold command)."""
    from ._cliparser import _Parser

    parser = _Parser(prog="inspector",
                     description="A safe, read-only inspector for live CPython processes.")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks and the library's debug log")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for cls in COMMANDS:
        if command is not None and cls.name != command:
            continue
        handler = cls()
        p = sub.add_parser(handler.name, help=handler.help, description=handler.help)
        p.usage_exit_code = handler.usage_exit_code
        handler.add_arguments(p)
        p.set_defaults(handler=handler)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand `argv` runs, if the parser of that subcommand alone
    parses `argv` exactly as the whole parser does: the command is the first
    token and at most `--debug` (or a prefix of it) comes before it. None
    otherwise (no command, an unknown one, `--help`, anything unusual): then
    the whole parser parses, and its help and errors list every command."""
    names = {cls.name for cls in COMMANDS}
    for token in argv:
        if token in names:
            return token
        if not (len(token) >= 3 and "--debug".startswith(token)):
            return None
    return None


def _fast_args(argv: Sequence[str]) -> SimpleNamespace | None:
    """What argparse would return for `stack PID`, `stack PID --json` or
    `stack --json PID` (PID plain ASCII digits, not 0), built without
    argparse: its import with gettext and locale, and the subparser, were
    ~6 ms of every cold command. None for any other command line: argparse
    parses it. tests/unit/test_cold_path.py compares the two for many lines."""
    if len(argv) not in (2, 3) or argv[0] != StackCommand.name:
        return None
    rest = list(argv[1:])
    json = "--json" in rest
    if json:
        rest.remove("--json")
    if len(rest) != 1 or not (rest[0].isascii() and rest[0].isdecimal()) or int(rest[0]) <= 0:
        return None
    return SimpleNamespace(debug=False, command=StackCommand.name, handler=StackCommand(),
                           pid=_pid(rest[0]), **_ATTACH_DEFAULTS,
                           **{**_STACK_DEFAULTS, "json": json})


def _configure_logging(debug: bool) -> None:
    import logging

    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="inspector: %(message)s")


def _print_traceback() -> None:
    import traceback

    traceback.print_exc()


def run() -> NoReturn:
    """The `inspector` command (the console script, `python -m inspector`):
    main(), then exit."""
    code = main()
    _exit_now(code)
    sys.exit(code)


def _exit_now(code: int) -> None:
    """os._exit(code) when the interpreter's teardown has nothing left to do
    for us: no atexit handler is registered, no thread but daemons runs, and
    stdout and stderr are flushed. Then the teardown would only free objects
    and modules one by one: 8-12 ms of a cold `inspector stack` (~200
    modules; docs/DESIGN.md, "Round 5: the cold path"). The target is left
    as it was by then: detach() returned only after the agent closed its
    end, its thread's last act. Otherwise (the TUI, a flush that fails)
    return, and the caller exits the ordinary way."""
    import atexit

    if atexit._ncallbacks():
        return
    threading = sys.modules.get("threading")
    if threading is not None and any(not t.daemon and t is not threading.main_thread()
                                     for t in threading.enumerate()):
        return
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        return  # the ordinary exit reports it (and exits 120), as it always did
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    # Whatever reaches the terminal went through term_safe: the target's text
    # may hold escape sequences (the client writes none of its own).
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = SafeStream(out), SafeStream(err)
    try:
        return _main(argv)
    finally:
        sys.stdout, sys.stderr = out, err
        _log.configure_on_first_use(None)


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    want_json = _wants_json(argv)
    args: argparse.Namespace | SimpleNamespace | None = _fast_args(argv)
    try:
        if args is None:
            args = build_parser(_command_of(argv)).parse_args(argv)
    except _ArgumentsError as e:
        if want_json:
            _emit_error("usage", e.message)
        print("inspector: %s" % e.message, file=sys.stderr)
        return e.exit_code
    if args.debug or "logging" in sys.modules:
        _configure_logging(args.debug)
    else:  # imported only if a warning is due (inspector._log)
        _log.configure_on_first_use(lambda: _configure_logging(False))
    want_json = bool(getattr(args, "json", False))
    try:
        return int(args.handler.run(args))
    except InspectorError as e:
        if args.debug:
            _print_traceback()
        if want_json:
            _emit_error(e.kind, e.message)
        print("inspector: %s" % e.message, file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        if want_json:
            _emit_error("interrupted", "interrupted")
        print("inspector: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as e:
        if not want_json:
            raise
        # --json promises one document even for a bug; --debug shows where
        if args.debug:
            _print_traceback()
        _emit_error("internal", "%s: %s" % (type(e).__name__, e))
        print("inspector: internal error: %s: %s (please report it; --debug shows the "
              "traceback)" % (type(e).__name__, e), file=sys.stderr)
        return 1
