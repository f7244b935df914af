"""InspectorApp: the operator's terminal UI over the public inspector API.

The app owns the Session, the timers and every worker. The session's
lifecycle is one explicit state (tui/state.py). Agent calls go through one
helper, `_ask(description, fn, done)`: a thread worker runs `fn(session)`,
one call at a time because a Session is a single request/response
connection, and the answer comes back as the message `done` builds
(tui/messages.py), handed down to the screens; a worker's unexpected error
lands in one `Worker.StateChanged` handler. The event loop never waits for
the target.

Cancelling (esc) cannot interrupt a request already on the wire (the
protocol has no cancel, and the evaluator bounds its own time); it drops the
requests still queued and discards the answer of the one in flight.
Detach and quit always detach the session, so the agent leaves the target;
`run_app` detaches again after the UI is gone, in case it ended abnormally.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from textual import on, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Input, Static
from textual.worker import Worker, WorkerState, get_current_worker

import inspector
from inspector.errors import FrameGone, InspectorError, TargetLost
from inspector.metrics import ProcessSampler
from inspector.models import Value
from inspector.procs import list_python_processes

from .api import AttachFn, ProcessLister, SamplerAPI, SamplerFactory, SessionAPI
from .messages import (
    Attached,
    AttachFailed,
    CensusRequested,
    CensusTaken,
    ChildrenLoaded,
    ChildrenRequested,
    Detached,
    EvalFinished,
    Failure,
    LocalsLoaded,
    LocalsRequested,
    MetricsSampled,
    ModulesLoaded,
    ProcessChosen,
    ProcessesListed,
    QuerySubmitted,
    RequestEnded,
    SessionLost,
    StackLoaded,
    TasksLoaded,
    TasksRequested,
    ThreadHighlighted,
    ThreadsLoaded,
    WatchesEvaluated,
    WatchPinned,
    WatchUnpinned,
)
from .screens.help import HelpScreen
from .screens.inspect import InspectScreen
from .screens.picker import PickerScreen
from .state import Phase, SessionState
from .values import Address, FrameGoneError, Scope, find_frame
from .watching import WATCH_INTERVAL, Watch

T = TypeVar("T")

LOCK_POLL = 0.1  # seconds between checks for cancellation while waiting for the session
# Actions bound to plain letters on the process view; hidden while an input has focus.
LETTER_ACTIONS = frozenset({"refresh_target", "detach", "quit_app", "show_help", "reattach"})
OFFLINE_REFUSED = frozenset({"refresh_target", "detach", "reattach"})
DETACH_WAIT = 5.0  # seconds the exiting app waits for a call in flight before detaching


@dataclass(frozen=True)
class Timings:
    """How often things are refreshed, in seconds (None: never, for tests)."""

    processes: float | None = 2.0  # the picker's process list
    metrics: float | None = 1.0  # CPU/RSS samples (psutil, from outside)
    watches: float | None = WATCH_INTERVAL  # pinned queries
    heartbeat: float | None = 5.0  # the thread list; notices a dead agent


# How the agent reports a frame_id whose call has returned (payloads/frames.py).


class InspectorApp(App[int]):
    """Pick a process, attach, browse, query, watch, detach."""

    TITLE = "inspector"
    CSS_PATH = ["styles/app.tcss", "styles/picker.tcss", "styles/inspect.tcss"]
    ENABLE_COMMAND_PALETTE = False
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("escape", "cancel", "Cancel"),
        Binding("a", "reattach", "Re-attach"),
        Binding("f1", "help", "Help", show=False),
    ]

    def __init__(self, pid: int | None = None, *, injector: str = "native", redact: bool = True,
                 attach: AttachFn | None = None, list_processes: ProcessLister | None = None,
                 sampler: SamplerFactory | None = None, clock: Callable[[], float] = time.time,
                 timings: Timings | None = None, offline: bool = False) -> None:
        super().__init__()
        # offline: a dump (tui/offline.py), not a process: no picker, no queries,
        # no watches, nothing to refresh, detach or re-attach.
        self.offline = offline
        self.initial_pid = pid
        self.injector = injector
        self.redact = redact
        self._attach_fn: AttachFn = attach or self._default_attach
        self._list_processes: ProcessLister = list_processes or list_python_processes
        self._make_sampler: SamplerFactory = sampler or ProcessSampler
        self.clock = clock
        self.timings = timings or Timings()

        self.state = SessionState()  # the session lifecycle (tui/state.py)
        self.watches: list[Watch] = []
        self.picker = PickerScreen()
        self.inspect_screen: InspectScreen | None = None

        self._lock = threading.Lock()  # one agent call at a time
        self._requests = itertools.count(1)
        self._pending: dict[int, str] = {}  # request -> what it is, while wanted
        self._visible: dict[int, str] = {}  # the ones the status line shows
        self._watch_keys = itertools.count(1)
        self._sampler: SamplerAPI | None = None
        self._session_timers: list[Timer] = []
        self._watches_running = False
        self._current_thread: int | None = None

    # -- the session lifecycle: one state, read through these ---------------------------

    def _set_state(self, state: SessionState) -> None:
        self.state = state
        if self.screen_stack:  # none left while the app exits
            self.refresh_bindings()

    @property
    def session(self) -> SessionAPI | None:
        """The session requests may use (None unless LIVE)."""
        return self.state.live

    @property
    def attaching(self) -> int | None:
        return self.state.attaching

    @property
    def lost(self) -> str | None:
        return self.state.lost

    @property
    def detaching(self) -> bool:
        return self.state.phase is Phase.DETACHING

    @property
    def target_pid(self) -> int | None:
        """The process attached (or last attached) to."""
        return self.state.last_pid

    def _default_attach(self, pid: int) -> SessionAPI:
        return inspector.attach(pid, injector=self.injector, redact=self.redact)

    # -- lifecycle --------------------------------------------------------------------

    def get_default_screen(self) -> Screen[Any]:
        return OpeningScreen() if self.offline else self.picker

    def on_ready(self) -> None:
        # Ready comes once the picker is on screen (on_mount is too early for it).
        if self.offline:
            if self.initial_pid is not None:
                self._start_attach(self.initial_pid)
            return
        self.action_refresh_processes()
        if self.timings.processes:
            self.set_interval(self.timings.processes, self._tick_processes)
        if self.initial_pid is not None:
            self._start_attach(self.initial_pid)

    def on_unmount(self) -> None:
        # However the app ends (an error, ctrl+c), the agent must not stay behind.
        # Wait for a call in flight first: one writer at a time on the connection.
        session = self.session
        if session is not None and self._lock.acquire(timeout=DETACH_WAIT):
            try:
                _quiet_detach(session)
            finally:
                self._lock.release()
            self.state = self.state.left()
        # else: still LIVE (a call in flight): run_app detaches it once the UI is gone

    def _tick_processes(self) -> None:
        if self.screen is self.picker and self.attaching is None:
            self.action_refresh_processes()

    # -- requests: bookkeeping ----------------------------------------------------------

    def _begin(self, description: str, *, visible: bool = True) -> int:
        request = next(self._requests)
        self._pending[request] = description
        if visible:
            self._visible[request] = description
            self._show_busy()
        return request

    def _wanted(self, request: int) -> bool:
        """Whether an answer is still wanted (not cancelled); 0 is an immediate answer."""
        return request == 0 or request in self._pending

    @on(RequestEnded)
    def _request_ended(self, message: RequestEnded) -> None:
        self._pending.pop(message.request, None)
        if self._visible.pop(message.request, None) is not None:
            self._show_busy()

    def _show_busy(self) -> None:
        if self.inspect_screen is not None and self.inspect_screen.is_mounted:
            text = None
            if self._visible:
                text = list(self._visible.values())[-1]
                if len(self._visible) > 1:
                    text += " (+%d queued)" % (len(self._visible) - 1)
            self.inspect_screen.set_busy(text)
        self.refresh_bindings()

    @property
    def busy(self) -> bool:
        return bool(self._visible) or self.attaching is not None

    def _call(self, request: int, fn: Callable[[SessionAPI], T]) -> tuple[T | None,
                                                                          Failure | None] | None:
        """Run `fn(session)` on this worker thread, one call at a time.

        Returns (value, None) or (None, failure) — a "lost" failure once the
        session is over — or None when the request was cancelled (nobody waits
        for the answer any more).
        """
        worker = get_current_worker()
        session = self.session
        while not self._lock.acquire(timeout=LOCK_POLL):
            if worker.is_cancelled or request not in self._pending:
                return None
        try:
            if request not in self._pending:
                return None
            if session is None or session is not self.session:
                return None, Failure("lost", self.lost or "the session is over")
            try:
                return fn(session), None
            except TargetLost as e:
                self.post_message(SessionLost(e.message))
                return None, Failure("lost", e.message)
            except FrameGone as e:  # the agent: the call a frame_id named returned
                return None, Failure("moved", e.message)
            except InspectorError as e:
                return None, Failure(e.kind, e.message)
            except FrameGoneError as e:
                return None, Failure("moved", str(e))
            except Exception as e:  # a bug must not take the operator's screen down
                self.log.error("request failed", e)
                return None, Failure("error", "%s: %s" % (type(e).__name__, e))
        finally:
            self._lock.release()

    def _ask(self, description: str, fn: Callable[[SessionAPI], T],
             done: Callable[[int, T | None, Failure | None], Message | None], *,
             visible: bool = True, group: str = "session", exclusive: bool = False) -> None:
        """Request → worker → loaded, written once: run `fn(session)` in a thread
        worker (one agent call at a time, see `_call`) and post `done(request,
        value, failure)`; when there is no session, `done(0, None, why)` at once.
        `description` names the request in the status line and the worker."""
        gone = self._gone()
        if gone is not None:
            message = done(0, None, gone)
            if message is not None:
                self.post_message(message)
            return
        request = self._begin(description, visible=visible)

        def work() -> None:
            try:
                out = self._call(request, fn)
                if out is not None:
                    message = done(request, *out)
                    if message is not None:
                        self.post_message(message)
            finally:
                self.post_message(RequestEnded(request))

        self.run_worker(work, thread=True, group=group, exclusive=exclusive,
                        exit_on_error=False, description=description)

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """The one place a worker's unexpected error ends up (`_call` already
        turns every inspector error into a Failure): logged and shown, never
        taking the operator's screen down."""
        worker = event.worker
        if event.state is WorkerState.ERROR:
            self.log.error("worker failed", worker.description, worker.error)
            self.notify("%s failed: %s" % (worker.description or worker.name, worker.error),
                        severity="error", timeout=6)

    # -- the picker ---------------------------------------------------------------------

    def action_refresh_processes(self) -> None:
        self._list_processes_worker()

    @work(thread=True, exclusive=True, group="processes", exit_on_error=False,
          description="listing processes")
    def _list_processes_worker(self) -> None:
        try:
            rows = self._list_processes()
        except Exception as e:  # psutil races with exiting processes; try again next tick
            self.log.warning("listing processes failed", e)
            return
        self.post_message(ProcessesListed(rows))

    @on(ProcessesListed)
    def _processes_listed(self, message: ProcessesListed) -> None:
        self.picker.show_processes(message.processes)

    @on(ProcessChosen)
    def _process_chosen(self, message: ProcessChosen) -> None:
        if self.attaching is None:
            self._start_attach(message.pid)

    def _start_attach(self, pid: int) -> None:
        self._set_state(self.state.attach(pid))
        self.picker.attach_started(pid, self.injector)
        if self.inspect_screen is not None and self.lost is not None:
            self.inspect_screen.show_reattaching(pid)
        self._attach_worker(pid)

    @work(thread=True, exclusive=True, group="attach", exit_on_error=False,
          description="attaching")
    def _attach_worker(self, pid: int) -> None:
        worker = get_current_worker()
        try:
            session = self._attach_fn(pid)
        except InspectorError as e:
            self.post_message(AttachFailed(pid, e.message))
            return
        except Exception as e:
            self.post_message(AttachFailed(pid, "unexpected error: %s: %s"
                                           % (type(e).__name__, e)))
            return
        if worker.is_cancelled:  # the operator stopped waiting: leave no agent behind
            _quiet_detach(session)
            return
        self.post_message(Attached(session))

    @on(AttachFailed)
    def _attach_failed(self, message: AttachFailed) -> None:
        if self.attaching != message.pid:
            return
        self._set_state(self.state.attach_ended())
        self.picker.attach_ended()
        if self.inspect_screen is not None and self.screen is self.inspect_screen:
            self.inspect_screen.set_busy(None)
            self.inspect_screen.show_reattach_failed(message.message)
        else:
            self.picker.show_error(message.message)

    @on(Attached)
    async def _attached(self, message: Attached) -> None:
        session = message.session
        if self.attaching != session.pid:  # cancelled while the agent was starting
            self._detach_worker(session, then_exit=False, notify=False)
            return
        if session.pid != self.target_pid:
            # Watches belong to one target: another process has other names
            self.watches = []
        self._set_state(self.state.attached(session))
        self.picker.attach_ended()
        self._pending.clear()
        self._visible.clear()
        self._current_thread = None
        how = _injection_text(session)
        screen = InspectScreen(session.pid, tuple(session.target.python_version), how,
                               watch_interval=self.timings.watches or WATCH_INTERVAL,
                               offline=self.offline)
        while self.screen is not self.picker and len(self.screen_stack) > 1:
            self.pop_screen()
        self.inspect_screen = screen
        await self.push_screen(screen)  # mounted, with every pane, before data arrives
        self._session_started()

    def _session_started(self) -> None:
        screen = self.inspect_screen
        if screen is None:
            return
        screen.show_watches(self.watches)
        self._stop_session_timers()
        timings = self.timings
        for interval, tick in ((timings.metrics, self.sample_metrics),
                               (timings.watches, self.evaluate_watches),
                               (timings.heartbeat, self._heartbeat)):
            if interval:
                self._session_timers.append(self.set_interval(interval, tick))
        self._sampler = None
        self.sample_metrics()
        self._load_threads(visible=True)
        self._load_modules()
        if self.offline:
            self.post_message(CensusRequested())  # the dump's census, if it holds one
        self.evaluate_watches()
        self.refresh_bindings()

    def _stop_session_timers(self) -> None:
        for timer in self._session_timers:
            timer.stop()
        self._session_timers.clear()

    # -- threads and stacks -------------------------------------------------------------

    def _load_threads(self, visible: bool = False) -> None:
        if self.session is None:
            return
        self._ask("listing threads", lambda s: s.threads(),
                  lambda _r, threads, _f: ThreadsLoaded(threads) if threads is not None
                  else None, visible=visible)

    @on(ThreadsLoaded)
    def _threads_loaded(self, message: ThreadsLoaded) -> None:
        screen = self._attached_screen()
        if screen is not None:
            screen.show_threads(message.threads)

    def _attached_screen(self) -> InspectScreen | None:
        """The inspect screen while it is part of the app. Thread and module
        lists are not tied to a request: one that lands while the app is
        being torn down (ctrl+c, the end of a test run) finds the screen
        object without its panes (NoMatches)."""
        screen = self.inspect_screen
        return screen if screen is not None and screen.is_attached else None

    def _heartbeat(self) -> None:
        self._load_threads(visible=False)

    @on(ThreadHighlighted)
    def _thread_highlighted(self, message: ThreadHighlighted) -> None:
        self._load_stack(message.thread)

    def _load_stack(self, thread: inspector.ThreadInfo) -> None:
        if self.session is None or self.inspect_screen is None:
            return
        self._current_thread = thread.ident
        self.inspect_screen.show_stack_loading(thread)
        def loaded(request: int, stacks: list[inspector.ThreadStack] | None,
                   failure: Failure | None) -> StackLoaded:
            if stacks is not None and not stacks:
                failure = Failure("eval", "thread %s has ended" % thread.label)
            return StackLoaded(request, thread, stacks[0] if stacks else None, failure)

        self._ask("loading the stack of %s" % thread.label, lambda s: s.stack(thread.ident),
                  loaded, group="stack", exclusive=True)

    @on(StackLoaded)
    def _stack_loaded(self, message: StackLoaded) -> None:
        if not self._wanted(message.request):
            return
        if self.inspect_screen is not None and message.thread.ident == self._current_thread:
            self.inspect_screen.show_stack(message.thread, message.stack, message.failure)

    # -- values ---------------------------------------------------------------------------

    @on(LocalsRequested)
    def _locals_requested(self, message: LocalsRequested) -> None:
        scope = message.scope

        def load(s: SessionAPI) -> Value:
            where = _where(s, scope)
            return s.locals(scope.thread or 0, where["frame"], frame_id=where.get("frame_id"))

        self._ask("loading the locals of %s" % scope.label, load,
                  lambda r, value, failure: LocalsLoaded(r, message.tree, message.token, value,
                                                         failure))

    @on(LocalsLoaded)
    def _locals_loaded(self, message: LocalsLoaded) -> None:
        if self._wanted(message.request) and self.inspect_screen is not None:
            self.inspect_screen.show_locals(message.token, message.value, message.failure)

    @on(ChildrenRequested)
    def _children_requested(self, message: ChildrenRequested) -> None:
        address = message.address
        self._ask("reading %s" % address.text,
                  lambda s: s.inspect(address.path_list(), expr=address.root_expr,
                                      offset=message.offset, **_where(s, address.scope)),
                  lambda r, value, failure: ChildrenLoaded(r, message.tree, message.token,
                                                           message.offset, value, failure))

    @on(ChildrenLoaded)
    def _children_loaded(self, message: ChildrenLoaded) -> None:
        if self._wanted(message.request) and self.inspect_screen is not None:
            self.inspect_screen.show_children(message.tree, message.token, message.offset,
                                              message.value, message.failure)

    def _gone(self) -> Failure | None:
        """Why no request can be made now (answered at once), or None."""
        if self.lost is not None:
            return Failure("lost", self.lost)
        if self.session is None:
            return Failure("lost", "not attached")
        return None

    # -- the console --------------------------------------------------------------------

    @on(QuerySubmitted)
    def _query_submitted(self, message: QuerySubmitted) -> None:
        notes: list[str] = []

        def run(s: SessionAPI) -> Value:
            scope = message.scope
            try:
                return s.eval(message.expr, isolated=message.isolated, **_where(s, scope))
            except (FrameGone, FrameGoneError):
                if not scope.is_frame:
                    raise
            # The highlighted frame has returned (an asyncio loop's select() a
            # moment ago): a query still deserves an answer, in __main__.
            notes.append("%s has returned; evaluated in __main__ instead (r reads the "
                         "stack again)" % scope.label)
            return s.eval(message.expr, isolated=message.isolated)

        self._ask("evaluating %s" % message.expr, run,
                  lambda r, value, failure: EvalFinished(r, message.token, value, failure,
                                                         note=notes[0] if notes else ""))

    @on(EvalFinished)
    def _eval_finished(self, message: EvalFinished) -> None:
        if self._wanted(message.request) and self.inspect_screen is not None:
            self.inspect_screen.show_result(message.token, message.value, message.failure,
                                            message.note)

    # -- watches --------------------------------------------------------------------------

    @on(WatchPinned)
    def _watch_pinned(self, message: WatchPinned) -> None:
        for watch in self.watches:
            if watch.address == message.address:  # pinning again unpins (p toggles)
                self._unpin(watch.key)
                return
        self.watches.append(Watch(next(self._watch_keys), message.address))
        self.notify("Watching %s (every %gs)." % (message.address.text,
                                                   self.timings.watches or WATCH_INTERVAL),
                    timeout=3)
        self._show_watches()
        self.evaluate_watches()

    @on(WatchUnpinned)
    def _watch_unpinned(self, message: WatchUnpinned) -> None:
        self._unpin(message.key)

    def _unpin(self, key: int) -> None:
        gone = [w for w in self.watches if w.key == key]
        self.watches = [w for w in self.watches if w.key != key]
        if gone:
            self.notify("Stopped watching %s." % gone[0].label, timeout=3)
        self._show_watches()

    def _show_watches(self) -> None:
        if self.inspect_screen is not None:
            self.inspect_screen.show_watches(self.watches)

    def evaluate_watches(self) -> None:
        if not self.watches or self._watches_running or self.session is None:
            return
        self._watches_running = True
        request = self._begin("evaluating watches", visible=False)
        self._watches_worker(request, list(self.watches))

    @work(thread=True, group="watches", exit_on_error=False, description="evaluating watches")
    def _watches_worker(self, request: int, watches: list[Watch]) -> None:
        results: list[tuple[int, inspector.Value | None, Failure | None]] = []
        try:
            for watch in watches:
                out = self._call(request, _inspector_of(watch.address))
                if out is None:
                    break
                results.append((watch.key, out[0], out[1]))
        finally:
            self.post_message(WatchesEvaluated(results, self.clock()))
            self.post_message(RequestEnded(request))

    @on(WatchesEvaluated)
    def _watches_evaluated(self, message: WatchesEvaluated) -> None:
        self._watches_running = False
        by_key = {w.key: w for w in self.watches}
        for key, value, failure in message.results:
            watch = by_key.get(key)
            if watch is None:
                continue
            if value is not None:
                watch.record(value.node, message.at)
            elif failure is not None:
                watch.record_error(failure.kind, failure.message, message.at)
        self._show_watches()

    # -- modules ----------------------------------------------------------------------------

    def _load_modules(self) -> None:
        if self.session is None:
            return
        self._ask("listing modules", lambda s: s.modules(),
                  lambda _r, modules, _f: ModulesLoaded(modules) if modules is not None
                  else None, visible=False)

    @on(ModulesLoaded)
    def _modules_loaded(self, message: ModulesLoaded) -> None:
        screen = self._attached_screen()
        if screen is not None:
            screen.show_modules(message.modules)

    # -- objects (census) and asyncio tasks --------------------------------------------

    @on(CensusRequested)
    def _census_requested(self, message: CensusRequested) -> None:
        # Every type (top=0), so the next census can say what grew.
        self._ask("taking a census of the target's objects", lambda s: s.census(0),
                  CensusTaken)

    @on(CensusTaken)
    def _census_taken(self, message: CensusTaken) -> None:
        if self._wanted(message.request) and self.inspect_screen is not None:
            self.inspect_screen.show_census(message.census, message.failure)

    @on(TasksRequested)
    def _tasks_requested(self, message: TasksRequested) -> None:
        self._ask("listing asyncio tasks", lambda s: s.tasks(), TasksLoaded)

    @on(TasksLoaded)
    def _tasks_loaded(self, message: TasksLoaded) -> None:
        if self._wanted(message.request) and self.inspect_screen is not None:
            self.inspect_screen.show_tasks(message.tasks, message.failure)

    # -- metrics (psutil, from outside the target) -------------------------------------

    def sample_metrics(self) -> None:
        if self.target_pid is not None:
            self._metrics_worker(self.target_pid)

    @work(thread=True, exclusive=True, group="metrics", exit_on_error=False,
          description="sampling CPU and memory")
    def _metrics_worker(self, pid: int) -> None:
        try:
            if self._sampler is None:
                # CPU % is a difference between two samples: the first one only primes.
                self._sampler = self._make_sampler(pid)
                self._sampler.sample()
                return
            sample = self._sampler.sample()
        except TargetLost:
            self.post_message(SessionLost("target process %d exited" % pid))
            return
        except Exception as e:
            self.log.warning("sampling failed", e)
            return
        self.post_message(MetricsSampled(sample))

    @on(MetricsSampled)
    def _metrics_sampled(self, message: MetricsSampled) -> None:
        # A sample that arrives while leaving finds the screen being taken down
        if self.state.phase is not Phase.LIVE:
            return
        if self.inspect_screen is not None and message.sample.pid == self.target_pid:
            self.inspect_screen.show_sample(message.sample)

    # -- losing the session ---------------------------------------------------------------

    @on(SessionLost)
    def _session_lost(self, message: SessionLost) -> None:
        session = self.session
        if session is None:
            return
        self._set_state(self.state.lose(message.message))
        self._stop_session_timers()
        # Requests still queued are answered "lost" by _call, so every row that
        # was loading says why it stopped.
        # Usually already closed; when only the sampler saw the exit, this closes it.
        self._detach_worker(session, then_exit=False, notify=False)
        if self.inspect_screen is not None:
            self.inspect_screen.show_lost(message.message)

    # -- actions ------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in LETTER_ACTIONS and isinstance(self.focused, Input):
            return False  # the letter is typed into the input: not a key to show
        if self.offline and action in OFFLINE_REFUSED:
            return False  # a dump has nothing to refresh, detach from or re-attach to
        if action == "cancel":
            return self.busy
        if action == "refresh_target":
            return self.session is not None
        if action == "reattach":
            return self.state.can_reattach and self.screen is self.inspect_screen
        return True

    async def action_quit_app(self) -> None:
        """`q`: the same as ctrl+q, but only where letters are not being typed."""
        await self.action_quit()

    def action_show_help(self) -> None:
        self.action_help()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_cancel(self) -> None:
        cancelled = len(self._visible)
        pid = self.attaching
        if pid is not None:
            self._set_state(self.state.attach_ended())
            self.workers.cancel_group(self, "attach")
            self.picker.attach_ended()
            self.picker.show_error("stopped waiting for %d; an agent that starts late is "
                                   "detached at once" % pid)
            if self.inspect_screen is not None:
                self.inspect_screen.set_busy(None)
            cancelled += 1
        for request in list(self._visible):
            self._pending.pop(request, None)
        self._visible.clear()
        self._watches_running = False
        if self.inspect_screen is not None:
            self.inspect_screen.cancel_pending()
        self._show_busy()
        if cancelled:
            self.notify("Cancelled; an answer already on its way is dropped.", timeout=3)

    def action_reattach(self) -> None:
        if self.state.can_reattach and self.target_pid is not None:
            self._start_attach(self.target_pid)

    def action_refresh_target(self) -> None:
        if self.session is None:
            self.notify("The session is over: press a to re-attach.", severity="warning")
            return
        self._load_threads(visible=True)
        screen = self.inspect_screen
        if screen is not None:
            thread = screen.stack_tree.thread
            if thread is not None:
                self._load_stack(thread)
        self._load_modules()
        if screen is not None and screen.active_tab == "tab-tasks":
            self.post_message(TasksRequested())
        self.evaluate_watches()

    def action_detach(self) -> None:
        self._leave(then_exit=False)

    async def action_quit(self) -> None:
        self._leave(then_exit=True)

    def _leave(self, then_exit: bool) -> None:
        if self.detaching:
            if then_exit:  # asked twice: stop waiting; run_app detaches after the UI ends
                self.exit(0)
            return
        if self.attaching is not None:  # an agent that starts now detaches at once
            self.workers.cancel_group(self, "attach")
        session = self.session
        self._set_state(self.state.leave())
        self._stop_session_timers()
        self._pending.clear()
        self._visible.clear()
        self._show_busy()
        if session is None:
            self._set_state(self.state.left())
            if then_exit:
                self.exit(0)
            else:
                self._back_to_picker()
            return
        if self.inspect_screen is not None:
            self.inspect_screen.set_busy("detaching (the agent leaves the target)…")
        self._detach_worker(session, then_exit=then_exit, notify=True)

    @work(thread=True, group="detach", exit_on_error=False, description="detaching")
    def _detach_worker(self, session: SessionAPI, then_exit: bool, notify: bool) -> None:
        # Wait for the call in flight (bounded by the session's call timeout): two
        # threads must never write to the agent's connection at once.
        with self._lock:
            _quiet_detach(session)
        if notify:
            self.post_message(Detached(then_exit))

    @on(Detached)
    def _detached(self, message: Detached) -> None:
        self._set_state(self.state.left())
        if message.then_exit:
            self.exit(0)
            return
        self._back_to_picker()

    def _back_to_picker(self) -> None:
        self._stop_session_timers()
        if self.state.phase is not Phase.IDLE:
            self._set_state(self.state.left())
        self._sampler = None
        self.inspect_screen = None
        while self.screen is not self.picker and len(self.screen_stack) > 1:
            self.pop_screen()
        self.picker.show_error("")
        self.action_refresh_processes()
        self.refresh_bindings()


