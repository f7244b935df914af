"""What every injector receives and returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Target:
    """A process that passed the preflight checks."""

    pid: int
    uid: int  # effective uid: the agent's SO_PEERCRED uid
    python_version: tuple[int, int]
    python_binary: str  # libpython, or the executable when libpython is linked in
    exe: str
    cmdline: str


@dataclass(frozen=True)
class InjectionReport:
    backend: str
    path: str  # "thread" (borrowed a parked thread), "pending" (pending call), "gil" (pyrasite)
    thread: int  # LWP gdb made the calls on
    stopped_ms: float  # how long every thread of the target was stopped
    total_ms: float


class Injector(Protocol):
    name: str

    def inject(self, target: Target, stage1: str) -> InjectionReport:
        """Make the target run `stage1` (Python source) once, or raise AttachError."""
        ...
