"""The `inspector` command line: the only module of the library that prints.

Each subcommand is a small class with `add_arguments` and `run`; `main`
returns the exit code (DESIGN.md "Contracts"): 0 ok, 1 the query raised, 2
usage, 3 refused by the sandbox, 4 budget exceeded, 5 could not attach,
6 target lost. Errors are one line on stderr; `--debug` adds the traceback.
`--json` prints exactly one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, NoReturn

from .errors import InspectorError, UsageError

EXIT_OK = 0


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line, exit code 2."""

    usage_exit_code = 2  # `probe` uses 3: a broken check is UNKNOWN to a monitoring system

    def error(self, message: str) -> NoReturn:
        self.exit(self.usage_exit_code, "inspector: %s (see `%s --help`)\n" % (message, self.prog))


def _emit_json(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc, ensure_ascii=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    raise TypeError("cannot serialise %s" % type(obj).__name__)


def _pid(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("PID must be a number, not %r" % text) from None
    if value <= 0:
        raise argparse.ArgumentTypeError("PID must be positive")
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


def _attach_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pid", type=_pid, metavar="PID", help="target process id")
    parser.add_argument("--injector", choices=("gdb", "pyrasite"), default="gdb",
                        help="injection backend (default: gdb)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S",
                        help="seconds to wait for the agent (default: 10)")
    parser.add_argument("--no-redact", action="store_true",
                        help="show values whose names look like secrets (logged)")


def _session(args: argparse.Namespace) -> Any:
    from .session import attach

    return attach(args.pid, injector=args.injector, timeout=args.timeout,
                  redact=not args.no_redact)


class PsCommand(Command):
    name = "ps"
    help = "list Python processes (pid, user, version, CPU, RSS, command)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args: argparse.Namespace) -> int:
        from dataclasses import replace

        from ._resident import resident_pids
        from .procs import list_python_processes
        from .render import render_processes

        residents = resident_pids()
        rows = sorted((replace(p, agent="resident") if p.pid in residents else p
                       for p in list_python_processes()), key=lambda p: p.pid)
        if args.json:
            _emit_json({"ok": True, "value": [p.to_json() for p in rows]})
        else:
            print(render_processes(rows, _width()))
        return EXIT_OK


class StackCommand(Command):
    name = "stack"
    help = "every thread's stack (with --locals, each frame's locals)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _attach_options(parser)
        parser.add_argument("--locals", action="store_true", help="show each frame's locals")
        parser.add_argument("--thread", type=_thread_selector, metavar="T",
                            help="only this thread (ident, native id or name)")
        parser.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args: argparse.Namespace) -> int:
        from .render import render_stacks

        with _session(args) as session:
            stacks = session.stack(args.thread, locals=args.locals)
        if args.json:
            _emit_json({"ok": True, "value": [asdict(s) for s in stacks]})
        else:
            print(render_stacks(stacks, width=_width()))
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
        parser.add_argument("--module", metavar="NAME",
                            help="evaluate in this module's globals (default __main__)")
        parser.add_argument("--allow-properties", action="store_true",
                            help="run property getters of target classes (may run target code)")
        parser.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args: argparse.Namespace) -> int:
        from .render import render_value

        if args.frame is not None and args.thread is None:
            raise UsageError("--frame needs --thread")
        with _session(args) as session:
            frame = args.frame if args.frame is not None else (0 if args.thread is not None
                                                               else None)
            value = session.eval(args.expr, args.thread, frame, module=args.module,
                                 allow_properties=args.allow_properties)
        if args.json:
            _emit_json({"ok": True, "value": value.node})
        else:
            print(render_value(value, _width()))
        return EXIT_OK


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
            print("process %d (Python %s): agent started via %s/%s; target stopped %.1f ms"
                  % (session.pid, info["python"], report.backend, report.path, report.stopped_ms))
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
        from .session import connect_resident

        session = connect_resident(args.pid)
        session.shutdown()
        if args.json:
            _emit_json({"ok": True, "value": {"pid": args.pid, "stopped": True}})
        else:
            print("process %d: resident agent stopped" % args.pid)
        return EXIT_OK


class ProbeCommand(Command):
    name = "probe"
    help = "health checks for monitoring (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)"
    usage_exit_code = 3

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("pid", type=_pid, metavar="PID", help="target process id")
        parser.add_argument("--check", action="append", default=[], metavar="NAME=EXPR",
                            help="a check: a query returning a bool or a number (repeatable)")
        parser.add_argument("--file", metavar="CHECKS.toml",
                            help="checks with thresholds ([[check]] name, expr, warn, crit, "
                                 "direction, fail)")
        parser.add_argument("--timeout", type=float, default=10.0, metavar="S",
                            help="seconds for attaching and for each check (default: 10)")
        parser.add_argument("--keep", action="store_true",
                            help="leave a resident agent for the next probe (no re-injection)")
        parser.add_argument("--injector", choices=("gdb", "pyrasite"), default="gdb")
        output = parser.add_mutually_exclusive_group()
        output.add_argument("--json", action="store_true", help="one JSON document")
        output.add_argument("--prometheus", action="store_true",
                            help="Prometheus text format (node_exporter textfile collector)")

    def run(self, args: argparse.Namespace) -> int:
        from . import probe
        from .session import attach

        try:
            checks = [probe.parse_check_arg(c) for c in args.check]
            if args.file:
                checks += probe.load_checks_file(args.file)
            if not checks:
                raise UsageError("no checks: give --check NAME=EXPR or --file CHECKS.toml")
            probe.validate_names(checks)
        except UsageError as e:
            print("inspector: %s" % e.message, file=sys.stderr)
            return probe.UNKNOWN
        result = probe.probe(args.pid, checks, attach=attach, timeout=args.timeout,
                             keep=args.keep, injector=args.injector)
        if args.json:
            _emit_json(probe.to_json(result))
        elif args.prometheus:
            sys.stdout.write(probe.render_prometheus(result))
        else:
            print(probe.render_plugin(result))
        return result.status


class TuiCommand(Command):
    name = "tui"
    help = "the terminal UI (a process picker when no PID is given)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("pid", type=_pid, nargs="?", metavar="PID")
        parser.add_argument("--injector", choices=("gdb", "pyrasite"), default="gdb")
        parser.add_argument("--no-redact", action="store_true")

    def run(self, args: argparse.Namespace) -> int:
        try:
            from tui.app import run_app
        except ImportError as e:
            raise UsageError("the TUI is not available: %s" % e) from None
        return run_app(args.pid, injector=args.injector, redact=not args.no_redact)


COMMANDS: tuple[type[Command], ...] = (PsCommand, StackCommand, EvalCommand, ProbeCommand,
                                       AttachCommand, DetachCommand, TuiCommand)


def _width() -> int:
    try:
        return max(60, os.get_terminal_size().columns)
    except OSError:
        return 120


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="inspector",
                     description="A safe, read-only inspector for live CPython processes.")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks and the library's debug log")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for cls in COMMANDS:
        command = cls()
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        p.usage_exit_code = command.usage_exit_code
        command.add_arguments(p)
        p.set_defaults(handler=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="inspector: %(message)s")
    want_json = getattr(args, "json", False)
    try:
        return int(args.handler.run(args))
    except InspectorError as e:
        if args.debug:
            traceback.print_exc()
        if want_json:
            _emit_json({"ok": False, "error": {"kind": e.kind, "message": e.message}})
        print("inspector: %s" % e.message, file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("inspector: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