class OpeningScreen(Screen[None]):
    """What an offline viewer shows for the moment the dump takes to open."""

    def compose(self) -> Any:
        yield Static("opening the dump…", id="opening")


def _inspector_of(address: Address) -> Callable[[SessionAPI], inspector.Value]:
    def ask(session: SessionAPI) -> inspector.Value:
        return session.inspect(address.path_list(), expr=address.root_expr,
                               **_where(session, address.scope))
    return ask


def _where(session: SessionAPI, scope: Scope) -> dict[str, Any]:
    """Call arguments for a scope, with its frame's *current* index.

    Costs one stack read per request in a frame: the stack moves on between
    requests, and frame #1 of a busy worker is soon another function.
    """
    if not scope.is_frame or scope.qualname is None or scope.thread is None \
            or scope.frame_id is not None:  # the agent finds that very call itself
        return scope.call_args()
    stacks = session.stack(scope.thread)
    frames = stacks[0].frames if stacks else ()
    return scope.call_args(find_frame(frames, scope))


def _quiet_detach(session: SessionAPI) -> None:
    try:
        session.detach()
    except Exception:  # detaching is best effort: the agent also leaves on EOF
        pass


def _injection_text(session: SessionAPI) -> str:
    report = getattr(session, "injection", None)
    if report is None:
        # No injection: the resident agent (`inspector attach --keep`) answers
        return "resident agent" if getattr(session, "resident", None) else ""
    backend = getattr(report, "backend", "")
    stopped = getattr(report, "stopped_ms", None)
    if isinstance(stopped, (int, float)):
        if backend == "native":  # one thread held; the others ran on
            return "%s, 1 thread held %.0f ms" % (backend, stopped)
        return "%s, paused %.0f ms" % (backend, stopped)
    return str(backend)


def run_app(pid: int | None, *, injector: str = "native", redact: bool = True) -> int:
    """Run the TUI (called by `inspector tui [PID]`); returns the exit code."""
    app = InspectorApp(pid, injector=injector, redact=redact)
    try:
        code = app.run()
    finally:
        session = app.session
        if session is not None:
            _quiet_detach(session)
    if app.return_code not in (None, 0):
        return int(app.return_code)
    return int(code or 0)
