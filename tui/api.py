"""The slice of the public inspector API the TUI uses, as Protocols.

`inspector.Session` and `inspector.metrics.ProcessSampler` satisfy these; the
tests pass fakes that do too (for rare states such as an agent dying mid-render,
and for deterministic snapshots).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from inspector.diagnostics import Census, TaskInfo
from inspector.metrics import ProcessSample
from inspector.models import ModuleInfo, ThreadInfo, ThreadStack, Value
from inspector.procs import PythonProcess


class TargetAPI(Protocol):
    @property
    def python_version(self) -> tuple[int, ...]: ...

    @property
    def cmdline(self) -> str: ...


class SessionAPI(Protocol):
    """What the TUI asks of a session (a subset of inspector.Session)."""

    @property
    def pid(self) -> int: ...

    @property
    def target(self) -> TargetAPI: ...

    @property
    def closed(self) -> bool: ...

    def threads(self) -> list[ThreadInfo]: ...

    def stack(self, thread: int | str | None = None, *,
              locals: bool = False) -> list[ThreadStack]: ...

    def locals(self, thread: int | str, frame: int = 0, *,
               frame_id: int | None = None) -> Value: ...

    def modules(self) -> list[ModuleInfo]: ...

    def eval(self, expr: str, thread: int | str | None = None, frame: int | None = None, *,
             module: str | None = None, isolated: bool = False,
             frame_id: int | None = None) -> Value: ...

    def inspect(self, path: list[list[Any]] | None = None, *, expr: str | None = None,
                thread: int | str | None = None, frame: int | None = None,
                module: str | None = None, offset: int = 0,
                frame_id: int | None = None) -> Value: ...

    def census(self, top: int = 20, *, sort: str = "count",
               max_seconds: float | None = None) -> Census: ...

    def tasks(self) -> list[TaskInfo]: ...

    def detach(self) -> None: ...


class SamplerAPI(Protocol):
    def sample(self) -> ProcessSample: ...


AttachFn = Callable[[int], SessionAPI]
SamplerFactory = Callable[[int], SamplerAPI]
ProcessLister = Callable[[], list[PythonProcess]]
