"""argparse's parts of the command line (inspector.cli), imported when a
command line is parsed with argparse: `inspector stack PID` is parsed
without it (cli._fast_args; docs/DESIGN.md "Round 5b")."""

from __future__ import annotations

import argparse

from .cli import _ArgumentsError, _terminal_columns

TYPE_CHECKING = False  # typing's own constant without importing typing; mypy reads it as True
if TYPE_CHECKING:
    from typing import Any, NoReturn


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter, told the width argparse would find itself:
    it imports shutil for `get_terminal_size` (with bz2, lzma and fnmatch
    under it, ~3 ms), on every parse: `add_argument` makes a formatter."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        if width is None:
            width = _terminal_columns() - 2  # what HelpFormatter computes from shutil's
        super().__init__(prog, indent_increment, max_help_position, width)


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line, exit code 2."""

    usage_exit_code = 2  # `probe` uses 3: a broken check is UNKNOWN to a monitoring system

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise _ArgumentsError("%s (see `%s --help`)" % (message, self.prog),
                              self.usage_exit_code)

