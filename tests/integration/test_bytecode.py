"""The agent runs code objects compiled for the target's own version, never
compiled inside the target (inspector/_bytecode.py, inspector/_bundle.py).

Same version as the client: the client's code. Another version: the target's
interpreter, run as a separate process under the target's uid, compiles our
sources once; the result is cached (0600, in the client's 0700 cache dir)
and read back on the next attach.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import inspector
from inspector import _bundle, _bytecode
from tests.pythons import interpreters

pytestmark = pytest.mark.integration


def _version(python: str) -> tuple[int, int]:
    out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                         capture_output=True, text=True, check=True)
    major, minor = out.stdout.split()
    return int(major), int(minor)


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "inspector"


def test_every_target_runs_code_compiled_for_its_version(python: str, spawn,
                                                         cache_home: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    target = spawn(python, "sleep")
    same = _version(python) == sys.version_info[:2]
    with inspector.attach(target.pid, reuse=False) as session:
        assert session.agent.extra["bytecode"] == "shipped"  # nothing compiled in the target
        compiler = session.agent.extra["compiler"]
        assert len(session.stack()) >= 1
    if same:
        assert compiler == "client"
        return
    assert compiler == os.path.realpath(python)
    assert stat.S_IMODE(cache_home.stat().st_mode) == 0o700
    # every entry of the private cache is 0600 (the injector's ELF facts live there too)
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in cache_home.iterdir())
    files = [f for f in cache_home.iterdir() if f.name.startswith("bytecode-")]
    assert len(files) == 1
    # The next attach reads the cache: no compiler runs
    def no_compiler(*args: object, **kw: object) -> bytes:
        raise AssertionError("the compiler ran again")

    monkeypatch.setattr(_bytecode, "_compile", no_compiler)
    with inspector.attach(target.pid, reuse=False) as session:
        assert session.agent.extra["bytecode"] == "shipped"
        assert session.agent.extra["compiler"] == compiler
    assert target.alive()


def _other_python() -> str | None:
    for interp in interpreters():
        if interp.path and _version(interp.path) != sys.version_info[:2]:
            return interp.path
    return None


def test_the_compiler_runs_as_the_target_user() -> None:
    """Run as the target's uid/gid: an interpreter that user cannot execute
    (under root's 0700 home) fails for them, and works for root."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch users")
    python = _other_python()
    if python is None or not os.path.realpath(python).startswith("/root/"):
        pytest.skip("needs an interpreter of another version under /root")
    exe = os.path.realpath(python)
    version = _version(python)
    deadline = time.monotonic() + 30
    out = _bytecode._compile(exe, 0, 0, version, deadline)
    assert out[2:4] == b"\r\n"
    with pytest.raises(_bytecode.CompilerError, match="cannot run .* as uid 65534"):
        _bytecode._compile(exe, 65534, 65534, version, deadline)  # nobody


def test_a_compiler_of_another_version_is_refused() -> None:
    python = _other_python()
    if python is None:
        pytest.skip("needs an interpreter of another version")
    exe = os.path.realpath(python)
    with pytest.raises(_bytecode.CompilerError, match="the compiler is Python"):
        _bytecode._compile(exe, os.geteuid(), os.getegid(), (3, 1),
                           time.monotonic() + 30)


GOOD_MODULES = sorted(_bundle.ALL_SOURCES)


def _frame(name: str, blob: bytes) -> bytes:
    raw = name.encode()
    return len(raw).to_bytes(2, "little") + raw + len(blob).to_bytes(4, "little") + blob


def _output(names: list[str], head: bytes = b"\xcb\r\r\n\x03\x0c") -> bytes:
    return head + b"".join(_frame(n, b"code-" + n.encode()) for n in names)


def test_parse_output_accepts_every_module_once() -> None:
    magic, blobs = _bytecode.parse_output(_output(GOOD_MODULES), (3, 12))
    assert magic == b"\xcb\r\r\n" and blobs["agent"] == b"code-agent"


@pytest.mark.parametrize("out, why", [
    (b"", "not a magic number"),
    (b"abcdef", "not a magic number"),
    (_output(GOOD_MODULES, b"\xcb\r\r\n\x03\x0b"), "the compiler is Python 3.11"),
    (_output(GOOD_MODULES[:-1]), "missing modules"),
    (_output(GOOD_MODULES + ["agent"]), "unexpected module"),
    (_output(GOOD_MODULES + ["os"]), "unexpected module"),
    (_output(GOOD_MODULES)[:-3], "truncated"),
    (_output(GOOD_MODULES) + b"\x05", "truncated"),
    (_output(GOOD_MODULES)[:6] + b"\xff\xff", "unexpected module"),
])
def test_parse_output_refuses_what_is_not_well_formed(out: bytes, why: str) -> None:
    with pytest.raises(_bytecode.CompilerError, match=why):
        _bytecode.parse_output(out, (3, 12))


def test_an_interpreter_others_can_swap_is_not_run(tmp_path: Path, spawn,
                                                    cache_home: Path) -> None:
    """A target whose interpreter sits below a directory another user can
    write (here /tmp) is not asked to compile: someone could swap the file
    between our checks and the exec. The target compiles the sources."""
    python = _other_python()
    if python is None:
        pytest.skip("needs an interpreter of another version")
    real = os.path.realpath(python)
    copy = tmp_path / "bin" / os.path.basename(real)
    copy.parent.mkdir()
    copy.write_bytes(Path(real).read_bytes())
    copy.chmod(0o755)
    probe = subprocess.run([str(copy), "-c", "import sys; print(sys.prefix)"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("a copy of %s does not start: %s" % (real, probe.stderr[-200:]))
    target = spawn(str(copy), "sleep")
    with inspector.attach(target.pid, reuse=False) as session:
        assert session.agent.extra["bytecode"] == "source"
        assert len(session.stack()) >= 1
    assert not cache_home.exists() or \
        not [f for f in cache_home.iterdir() if f.name.startswith("bytecode-")]
