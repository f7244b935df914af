"""What the command line, probes and dumps ask of a session, as a Protocol.

`inspector.Session` satisfies it (mypy checks that below), so the CLI is typed
against the API it needs rather than `Any`; the TUI has its own, narrower
Protocol (tui/api.py) that its test fakes satisfy too.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._inject import InjectionReport, Target
    from .diagnostics import Census, Greenlets, MemorySummary, TaskInfo
    from .models import AgentInfo, ThreadInfo, ThreadStack, Value


class SessionAPI(Protocol):
    """A live session: questions, and leaving (a `with` block detaches)."""

    @property
    def pid(self) -> int: ...

    target: Target
    injection: InjectionReport | None  # None: a resident agent answered
    redact: bool
    agent: AgentInfo
    resident: str | None  # the resident agent's socket, if it stays
    agent_idle_timeout: float
    call_timeout: float

    def threads(self) -> list[ThreadInfo]: ...

    def stack(self, thread: int | str | None = None, *, locals: bool = False,
              redact: bool | None = None) -> list[ThreadStack]: ...

    def eval(self, expr: str, thread: int | str | None = None, frame: int | None = None, *,
             allow_properties: bool = False, redact: bool | None = None,
             module: str | None = None, limits: dict[str, Any] | None = None,
             isolated: bool = False, allow_calls: bool = False,
             max_isolated_rss: int | None = None, frame_id: int | None = None) -> Value: ...

    def census(self, top: int = 20, *, sort: str = "count",
               max_seconds: float | None = None) -> Census: ...

    def tasks(self) -> list[TaskInfo]: ...

    def greenlets(self, *, max_seconds: float | None = None) -> Greenlets: ...

    def memory(self, *, tracemalloc_top: int = 10, process: bool = True) -> MemorySummary: ...

    def ping(self) -> dict[str, Any]: ...

    def shutdown(self) -> None: ...

    def detach(self) -> None: ...

    def __enter__(self) -> SessionAPI: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


if TYPE_CHECKING:
    from .session import Session

    def _session_satisfies_the_protocol(session: Session) -> SessionAPI:
        return session  # mypy: inspector.Session is a SessionAPI
