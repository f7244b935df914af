"""Injection backends: one module per backend (native, gdb, pyrasite).

A new backend (CPython 3.14's ``sys.remote_exec``) is a new module with a
class that has ``name`` and ``inject(target, stage1)``, registered below.
"""

from __future__ import annotations

from ..errors import AttachError
from .base import InjectionReport, Injector, Target

BACKENDS = ("native", "gdb", "pyrasite")
DEFAULT_INJECTOR = "native"

__all__ = ["BACKENDS", "DEFAULT_INJECTOR", "InjectionReport", "Injector", "Target",
           "make_injector"]


def find_gdb() -> str:
    import shutil

    gdb = shutil.which("gdb")
    if gdb is None:
        raise AttachError("gdb is not installed or not on PATH; install it "
                          "(Debian/Ubuntu: apt-get install gdb)")
    return gdb


def make_injector(name: str, deadline: float | None = None) -> Injector:
    """The backend `name`; gdb-based ones are first checked on a throwaway
    process, within `deadline` (time.monotonic())."""
    if name == "native":
        from .native import NativeInjector

        return NativeInjector()
    if name in ("gdb", "pyrasite"):
        from .gdbcheck import require_working_gdb

        gdb = find_gdb()
        require_working_gdb(gdb, name, deadline)
        if name == "gdb":
            from .gdb import GdbInjector

            return GdbInjector(gdb)
        from .pyrasite import PyrasiteInjector

        return PyrasiteInjector(gdb)
    raise AttachError("unknown injector %r; choose one of: %s" % (name, ", ".join(BACKENDS)))
