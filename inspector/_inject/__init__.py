"""Injection backends: one module per backend (gdb, pyrasite).

A new backend (CPython 3.14's ``sys.remote_exec``) is a new module with a
class that has ``name`` and ``inject(target, stage1)``, registered below.
"""

from __future__ import annotations

import shutil

from ..errors import AttachError
from .base import InjectionReport, Injector, Target

BACKENDS = ("gdb", "pyrasite")

__all__ = ["BACKENDS", "InjectionReport", "Injector", "Target", "make_injector"]


def find_gdb() -> str:
    gdb = shutil.which("gdb")
    if gdb is None:
        raise AttachError("gdb is not installed or not on PATH; install it "
                          "(Debian/Ubuntu: apt-get install gdb)")
    return gdb


def make_injector(name: str) -> Injector:
    if name == "gdb":
        from .gdb import GdbInjector

        return GdbInjector(find_gdb())
    if name == "pyrasite":
        from .pyrasite import PyrasiteInjector

        return PyrasiteInjector(find_gdb())
    raise AttachError("unknown injector %r; choose one of: %s" % (name, ", ".join(BACKENDS)))
