"""The wheel carries what runs elsewhere: payload sources (shipped into
targets), the TUI's .tcss styles, and the three top-level packages only."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    pytest.importorskip("hatchling", reason="hatchling not installed (pip install -e '.[test]')")
    out_dir = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out_dir), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = out_dir.glob("inspector-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry = next(n for n in names if n.endswith("entry_points.txt"))
        names.add("ENTRY_POINTS=" + zf.read(entry).decode())
        return names


def test_payload_sources_and_styles_are_in_the_wheel(wheel_names: set[str]) -> None:
    for source in (ROOT / "payloads").glob("*.py"):
        assert "payloads/%s" % source.name in wheel_names
    styles = list((ROOT / "tui" / "styles").glob("*.tcss"))
    assert styles
    for style in styles:
        assert "tui/styles/%s" % style.name in wheel_names
    assert "inspector/cli.py" in wheel_names


def test_only_the_three_packages_are_installed(wheel_names: set[str]) -> None:
    tops = {name.split("/")[0] for name in wheel_names
            if "/" in name and not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"inspector", "payloads", "tui"}


def test_console_script_entry_point(wheel_names: set[str]) -> None:
    (entry,) = [n for n in wheel_names if n.startswith("ENTRY_POINTS=")]
    assert "inspector = inspector.cli:run" in entry
