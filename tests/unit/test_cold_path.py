"""The cold command path (docs/DESIGN.md, "Round 5: the cold path"): what
`inspector stack PID` imports, and the one-subcommand parser it builds.
Behavioural on purpose: the time itself is measured in bench/, never here."""

from __future__ import annotations

import argparse
import contextlib
import io
import subprocess
import sys
from pathlib import Path

import pytest

from inspector import _cliparser, cli

ROOT = Path(__file__).resolve().parents[2]

# Heavy modules nothing on the command path needs at import time: each was
# milliseconds of every cold command.
NOT_ON_THE_PATH = ("dataclasses", "inspect", "ast", "dis", "tokenize", "logging", "traceback",
                   "tempfile", "shutil", "hmac", "_hashlib", "random", "textual", "rich", "tui",
                   "psutil", "argparse", "gettext", "locale", "inspector._bytecode", "typing")


def _fresh_python(code: str) -> str:
    """What `code` prints in a fresh interpreter (from the repository root)."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=str(ROOT), timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_command_path_imports_only_what_it_needs() -> None:
    # what `inspector stack` imports before it attaches (the session, the
    # native injector, the renderer), all at once in one fresh interpreter
    code = ("import sys, inspector.cli, inspector.session, inspector._inject.native, "
            "inspector.render\nprint(' '.join(sorted(sys.modules)))")
    printed = _fresh_python(code)
    loaded = set(printed.split())
    assert "inspector.cli" in loaded
    assert sorted(loaded & set(NOT_ON_THE_PATH)) == []


def test_importing_the_cli_does_not_load_the_session() -> None:
    code = "import sys, inspector.cli\nprint(' '.join(sorted(sys.modules)))"
    printed = _fresh_python(code)
    assert "inspector.session" not in printed.split()


def _parse(argv: list[str], command: str | None) -> tuple[object, ...]:
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            args = cli.build_parser(command).parse_args(argv)
    except cli._ArgumentsError as e:
        return ("error", e.message, e.exit_code)
    except SystemExit as e:  # --help
        return ("exit", e.code, out.getvalue())
    parsed = dict(vars(args))
    parsed["handler"] = type(parsed["handler"]).__name__
    return ("ok", sorted(parsed.items()))


@pytest.mark.parametrize("argv", [
    ["stack", "1"], ["--debug", "stack", "1"], ["--deb", "stack", "1", "--json"], ["stack"],
    ["stack", "x"], ["stack", "1", "--bogus"], ["stack", "-h"], ["stack", "1", "--debug"],
    ["stack", "1", "--loc"], ["stack", "1", "--i"], ["stack", "1", "--", "x"],
    ["eval", "1", "x", "--frame", "z"], ["eval", "1", "--", "-x"], ["census", "1", "--top", "-1"],
    ["probe"], ["ps", "--json"], ["show", "a", "--tui", "--json"], ["detach", "1", "2"],
    ["memory", "1", "--injector", "foo"], ["--debug", "--debug", "tasks", "1"],
])
def test_one_subcommand_parser_parses_as_the_whole_one(argv: list[str]) -> None:
    command = cli._command_of(argv)
    assert command == next(a for a in argv if not a.startswith("-"))
    assert _parse(argv, command) == _parse(argv, None)


FAST = [["stack", "1"], ["stack", "4194304"], ["stack", "007"], ["stack", "12", "--json"],
        ["stack", "--json", "12"]]


@pytest.mark.parametrize("argv", FAST + [
    ["stack", "0"], ["stack", "-1"], ["stack", "+1"], ["stack", " 1"], ["stack", "1_0"],
    ["stack", "\u0661"], ["stack", "x"], ["stack"], ["stack", "--json"], ["stack", "1", "--js"],
    ["stack", "--json", "--json", "1"], ["stack", "1", "--json", "--json"], ["stack", "1", "2"],
    ["stack", "1", "--"], ["stack", "--", "1"], ["stack", "1", "--locals"],
    ["--debug", "stack", "1"], ["stack", "1", "-h"], ["eval", "1", "x"], ["stac", "1"],
    ["Stack", "1"], ["stack", "1", "--ids"],
])
def test_the_fast_namespace_is_argparses(argv: list[str]) -> None:
    fast = cli._fast_args(argv)
    if argv not in FAST:
        assert fast is None
        return
    assert fast is not None
    assert ("ok", sorted((k, type(v).__name__ if k == "handler" else v)
                         for k, v in vars(fast).items())) == _parse(argv, None)


def test_stack_pid_does_not_import_argparse() -> None:
    code = ("import sys\nfrom inspector import cli\nargs = cli._fast_args(['stack', '1'])\n"
            "print(args is not None, 'argparse' in sys.modules)")
    printed = _fresh_python(code)
    assert printed.split() == ["True", "False"]


@pytest.mark.parametrize("argv", [[], ["-h"], ["--help", "stack"], ["stac", "1"], ["--json"],
                                  ["--debug=1", "stack", "1"], ["-x", "stack"]])
def test_the_whole_parser_without_a_plain_command(argv: list[str]) -> None:
    assert cli._command_of(argv) is None


@pytest.mark.parametrize("env", [{}, {"TMPDIR": "{tmp}"}, {"TMPDIR": "{tmp}/missing"},
                                 {"TMPDIR": "", "TEMP": "{tmp}"}, {"TMPDIR": "{tmp}/file"}])
def test_the_temp_dir_is_tempfiles(env: dict[str, str], tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    from inspector import _fs

    (tmp_path / "file").write_text("")
    for name in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value.replace("{tmp}", str(tmp_path)))
    assert _fs._find_temp_dir() == tempfile._get_default_tempdir()  # type: ignore[attr-defined]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # the probe file is gone


@pytest.mark.parametrize("columns", ["", "40", "200", "abc", "-5", None])
def test_the_help_width_is_argparses(columns: str | None,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert cli._terminal_columns() == shutil.get_terminal_size().columns
    for argv in (["--help"], ["eval", "--help"]):
        helps = []
        for formatter in (_cliparser._Formatter, argparse.HelpFormatter):
            monkeypatch.setattr(_cliparser, "_Formatter", formatter)
            out = io.StringIO()
            with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
                cli.build_parser(cli._command_of(argv)).parse_args(argv)
            helps.append(out.getvalue())
        assert helps[0] == helps[1]


def _point(base: type) -> type:
    class Point(base):  # type: ignore[misc,valid-type]
        """A point."""

        x: int
        label: str = "p"
        near: tuple[int, int] | None = None

        def right(self) -> int:
            return int(self.x) + 1

        @property
        def twice(self) -> int:
            return int(self.x) * 2

    return Point


def test_named_tuple_is_typings() -> None:
    import typing

    from inspector._record import NamedTuple

    ours, theirs = _point(NamedTuple), _point(typing.NamedTuple)
    assert ours.__mro__[1:] == theirs.__mro__[1:] == (tuple, object)
    for attr in ("__name__", "__qualname__", "__module__", "__doc__", "_fields",
                 "_field_defaults"):
        assert getattr(ours, attr) == getattr(theirs, attr)
    assert list(ours.__annotations__) == list(theirs.__annotations__)  # strings vs ForwardRefs
    a, b = ours(3), theirs(3)
    assert (repr(a), tuple(a), a.right(), a.twice, a._asdict(), hash(a)) == \
        (repr(b), tuple(b), b.right(), b.twice, b._asdict(), hash(b))
    assert tuple(a._replace(label="q")) == tuple(b._replace(label="q")) == (3, "q", None)
    x, label, near = a
    assert (x, label, near) == (3, "p", None)
    for base in (NamedTuple, typing.NamedTuple):
        with pytest.raises(TypeError, match="Non-default namedtuple field y cannot follow "
                                            "default field x"):
            exec("class Bad(Base):\n    x: int = 1\n    y: int\n", {"Base": base})
        with pytest.raises(AttributeError, match="Cannot overwrite NamedTuple attribute _make"):
            exec("class Bad(Base):\n    x: int\n    _make = None\n", {"Base": base})
