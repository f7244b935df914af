"""InspectScreen: one attached process at a glance.

    metrics bar: pid · Python · uptime · CPU and RSS sparklines
    [banner when the target or its agent is gone]
    threads      | Stack | Modules | Objects | Tasks
    watches      | console (evaluates in the highlighted frame or __main__)
    status line (spinner, esc cancels) · footer

The screen arranges widgets and relays between them (a frame highlighted in
the stack becomes the console's scope); the app owns the session and hands
results down through the `show_*` methods.
"""

from __future__ import annotations

import time
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Static, TabbedContent, TabPane

from inspector.diagnostics import Census, TaskInfo
from inspector.metrics import ProcessSample
from inspector.models import ModuleInfo, ThreadInfo, ThreadStack, Value

from ..messages import Failure, FrameHighlighted, TasksRequested, WatchPinned, WatchUnpinned
from ..values import Address
from ..watching import Watch
from ..widgets.census_view import CensusView
from ..widgets.eval_console import EvalConsole, HistoryInput, Transcript
from ..widgets.metrics_bar import MetricsBar
from ..widgets.modules_table import ModulesTable
from ..widgets.stack_tree import StackTree
from ..widgets.status_line import StatusLine
from ..widgets.tasks_view import TasksView
from ..widgets.threads_table import ThreadsTable
from ..widgets.value_tree import ValueTree
from ..widgets.watch_list import WatchList

TAB_WIDGETS = {"tab-stack": "#stack", "tab-modules": "#modules", "tab-objects": "#census-table",
               "tab-tasks": "#tasks"}  # what gets the focus in each tab
COMPACT_FOOTER_BELOW = 110  # columns
WIDE_TABS = ("tab-modules", "tab-objects")
WATCHES_HINT = "p on a value, or ctrl+t in the console, pins a watch here."


