"""The addresses every injector needs, read before anything is touched."""

from __future__ import annotations

from collections.abc import Iterable

from .. import _bootcache, _elf
from ..errors import AttachError
from .base import Target


def resolve(target: Target, python_symbols: tuple[str, ...], libc_symbols: tuple[str, ...],
            libc_patterns: Iterable[bytes] = (), optional_python: tuple[str, ...] = ()
            ) -> tuple[dict[str, int], dict[bytes, int | None]]:
    """Absolute addresses of the wanted CPython and glibc symbols (and of byte
    patterns in glibc's text), from the ELF files the target mapped; one-line
    AttachError naming what is missing (`optional_python` may be missing)."""
    maps = _elf.read_maps(target.pid)
    cache = _bootcache.private_dir()  # each file's facts, by its identity (_elf.resolve_file)
    try:
        symbols, _ = _elf.resolve_file(target.pid, target.python_binary,
                                       python_symbols + optional_python, (), maps, cache)
        libc = _elf.find_libc(maps)
        if libc is None:
            raise AttachError("process %d has no glibc mapped; only glibc-based Linux targets "
                              "are supported" % target.pid)
        libc_found, found = _elf.resolve_file(target.pid, libc, libc_symbols,
                                              tuple(libc_patterns), maps, cache)
        symbols.update(libc_found)
    except (_elf.ElfError, OSError) as e:
        raise AttachError("cannot read the symbols of process %d: %s" % (target.pid, e)) from None
    missing = [s for s in python_symbols + libc_symbols if s not in symbols]
    if missing:
        raise AttachError("process %d does not export %s; is it a CPython 3.8-3.13 process "
                          "with glibc?" % (target.pid, ", ".join(missing)))
    return symbols, found
