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


def _dynsym_tables(path: str) -> list[_elf._SymbolTable]:
    import struct
    from pathlib import Path

    data = Path(path).read_bytes()
    (e_shoff,) = struct.unpack_from("<Q", data, 0x28)
    e_shentsize, e_shnum = struct.unpack_from("<HH", data, 0x3A)
    tables = []
    for i in range(e_shnum):
        sh = e_shoff + i * e_shentsize
        if struct.unpack_from("<I", data, sh + 4)[0] != 11:  # SHT_DYNSYM
            continue
        offset, size = struct.unpack_from("<QQ", data, sh + 0x18)
        link, = struct.unpack_from("<I", data, sh + 0x28)
        entsize, = struct.unpack_from("<Q", data, sh + 0x38)
        str_off, str_size = struct.unpack_from("<QQ", data, e_shoff + link * e_shentsize + 0x18)
        tables.append(_elf._SymbolTable(data, offset, size // entsize, entsize, str_off,
                                        str_size))
    return tables


def test_name_lookup_finds_what_a_full_scan_finds():
    """The fast lookup (string table first) and the entry-by-entry scan agree
    on every symbol of the libc and the Python binary this test runs on."""
    pid = os.getpid()
    maps = _elf.read_maps(pid)
    found = procs.python_binary(pid, maps)
    assert found is not None
    paths = [_elf.find_libc(maps), found[0]]
    checked = 0
    for path in paths:
        assert path is not None
        for table in _dynsym_tables(path):
            assert table.scan(set()) == [] and table.lookup(set()) == []
            names = set()
            for index in range(table.count):
                at = table.offset + index * table.entsize
                st_name = int.from_bytes(table.data[at:at + 4], "little")
                start = table.str_off + st_name
                names.add(table.data[start:table.data.find(b"\0", start)])
            names.discard(b"")
            sample = set(sorted(names)[::5]) | {b"PyGILState_Ensure", b"malloc", b"no_such"}
            assert table.lookup(sample) == table.scan(sample)
            checked += len(sample)
    assert checked > 200


def test_cached_facts_give_the_same_addresses(tmp_path):
    """resolve_file: the addresses resolve() finds, and text patterns at
    addresses that hold those very bytes in executable memory of this
    process, whether found in the file or read from the cache; a cache
    entry that does not read as facts is rebuilt, never trusted."""
    from inspector._inject import arch_x86_64 as arch
    from inspector._inject import native

    pid = os.getpid()
    maps = _elf.read_maps(pid)
    libc = _elf.find_libc(maps)
    found = procs.python_binary(pid, maps)
    assert libc is not None and found is not None
    patterns = (arch.GADGET_SYSCALL_RET, arch.GADGET_RESTORER)
    cases = [(found[0], native.PYTHON_SYMBOLS, ()), (libc, native.LIBC_SYMBOLS, patterns)]
    expected = {}
    for path, names, pats in cases:
        symbols, places = _elf.resolve_file(pid, path, names, pats, maps)  # no cache
        assert symbols == _elf.resolve(pid, path, names, maps)
        assert set(places) == set(pats)
        for pattern, at in places.items():
            assert at is not None and ctypes.string_at(at, len(pattern)) == pattern
            assert any(m.start <= at < m.end and "x" in m.perms and m.path == path
                       for m in maps)
        expected[path] = (symbols, places)
        assert _elf.resolve_file(pid, path, names, pats, maps, str(tmp_path)) == expected[path]
        assert _elf.resolve_file(pid, path, names, pats, maps, str(tmp_path)) == expected[path]
    entries = sorted(tmp_path.iterdir())
    assert len(entries) == 2 and all(e.stat().st_mode & 0o077 == 0 for e in entries)
    # a damaged entry (the key intact, the facts not) is not believed
    for entry in entries:
        raw = entry.read_bytes()
        entry.write_bytes(raw[:raw.index(b"exec ")] + b"exec 2\nsym getpid x\n")
    for path, names, pats in cases:
        assert _elf.resolve_file(pid, path, names, pats, maps, str(tmp_path)) == expected[path]
    assert list(tmp_path.iterdir()) == []  # removed, to be written anew next time
