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

    def error(self, message: str) -> NoReturn:
        self.exit(2, "inspector: %s (see `%s --help`)\n" % (message, self.prog))


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
        from .procs import list_python_processes
        from .render import render_processes

        rows = sorted(list_python_processes(), key=lambda p: p.pid)
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


COMMANDS: tuple[type[Command], ...] = (PsCommand, StackCommand, EvalCommand, TuiCommand)


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
