"""Same build: a target that maps the very interpreter file of the client."""

from __future__ import annotations

import marshal
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from inspector import _build, _bundle, procs
from tests.pythons import SYSTEM_PYTHON


@contextmanager
def _child(python: str) -> Iterator[subprocess.Popen[bytes]]:
    with subprocess.Popen([python, "-c", "import sys; print(1, flush=True); sys.stdin.read()"],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE) as child:
        try:
            assert child.stdout is not None and child.stdout.readline()
            yield child
        finally:
            child.kill()


@pytest.mark.parametrize("python", [sys.executable, str(SYSTEM_PYTHON)])
def test_same_build_is_the_same_mapped_file(python: str) -> None:
    if not os.path.exists(python):
        pytest.skip("%s not installed" % python)
    with _child(python) as child:
        found = procs.python_binary(child.pid)
        assert found is not None
        expected = os.path.samefile(python, sys.executable)
        assert _build.same_build(child.pid, found[0]) is expected
        # a path the target does not map is never the same build
        assert _build.same_build(child.pid, "/nonexistent/python3") is False


def test_gone_process_is_not_the_same_build() -> None:
    with _child(sys.executable) as child:
        found = procs.python_binary(child.pid)
        child.kill()
        child.wait()
        assert found is not None and _build.same_build(child.pid, found[0]) is False


def test_boot_file_without_sources_for_the_same_build() -> None:
    params = _bundle.BootParams(token="t", socket_path="/s", boot_path="/b", deadline=1.0,
                                package="_p", idle_timeout=5, client_uid=0)
    full = _bundle.render_boot_file(params)
    lean = _bundle.render_boot_file(params, with_sources=False)
    given, sources, magic, code = marshal.loads(lean.partition(_bundle.BOOT_DATA_MARKER)[2])
    assert sources is None and code is not None and given["token"] == "t"
    assert len(lean) < len(full) * 0.7
    # another version's code always comes with the sources
    other = _bundle.Bytecode(b"\0\0\r\n", code, "elsewhere")
    _, kept, _, _ = marshal.loads(_bundle.render_boot_file(
        params, other, with_sources=False).partition(_bundle.BOOT_DATA_MARKER)[2])
    assert kept is not None
