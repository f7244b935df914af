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


class FileDrop(Protocol):
    """The private directory: files only the target's user (and root) can read."""

    def target_path(self, name: str) -> str:
        """The path of `name` as the target sees it."""
        ...

    def write_file(self, name: str, data: bytes) -> None:
        """Create `name` (0600, owned by the target's user)."""
        ...


class Injector(Protocol):
    name: str

    def inject(self, target: Target, stage1: str, files: FileDrop,
               deadline: float) -> InjectionReport:
        """Make the target run `stage1` (Python source) once, or raise AttachError.
        `deadline` (time.monotonic()) bounds the whole injection: the
        command's --timeout."""
        ...
