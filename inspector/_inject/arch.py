"""The per-architecture module of the native injector, chosen by machine.

x86-64 (`arch_x86_64`) is the only one today. A port is one module with the
same names (registers, system-call numbers, the borrow routine with its
assembly source, the signal-return frame, the gadgets to find in libc); what
aarch64 needs is written down in docs/DESIGN.md ("The native injector").
"""

from __future__ import annotations

import os
from types import ModuleType

from ..errors import AttachError

SUPPORTED = ("x86_64",)


def current() -> ModuleType:
    machine = os.uname().machine  # platform.machine() imports and compiles 9 regexes
    if machine == "x86_64":
        from . import arch_x86_64

        return arch_x86_64
    raise AttachError("the native injector supports %s only (this is %s); use --injector gdb"
                      % (", ".join(SUPPORTED), machine))
