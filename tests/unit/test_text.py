"""Terminal and log safety of the target's text (issue 14 item 5, issue 13 item 5)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from inspector._text import json_dumps, term_safe, term_safe_lines
from inspector.audit import AuditLog
from inspector.render import inline

HOSTILE = ("\x1b]0;pwned\x07\x1b[2J\x1b[H fake\r\n\x9b31m\x85next\u2028line\u2029"
           "\u202eevil\u2066x\u2069\u200b\x7f\ud800")


def test_term_safe_leaves_no_control_or_format_character() -> None:
    out = term_safe(HOSTILE)
    assert out.isascii() and out.isprintable()
    for seq in ("\\x1b", "\\x9b", "\\x85", "\\u2028", "\\u2029", "\\u202e", "\\u2066",
                "\\u200b", "\\x7f", "\\ud800"):
        assert seq in out
    assert term_safe(out) == out  # escaping twice changes nothing more
    assert term_safe("café naïve 日本 ✓") == "café naïve 日本 ✓"


def test_term_safe_lines_keeps_only_newlines() -> None:
    out = term_safe_lines("a\nb\x1b[2Jc\u2028")
    assert out == "a\nb\\x1b[2Jc\\u2028"


def test_rendered_values_are_escaped() -> None:
    node = {"kind": "map", "type": "dict", "items": [
        [{"kind": "str", "type": "str", "text": "'\x1b[31mkey'"},
         {"kind": "str", "type": "str", "text": "'\x9b2J\u2028'"}]]}
    out = inline(node)
    assert "\x1b" not in out and "\x9b" not in out and "\u2028" not in out
    assert "\\x1b[31mkey" in out


def test_json_is_ascii_and_one_line() -> None:
    text = json_dumps({"cmd": HOSTILE.replace("\ud800", "")})
    assert text.isascii() and len(text.splitlines()) == 1
    assert json.loads(text)["cmd"] == HOSTILE.replace("\ud800", "")


def test_audit_record_is_one_line_whatever_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(1, "python \u2028forged\x85{\"op\": \"x\"}\x1c\x1d\x1e\n", path)
    log.record("eval", {"expr": "a\u2029b"}, "ok")
    text = path.read_text("utf-8")
    assert text.isascii() and len(text.splitlines()) == 1
    assert json.loads(text)["target_command"].startswith("python \u2028forged")


def test_audit_log_fifo_without_reader_does_not_block(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    fifo = tmp_path / "audit.fifo"
    os.mkfifo(fifo)
    log = AuditLog(1, "python", fifo)
    start = time.monotonic()
    log.record("stack", {}, "ok")
    assert time.monotonic() - start < 1.0
    assert log.failed and "fails open" in caplog.text


def test_audit_log_fifo_with_reader_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "audit.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    time.sleep(0.2)
    log = AuditLog(1, "python", fifo)
    log.record("stack", {}, "ok")
    assert log.failed
    # release the reader
    fd = os.open(fifo, os.O_WRONLY)
    os.close(fd)
    reader.join(5)
    assert got == [b""]


def test_tui_previews_are_escaped() -> None:
    from tui.values import clip

    out = clip("a\x1b]0;x\x07b\nc\u202e")
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert out.startswith("a\\x1b]0;x\\x07b⏎c")
