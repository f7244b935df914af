"""Symbol addresses read from ELF files match what the dynamic linker chose."""

from __future__ import annotations

import ctypes
import os

from inspector import _elf, procs


def test_resolves_our_own_python_api_symbols():
    pid = os.getpid()
    maps = _elf.read_maps(pid)
    found = procs.python_binary(pid, maps)
    assert found is not None
    binary, version = found
    addresses = _elf.resolve(pid, binary, ["Py_IsInitialized", "PyRun_SimpleString"], maps)
    expected = ctypes.cast(ctypes.pythonapi.Py_IsInitialized, ctypes.c_void_p).value
    assert addresses["Py_IsInitialized"] == expected
    import sys
    assert version == "%d.%d" % sys.version_info[:2]


def test_resolves_libc_symbols():
    pid = os.getpid()
    maps = _elf.read_maps(pid)
    libc_path = _elf.find_libc(maps)
    assert libc_path is not None
    addresses = _elf.resolve(pid, libc_path, ["mmap", "getpid"], maps)
    libc = ctypes.CDLL(None)
    assert addresses["getpid"] == ctypes.cast(libc.getpid, ctypes.c_void_p).value


def test_not_an_elf_is_an_error(tmp_path):
    import pytest

    with pytest.raises(_elf.ElfError):
        _elf.dynamic_symbols(b"#!/bin/sh\n", ["x"])


def test_ifunc_symbols_count_as_missing(tmp_path):
    """Calling an IFUNC symbol's address runs its resolver, not the function."""
    import shutil
    import subprocess

    import pytest

    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    src = tmp_path / "lib.c"
    src.write_text(
        "int plain(void) { return 1; }\n"
        "static int impl(void) { return 2; }\n"
        "static int (*resolve(void))(void) { return impl; }\n"
        "int chosen(void) __attribute__((ifunc(\"resolve\")));\n")
    lib = tmp_path / "lib.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    found = _elf.dynamic_symbols(lib.read_bytes(), ["plain", "chosen"])
    assert "plain" in found and "chosen" not in found
