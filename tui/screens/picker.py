"""PickerScreen: choose a Python process to attach to.

The filter input keeps the focus (type to filter, like fzf); up/down move in
the table, Enter attaches. The app refreshes the list every ~2 s and reports
attach progress and failures here, inline, without leaving the screen.
"""

from __future__ import annotations

import time
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from inspector.procs import PythonProcess

from ..messages import ProcessChosen
from ..widgets.process_table import COLUMNS, ProcessTable, supported
from ..widgets.status_line import StatusLine


class PickerScreen(Screen[None]):
    """The process list."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "attach", "Attach", priority=True),
        # The filter input has the focus and would scroll itself on these.
        Binding("up", "move(-1)", "Up", show=False, priority=True),
        Binding("down", "move(1)", "Down", show=False, priority=True),
        Binding("pageup", "move(-10)", show=False, priority=True),
        Binding("pagedown", "move(10)", show=False, priority=True),
        Binding("f5", "app.refresh_processes", "Refresh"),
        Binding("f6", "sort_next", "Sort"),
        Binding("f7", "sort_reverse", "Reverse"),
        Binding("f1", "app.help", "Help"),
        Binding("question_mark", "app.help", "Help", show=False, priority=True),
    ]

    def __init__(self) -> None:
        super().__init__(id="picker")
        self.processes: list[PythonProcess] = []
        self.listed = False

    def compose(self) -> ComposeResult:
        yield Static("inspector · pick a Python process to inspect", id="picker-title")
        yield Static("Enter attaches: the process pauses for a few ms while a read-only agent "
                     "starts in it; detaching removes it and leaves nothing behind.",
                     id="picker-hint")
        yield Input(placeholder="type to filter by pid, user, version or command",
                    id="picker-filter")
        yield ProcessTable(id="processes")
        yield Static("", id="picker-detail", markup=False)
        yield Static("", id="picker-error", markup=False)
        yield Static("", id="picker-attaching", markup=False)
        yield StatusLine(id="picker-status")
        yield Static("", id="picker-summary")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(ProcessTable).can_focus = False
        self.query_one("#picker-filter", Input).focus()
        self._summary()

    @property
    def table(self) -> ProcessTable:
        return self.query_one(ProcessTable)

    @property
    def filter_text(self) -> str:
        return self.query_one("#picker-filter", Input).value

    def show_processes(self, processes: list[PythonProcess]) -> None:
        if not self.is_mounted:  # an offline dump viewer never shows the picker
            return
        self.processes = processes
        self.listed = True
        self.table.show_processes(processes, self.filter_text)
        self._summary()
        self._detail()

    def _summary(self) -> None:
        table = self.table
        sort = next(c.title for c in COLUMNS if c.key == table.sort_column)
        if not self.listed:
            text = "looking for Python processes…"
        else:
            text = "%d of %d Python processes · sorted by %s · f6 changes the column" % (
                len(table.rows_shown), len(self.processes), sort)
        self.query_one("#picker-summary", Static).update(text)

    @on(Input.Changed, "#picker-filter")
    def _filter_changed(self) -> None:
        self.table.show_processes(self.processes, self.filter_text)
        if self.table.row_count:
            self.table.move_cursor(row=0)
        self._summary()

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self) -> None:
        self._detail()

    def _detail(self) -> None:
        """The highlighted process in full (the table cuts long commands)."""
        p = self.table.current_process()
        text = ""
        if p is not None:
            text = "%d · %s · Python %s%s · %s" % (
                p.pid, p.user, p.version, "" if supported(p) else " (not supported: 3.8–3.13)",
                p.command)
        self.query_one("#picker-detail", Static).update(text)

    @on(DataTable.HeaderSelected)
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        self.table.sort_by(str(event.column_key.value))
        self._resort()

    @on(DataTable.RowSelected)
    def _row_clicked(self) -> None:
        self.action_attach()

    def action_move(self, step: int) -> None:
        table = self.table
        if table.row_count:
            row = max(0, min(table.row_count - 1, table.cursor_row + step))
            table.move_cursor(row=row)

    def action_sort_next(self) -> None:
        self.table.sort_by(self.table.next_sort_column())
        self._resort()

    def action_sort_reverse(self) -> None:
        self.table.sort_reverse = not self.table.sort_reverse
        self._resort()

    def _resort(self) -> None:
        self.table.show_processes(self.processes, self.filter_text)
        self._summary()

    def action_attach(self) -> None:
        process = self.table.current_process()
        if process is None:
            self.show_error("No process selected: clear the filter or wait for the list.")
            return
        self.post_message(ProcessChosen(process.pid))

    # -- attach progress, from the app ------------------------------------------------

    def attach_started(self, pid: int, injector: str) -> None:
        if not self.is_mounted:  # an offline dump viewer never shows the picker
            return
        self.show_error("")
        banner = self.query_one("#picker-attaching", Static)
        banner.update("⋯ attaching to %d: starting the agent in the target (a few seconds on a "
                      "busy machine) — esc cancels" % pid)
        banner.add_class("-shown")
        status = self.query_one(StatusLine)
        status.set_busy("attaching to %d with %s…" % (pid, injector), started=time.monotonic())

    def attach_ended(self) -> None:
        if not self.is_mounted:  # an offline dump viewer never shows the picker
            return
        self.query_one("#picker-attaching", Static).remove_class("-shown")
        self.query_one(StatusLine).set_busy(None)

    def show_error(self, message: str) -> None:
        if not self.is_mounted:  # an offline dump viewer never shows the picker
            return
        error = self.query_one("#picker-error", Static)
        error.update("✖ " + message if message else "")
        error.set_class(bool(message), "-shown")
