"""What every injector receives and returns."""

from __future__ import annotations

from .._record import record

TYPE_CHECKING = False  # typing's constant without importing typing (mypy reads it as True)
if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object  # structural types, for mypy only: nothing checks them at runtime


@record
class Target:
    """A process that passed the preflight checks."""

    pid: int
    uid: int  # effective uid: the agent's SO_PEERCRED uid
    python_version: tuple[int, int]
    python_binary: str  # libpython, or the executable when libpython is linked in
    exe: str
    cmdline: str


@record
class InjectionReport:
    backend: str
    path: str  # "thread" (borrowed a parked thread), "pending" (pending call), "gil" (pyrasite)
    thread: int  # the thread (LWP) the calls were made on
    stopped_ms: float  # native: how long that one thread was held; gdb/pyrasite: every thread
    total_ms: float

    def pause_text(self) -> str:
        """What the target felt, in words."""
        if self.backend == "native":
            return ("thread %d held %.1f ms, every other thread kept running"
                    % (self.thread, self.stopped_ms))
        return "every thread stopped %.1f ms" % self.stopped_ms


class FileDrop(Protocol):
    """The private directory: files only the target's user (and root) can read."""

    def target_path(self, name: str) -> str:
        """The path of `name` as the target sees it."""

    def write_file(self, name: str, data: bytes) -> None:
        """Create `name` (0600, owned by the target's user)."""


class Injector(Protocol):
    name: str
    own_thread: bool  # stage 1 runs on a native thread the injector started for it

    def inject(self, target: Target, stage1: str, files: FileDrop, deadline: float, *,
               stage1_code: bytes | None = None) -> InjectionReport:
        """Make the target run `stage1` (Python source) once, or raise AttachError.
        `deadline` (time.monotonic()) bounds the whole injection: the
        command's --timeout. `stage1_code`: the same stage 1 as a marshal'ed
        code object of the client's interpreter, which an injector may run
        instead in a target of that same build (the native one does)."""
