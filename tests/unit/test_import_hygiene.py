"""Import boundaries: the CLI path never loads Textual; the TUI uses only the
public inspector API; payloads/ import nothing of ours but payloads."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append(node.module)
    return out


def test_the_cli_does_not_import_textual():
    code = ("import sys, inspector.cli, inspector.session, inspector.render\n"
            "ui = ('textual', 'rich', 'tui')\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ui))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=str(ROOT), timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_tui_uses_only_the_public_api():
    for path in (ROOT / "tui").rglob("*.py"):
        for module in _imports(path):
            assert not module.startswith("inspector._"), "%s imports %s" % (path, module)
            assert module.split(".")[0] != "payloads", "%s imports %s" % (path, module)


def test_payloads_import_nothing_of_ours():
    for path in (ROOT / "payloads").glob("*.py"):
        for module in _imports(path):
            assert module.split(".")[0] not in ("inspector", "tui", "textual", "psutil",
                                                "pyrasite"), "%s imports %s" % (path, module)
