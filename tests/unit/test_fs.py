"""Filesystem steps that cannot be redirected (inspector/_fs.py), with and
without openat2, and source reading confined to what the target may read."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from inspector import _fs, _source


@pytest.fixture(params=["openat2", "walk"])
def kernel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run each test with the kernel's openat2, and with the O_NOFOLLOW walk."""
    if request.param == "walk":
        def no_openat2(*args: object, **kwargs: object) -> int:
            raise OSError(errno.ENOSYS, "no openat2")
        monkeypatch.setattr(_fs, "openat2", no_openat2)
    return str(request.param)


def _tree(tmp_path: Path) -> int:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "file").write_text("inside\n")
    (tmp_path / "outside").write_text("outside\n")
    (tmp_path / "dir" / "up").symlink_to("../outside")
    (tmp_path / "dir" / "abs").symlink_to(str(tmp_path / "outside"))
    return os.open(tmp_path / "dir", os.O_RDONLY | os.O_DIRECTORY)


def test_open_beneath_refuses_symlinks_and_dotdot(tmp_path: Path, kernel: str) -> None:
    fd = _tree(tmp_path)
    try:
        inner = _fs.open_beneath(fd, "file", os.O_RDONLY)
        assert os.read(inner, 100) == b"inside\n"
        os.close(inner)
        for name in ("up", "abs", "../outside"):
            with pytest.raises(OSError):
                os.close(_fs.open_beneath(fd, name, os.O_RDONLY))
    finally:
        os.close(fd)


def test_open_in_root_keeps_absolute_names_inside(tmp_path: Path, kernel: str) -> None:
    fd = _tree(tmp_path)
    try:
        inner = _fs.open_in_root(fd, "/file", os.O_RDONLY)
        assert os.read(inner, 100) == b"inside\n"
        os.close(inner)
        # An absolute symlink resolves inside the root (there is no such file
        # there) or is refused: never the host's file
        with pytest.raises(OSError):
            os.close(_fs.open_in_root(fd, "/abs", os.O_RDONLY))
        with pytest.raises(OSError):  # `..` stays at the root: there is no "outside" there
            os.close(_fs.open_in_root(fd, "/../outside", os.O_RDONLY))
    finally:
        os.close(fd)


def test_read_small_file_refuses_fifos_symlinks_and_strangers(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.mkfifo(tmp_path / "fifo", 0o600)
        (tmp_path / "key").write_text("k" * 10)
        os.chmod(tmp_path / "key", 0o600)
        (tmp_path / "link").symlink_to("key")
        (tmp_path / "open").write_text("k")
        os.chmod(tmp_path / "open", 0o644)
        me = os.geteuid()
        assert _fs.read_small_file(fd, "key", 64, (me,)) == b"k" * 10
        for name, owners in (("fifo", (me,)), ("link", (me,)), ("open", (me,)),
                             ("key", (me + 1,))):
            with pytest.raises(OSError):
                _fs.read_small_file(fd, name, 64, owners)
        with pytest.raises(OSError):
            _fs.read_small_file(fd, "key", 5, (me,))  # larger than the bound
    finally:
        os.close(fd)


def test_read_permission_is_the_targets() -> None:
    st = os.stat_result((0o100640, 0, 0, 1, 0, 42, 0, 0, 0, 0))  # root:shadow-like 0640
    assert not _source.target_may_read(st, 1000, frozenset({1000}))
    assert _source.target_may_read(st, 1000, frozenset({1000, 42}))
    assert _source.target_may_read(st, 0, frozenset({0}))
    mine = os.stat_result((0o100600, 0, 0, 1, 1000, 1000, 0, 0, 0, 0))
    assert _source.target_may_read(mine, 1000, frozenset({1000}))
    assert not _source.target_may_read(mine, 1001, frozenset({1000}))
