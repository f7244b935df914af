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

from functools import cache


def mapped_file(pid: str, address: int) -> tuple[str, str] | None:
    """(device, inode) of the file mapped at `address` in /proc/<pid>/maps."""
    with open("/proc/%s/maps" % pid) as f:
        for line in f:
            parts = line.split(None, 5)
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if lo <= address < hi:
                return (parts[3], parts[4]) if len(parts) > 4 and parts[4] != "0" else None
    return None


def file_mapped_as(pid: int, path: str) -> tuple[str, str] | None:
    """(device, inode) of the first mapping of `path` (as the target names
    it: libpython, or its executable) in /proc/<pid>/maps."""
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[4] != "0":
                name = parts[5].rstrip("\n")
                if name == path or name == path + " (deleted)":
                    return parts[3], parts[4]
    return None


@cache
def own_interpreter_file() -> tuple[str, str] | None:
    """(device, inode) of the file holding this process's C API (mapped for
    the process's whole life: read once)."""
    import ctypes

    address = ctypes.cast(ctypes.pythonapi.Py_IsInitialized, ctypes.c_void_p).value
    return mapped_file("self", address) if address else None


def same_build(pid: int, python_binary: str) -> bool:
    """Does process `pid` map, as the file of its C API (`python_binary`,
    from the preflight), the very file this client's C API comes from?"""
    try:
        ours = own_interpreter_file()
        return ours is not None and ours == file_mapped_as(pid, python_binary)
    except (OSError, ValueError):
        return False
