"""Does a target run the very interpreter file this client runs?

Then bytecode this client compiled is valid there with certainty (the same
build: the same magic number, the same code-object layout), which lets the
client skip the safety nets it otherwise ships: the stage-1 text that the
target would compile (the native injector's routine runs our code object
instead) and the payload sources a target of another build would compile.

The file is compared as both processes mapped it: the (device, inode) of the
mapping in /proc/<pid>/maps, not a path - whatever mount namespace, symlink
or bind mount each came through. A binary replaced on disk after the target
started is another inode (its mapping says "(deleted)").
"""

from __future__ import annotations

import os
from functools import cache

from . import _elf


def file_mapped_as(pid: int, path: str) -> tuple[str, int] | None:
    """(device, inode) of the first mapping of `path` (as the target names
    it: libpython, or its executable) in /proc/<pid>/maps."""
    return next(((m.dev, m.inode) for m in _elf.read_maps(pid) if m.path == path), None)


@cache
def own_interpreter_file() -> tuple[str, int] | None:
    """(device, inode) of the file holding this process's C API (mapped for
    the process's whole life: read once)."""
    import ctypes

    address = ctypes.cast(ctypes.pythonapi.Py_IsInitialized, ctypes.c_void_p).value or 0
    return next(((m.dev, m.inode) for m in _elf.read_maps(os.getpid())
                 if m.start <= address < m.end), None)


def same_build(pid: int, python_binary: str) -> bool:
    """Does process `pid` map, as the file of its C API (`python_binary`,
    from the preflight), the very file this client's C API comes from?"""
    try:
        ours = own_interpreter_file()
        return ours is not None and ours == file_mapped_as(pid, python_binary)
    except (OSError, ValueError):
        return False
