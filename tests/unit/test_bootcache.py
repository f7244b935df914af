"""The file cache of the boot file's fixed part (inspector/_bootcache.py)."""

from __future__ import annotations

import marshal
import os
import sys
from pathlib import Path

import pytest

from inspector import _bootcache, _bundle


@pytest.fixture
def writable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)


def _never() -> bytes:
    raise AssertionError("rebuilt although the cache was valid")


def test_built_once_then_read_back(tmp_path: Path, writable: None) -> None:
    path = str(tmp_path / "boot.marshal")
    assert _bootcache.load_or_build(path, b"key\n", lambda: b"data") == b"data"
    assert Path(path).read_bytes() == b"key\ndata"
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o644 & ~_umask())
    assert _bootcache.load_or_build(path, b"key\n", _never) == b"data"
    assert [p.name for p in tmp_path.iterdir()] == ["boot.marshal"]  # no temp file left


def test_another_key_rebuilds(tmp_path: Path, writable: None) -> None:
    path = str(tmp_path / "boot.marshal")
    _bootcache.load_or_build(path, b"old\n", lambda: b"stale")
    assert _bootcache.load_or_build(path, b"new\n", lambda: b"fresh") == b"fresh"
    assert _bootcache.load_or_build(path, b"new\n", _never) == b"fresh"


@pytest.mark.parametrize("mode", [0o666, 0o620])
def test_a_file_others_can_write_is_not_trusted(tmp_path: Path, writable: None,
                                                mode: int) -> None:
    path = tmp_path / "boot.marshal"
    path.write_bytes(b"key\nplanted")
    path.chmod(mode)
    assert _bootcache.load_or_build(str(path), b"key\n", lambda: b"built") == b"built"


def test_a_symlink_is_not_followed(tmp_path: Path, writable: None) -> None:
    real = tmp_path / "elsewhere"
    real.write_bytes(b"key\nplanted")
    link = tmp_path / "boot.marshal"
    link.symlink_to(real)
    assert _bootcache.load_or_build(str(link), b"key\n", lambda: b"built") == b"built"
    assert real.read_bytes() == b"key\nplanted"  # and not written through


def test_nothing_written_when_bytecode_may_not_be(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    path = tmp_path / "boot.marshal"
    assert _bootcache.load_or_build(str(path), b"key\n", lambda: b"built") == b"built"
    assert not path.exists()


def test_the_stamp_names_every_source_and_the_magic(tmp_path: Path) -> None:
    src = tmp_path / "mod.py"
    src.write_text("x = 1\n")
    before = _bootcache.stamp([str(src)])
    src.write_text("x = 22\n")
    assert _bootcache.stamp([str(src)]) != before
    import importlib.util
    assert importlib.util.MAGIC_NUMBER.hex().encode() in before


_PARAMS = _bundle.BootParams(token="t", socket_path="/s", boot_path="/b", deadline=1.0,
                             package="_p", idle_timeout=5, client_uid=0)


def test_the_boot_data_comes_from_the_cache(tmp_path: Path, writable: None,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Beside the .pyc files (here under a pycache prefix): built by the
    first client, read by the next one."""
    monkeypatch.setattr(sys, "pycache_prefix", str(tmp_path))
    _bundle._fixed_parts.cache_clear()
    try:
        first = _bundle.fixed_boot_data()
        path = _bootcache.cache_path(_bundle._PAYLOADS_DIR)
        assert path is not None and path.startswith(str(tmp_path)) and os.path.exists(path)
        _bundle._fixed_parts.cache_clear()
        monkeypatch.setattr(_bundle, "_build_fixed_boot_data", _never)
        assert _bundle.fixed_boot_data() == first
        # and the stage-1 template the native injector ships comes with it
        assert marshal.loads(_bundle.stage1_code(_PARAMS)).co_filename == "<string>"
    finally:
        _bundle._fixed_parts.cache_clear()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
