"""Every message the TUI sends, in one module (named for events, past tense).

Widgets post the *Requested/*Chosen/*Submitted/*Pinned ones up to the app;
the app's thread workers post the *Loaded/*Finished/*Sampled ones back to the
app, which hands the results down to the screens.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from inspector.diagnostics import Census, TaskInfo
from inspector.metrics import ProcessSample
from inspector.models import ModuleInfo, ThreadInfo, ThreadStack, Value
from inspector.procs import PythonProcess

from .api import SessionAPI
from .values import Address, Scope


@dataclass(frozen=True)
class Failure:
    """Why a request failed: the error's kind (denied, budget, eval, lost …) and message."""

    kind: str
    message: str


# -- requests, from widgets and screens up to the app ---------------------------------


@dataclass
class ProcessChosen(Message):
    pid: int


@dataclass
class ThreadHighlighted(Message):
    thread: ThreadInfo


@dataclass
class FrameHighlighted(Message):
    scope: Scope | None  # None: the cursor is on no frame


@dataclass
class LocalsRequested(Message):
    tree: str  # the asking tree's id
    token: int
    scope: Scope  # the frame


@dataclass
class ChildrenRequested(Message):
    tree: str
    token: int
    address: Address
    offset: int = 0


@dataclass
class QuerySubmitted(Message):
    token: int
    expr: str
    scope: Scope
    isolated: bool = False  # run it in a disposable fork of the target (--isolated)


@dataclass
class CensusRequested(Message):
    pass


@dataclass
class TasksRequested(Message):
    pass


@dataclass
class WatchPinned(Message):
    address: Address


@dataclass
class WatchUnpinned(Message):
    key: int


# -- results, from the workers to the app ---------------------------------------------


@dataclass
class ProcessesListed(Message):
    processes: list[PythonProcess]

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ProcessesListed)


@dataclass
class Attached(Message):
    session: SessionAPI


@dataclass
class AttachFailed(Message):
    pid: int
    message: str


@dataclass
class ThreadsLoaded(Message):
    threads: list[ThreadInfo]


@dataclass
class RequestEnded(Message):
    """A worker is done with a request (answered, failed or dropped)."""

    request: int


@dataclass
class StackLoaded(Message):
    request: int
    thread: ThreadInfo
    stack: ThreadStack | None
    failure: Failure | None = None


@dataclass
class LocalsLoaded(Message):
    request: int
    tree: str
    token: int
    value: Value | None
    failure: Failure | None = None


@dataclass
class ChildrenLoaded(Message):
    request: int
    tree: str
    token: int
    offset: int
    value: Value | None
    failure: Failure | None = None


@dataclass
class EvalFinished(Message):
    request: int
    token: int
    value: Value | None
    failure: Failure | None = None
    note: str = ""  # e.g. the frame had returned, so the query ran in __main__


@dataclass
class WatchesEvaluated(Message):
    results: list[tuple[int, Value | None, Failure | None]]
    at: float


@dataclass
class ModulesLoaded(Message):
    modules: list[ModuleInfo]


@dataclass
class CensusTaken(Message):
    request: int
    census: Census | None
    failure: Failure | None = None


@dataclass
class TasksLoaded(Message):
    request: int
    tasks: list[TaskInfo] | None
    failure: Failure | None = None


@dataclass
class MetricsSampled(Message):
    sample: ProcessSample


@dataclass
class SessionLost(Message):
    message: str


@dataclass
class Detached(Message):
    then_exit: bool