class InspectScreen(Screen[None]):
    """Threads, stack, console, watches, modules of one attached process."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "app.refresh_target", "Refresh"),
        Binding("f5", "app.refresh_target", "Refresh", show=False),
        Binding("p", "pin", "Pin"),
        Binding("c", "copy", "Copy"),
        Binding("tab", "switch_pane(1)", "Pane"),
        Binding("shift+tab", "switch_pane(-1)", "Previous pane", show=False),
        Binding("e,slash", "focus_console", "Query"),
        Binding("d", "app.detach", "Detach"),
        Binding("q", "app.quit_app", "Quit"),
        Binding("ctrl+q", "app.quit", "Quit", show=False, priority=True),  # shown as q
        Binding("question_mark", "app.show_help", "Help"),
        Binding("s", "show_tab('tab-stack')", "Stack", show=False),
        Binding("m", "show_tab('tab-modules')", "Modules", show=False),
        Binding("o", "show_tab('tab-objects')", "Objects", show=False),
        Binding("t", "show_tab('tab-tasks')", "Tasks", show=False),
    ]

    def __init__(self, pid: int, version: tuple[int, ...], how: str = "", *,
                 watch_interval: float = 2.0, offline: bool = False) -> None:
        super().__init__()
        self.offline = offline  # a dump: no console, no watches, nothing to fetch
        self.pid = pid
        self.version = version
        self.how = how
        self.watch_interval = watch_interval
        self.lost = False

    def compose(self) -> ComposeResult:
        yield MetricsBar(id="metrics")
        yield Static("", id="lost-banner", markup=False)
        with Horizontal(id="body"):
            with Vertical(id="side"):
                with Vertical(id="threads-pane", classes="pane"):
                    yield ThreadsTable(id="threads")
                with Vertical(id="watches-pane", classes="pane"):
                    yield Static(WATCHES_HINT, id="watches-hint")
                    yield WatchList(id="watches")
            with Vertical(id="main"):
                with TabbedContent(id="tabs", initial="tab-stack"):
                    with TabPane("Stack", id="tab-stack"):
                        yield StackTree(id="stack")
                    with TabPane("Modules", id="tab-modules"):
                        yield ModulesTable(id="modules")
                    with TabPane("Objects", id="tab-objects"):
                        yield CensusView(id="census")
                    with TabPane("Tasks", id="tab-tasks"):
                        yield TasksView("asyncio tasks", id="tasks")
                yield EvalConsole(id="console", classes="pane")
        yield StatusLine(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#threads-pane").border_title = "Threads"
        self.query_one("#watches-pane").border_title = "Watches"
        self.query_one(MetricsBar).show_target(self.pid, self.version, self.how,
                                               offline=self.offline)
        self.set_class(self.offline, "-offline")
        # Tabs switch with s/m/o/t or a click; keeping the tab bar out of the focus
        # chain makes tab go threads → stack → console → watches.
        self.query_one("#tabs Tabs").can_focus = False
        self.query_one(ThreadsTable).focus()

    # -- handed down by the app -------------------------------------------------------

    @property
    def stack_tree(self) -> StackTree:
        return self.query_one(StackTree)

    @property
    def eval_console(self) -> EvalConsole:
        return self.query_one(EvalConsole)

    def show_threads(self, threads: list[ThreadInfo]) -> None:
        self.query_one(ThreadsTable).show_threads(threads)

    def show_stack_loading(self, thread: ThreadInfo) -> None:
        self.stack_tree.show_loading(thread)

    def show_stack(self, thread: ThreadInfo, stack: ThreadStack | None,
                   failure: Failure | None) -> None:
        self.stack_tree.show_stack(thread, stack, failure)

    def show_locals(self, token: int, value: Value | None, failure: Failure | None) -> None:
        self.stack_tree.show_locals(token, value, failure)

    def show_children(self, tree: str, token: int, offset: int, value: Value | None,
                      failure: Failure | None) -> None:
        for widget in self.query(ValueTree):
            if widget.id == tree:
                widget.show_children(token, offset, value, failure)

    def show_result(self, token: int, value: Value | None, failure: Failure | None,
                    note: str = "") -> None:
        self.eval_console.show_result(token, value, failure, note)

    def show_census(self, census: Census | None, failure: Failure | None) -> None:
        view = self.query_one(CensusView)
        if census is None:
            view.show_failure((failure or Failure("error", "no answer")).message)
        else:
            view.show_census(census)

    def show_tasks(self, tasks: list[TaskInfo] | None, failure: Failure | None) -> None:
        self.query_one(TasksView).show_tasks(tasks, failure)

    @property
    def active_tab(self) -> str:
        return self.query_one(TabbedContent).active or ""

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        # Tasks are cheap to list: read them when the tab is shown. A census is
        # not (it walks every object): it waits for n.
        if self.active_tab == "tab-tasks" and not self.lost:
            self.post_message(TasksRequested())
        # Tables need the width more than the thread list: on a narrow screen
        # the Threads/Watches column folds away while they are shown.
        self.set_class(self.active_tab in WIDE_TABS, "-wide-tab")

    def show_modules(self, modules: list[ModuleInfo]) -> None:
        self.query_one(ModulesTable).show_modules(modules)

    def show_watches(self, watches: list[Watch]) -> None:
        self.query_one(WatchList).show_watches(watches)
        self.query_one("#watches-hint").display = not watches
        self.query_one("#watches-pane").border_subtitle = (
            "%d · every %gs" % (len(watches), self.watch_interval) if watches else "")

    def show_sample(self, sample: ProcessSample) -> None:
        self.query_one(MetricsBar).add_sample(sample)
        self.query_one(ThreadsTable).show_cpu(sample.thread_cpu, sample.busiest_thread)

    def set_busy(self, text: str | None) -> None:
        self.query_one(StatusLine).set_busy(text)

    def cancel_pending(self) -> None:
        for tree in self.query(ValueTree):
            tree.cancel_pending()

    def show_lost(self, message: str) -> None:
        """The target or its agent is gone: say so, keep the last data, stop fetching."""
        self.lost = True
        self.add_class("-lost")
        self.query_one("#lost-banner", Static).update(
            "✖ %s. The data below is the last read (read-only). "
            "a re-attaches · d goes back to the picker · q quits" % message.rstrip("."))
        for tree in self.query(ValueTree):
            tree.read_only = True
        self.eval_console.set_read_only(True)
        self.refresh_bindings()

    def show_reattaching(self, pid: int) -> None:
        self.query_one(StatusLine).set_busy("re-attaching to %d…" % pid,
                                            started=time.monotonic())

    def show_reattach_failed(self, message: str) -> None:
        self.query_one("#lost-banner", Static).update(
            "✖ re-attach failed: %s. a tries again · d goes back to the picker · q quits"
            % message.rstrip("."))

    # -- relays between widgets -------------------------------------------------------

    @on(FrameHighlighted)
    def _frame_highlighted(self, event: FrameHighlighted) -> None:
        event.stop()
        self.eval_console.frame_scope = event.scope

    # -- actions ----------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Once the session is over only reading what is on screen works: keep the
        # footer to the keys that still do something (copy, help, re-attach, leave).
        if (self.lost or self.offline) and action in ("pin", "focus_console"):
            return False
        # While typing a query, letters are text: their keys leave the footer.
        if isinstance(self.focused, HistoryInput) and action in ("pin", "copy",
                                                                 "focus_console"):
            return False
        return True

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        self.query_one(TAB_WIDGETS[tab]).focus()

    def panes(self) -> list[Widget]:
        """The focus stops of tab, in reading order: threads, tab, console, watches."""
        tabs = self.query_one(TabbedContent)
        active = TAB_WIDGETS.get(tabs.active or "")
        panes: list[Widget] = [self.query_one(ThreadsTable)]
        if active:
            panes.append(self.query_one(active))
        if not self.offline:
            if not self.lost:
                panes.append(self.query_one(HistoryInput))
            panes.append(self.query_one(Transcript))
        if self.query_one(WatchList).children and not self.offline:
            panes.append(self.query_one(WatchList))
        return panes

    def action_switch_pane(self, step: int) -> None:
        panes = self.panes()
        index = -1
        node = self.focused
        while node is not None and index < 0:
            if node in panes:
                index = panes.index(node)
            node = node.parent if isinstance(node.parent, Widget) else None
        panes[(index + step) % len(panes)].focus()

    @on(HistoryInput.Left)
    async def _console_left(self, event: HistoryInput.Left) -> None:
        event.stop()
        # While something loads, esc cancels it, as everywhere ("esc cancels" on
        # the running row); otherwise it leaves, back to the tab that was showing.
        if getattr(self.app, "busy", False):
            await self.app.run_action("app.cancel")
            return
        target = TAB_WIDGETS.get(self.active_tab)
        self.query_one(target or "#stack").focus()

    def on_resize(self) -> None:
        # At 80 columns the full footer loses its last keys (Quit, Help)
        self.query_one(Footer).compact = self.size.width < COMPACT_FOOTER_BELOW

    @on(ThreadsTable.RowSelected)
    def _thread_chosen(self) -> None:
        self.stack_tree.focus()

    def action_focus_console(self) -> None:
        if not self.lost and not self.offline:
            self.query_one(HistoryInput).focus()

    def action_pin(self) -> None:
        focused = self.focused
        if isinstance(focused, WatchList):
            watch = focused.highlighted_watch()
            if watch is not None:
                self.post_message(WatchUnpinned(watch.key))
            return
        if isinstance(focused, HistoryInput):
            self.eval_console.action_pin_query()
            return
        if isinstance(focused, ValueTree):
            address: Address | None = focused.cursor_address()
            if address is not None:
                self.post_message(WatchPinned(address))
                return
        self.notify("Highlight a value in the stack or the console, then press p to pin it.",
                    severity="warning")

    def action_copy(self) -> None:
        focused = self.focused
        text: str | None = None
        if isinstance(focused, (ValueTree, ModulesTable)):
            text = focused.cursor_text()
        elif focused is not None and isinstance(focused.parent, CensusView):
            text = focused.parent.cursor_text()
        elif isinstance(focused, WatchList):
            watch = focused.highlighted_watch()
            text = "%s = %s" % (watch.label, watch.text) if watch else None
        elif isinstance(focused, ThreadsTable):
            thread = focused.current_thread()
            text = ("%s (ident %d, native %s)" % (thread.label, thread.ident, thread.native_id)
                    if thread else None)
        if not text:
            self.notify("Nothing to copy here: highlight a value, frame, watch or module.",
                        severity="warning")
            return
        self.app.copy_to_clipboard(text)
        self.notify("Copied %d characters." % len(text), timeout=2)
