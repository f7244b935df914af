"""ProcessTable: Python processes on this machine, filtered and sorted.

`filter_processes` and `sort_processes` are pure so they are tested alone.
Clicking a column header sorts by it (again: reverses).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual.widgets import DataTable

from inspector.procs import SUPPORTED, PythonProcess, version_tuple

from ..fmt import fit, human_bytes


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    sort_key: Callable[[PythonProcess], Any]
    descending: bool  # the natural first direction (busiest first)
    width: int | None  # fixed, with room for the sort arrow; None: as wide as the data


COLUMNS: tuple[Column, ...] = (
    Column("pid", "PID", lambda p: p.pid, False, 7),
    Column("user", "USER", lambda p: p.user, False, 8),
    Column("version", "PY", lambda p: version_tuple(p.version) or (0, 0), True, 5),
    Column("cpu", "CPU%", lambda p: p.cpu_percent, True, 6),
    Column("rss", "RSS", lambda p: p.rss, True, 7),
    Column("threads", "THR", lambda p: p.num_threads, True, 5),
    Column("command", "COMMAND", lambda p: p.command, False, None),
)
COLUMN_KEYS = tuple(c.key for c in COLUMNS)
# Cells before COMMAND, with one cell of padding either side of every column:
# a command line is cut there with an ellipsis, never inside a number (--port 8080).
FIXED_WIDTH = sum(c.width or 0 for c in COLUMNS) + 2 * len(COLUMNS)


def filter_processes(rows: Iterable[PythonProcess], text: str) -> list[PythonProcess]:
    """Rows whose pid, user, version or command contain every word of `text`."""
    words = text.lower().split()
    out = []
    for p in rows:
        hay = "%d %s %s %s" % (p.pid, p.user, p.version, p.command)
        hay = hay.lower()
        if all(w in hay for w in words):
            out.append(p)
    return out


def sort_processes(rows: Iterable[PythonProcess], column: str,
                   reverse: bool = False) -> list[PythonProcess]:
    col = next(c for c in COLUMNS if c.key == column)
    descending = col.descending != reverse
    return sorted(rows, key=lambda p: (col.sort_key(p), p.pid), reverse=descending)


def supported(p: PythonProcess) -> bool:
    version = version_tuple(p.version)
    return version is not None and SUPPORTED[0] <= version <= SUPPORTED[1]


class ProcessTable(DataTable[Text]):
    """The picker's table."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"process-table--unsupported"}
    DEFAULT_CSS = """
    ProcessTable > .process-table--unsupported { color: $text-muted; text-style: italic; }
    ProcessTable { overflow-x: hidden; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        self._fitted_width = -1
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=True)
        self.rows_shown: list[PythonProcess] = []
        self.sort_column = "cpu"
        self.sort_reverse = False
        self._shown_args: tuple[list[PythonProcess], str] | None = None

    def on_resize(self) -> None:
        width = self.size.width
        if self._shown_args is not None and width != self._fitted_width:
            self._fitted_width = width  # command cells are fitted to the width
            self.call_after_refresh(self._refill)  # once the table has its new size

    def _refill(self) -> None:
        if self._shown_args is not None:
            self.show_processes(*self._shown_args)

    def on_mount(self) -> None:
        for col in COLUMNS:
            self.add_column(col.title, key=col.key, width=col.width)

    def show_processes(self, rows: list[PythonProcess], filter_text: str) -> None:
        """Redraw with the filter and sort applied, keeping the cursor's pid."""
        self._shown_args = (rows, filter_text)
        current = self.current_process()
        shown = sort_processes(filter_processes(rows, filter_text), self.sort_column,
                               self.sort_reverse)
        self.rows_shown = shown
        self._label_sorted_column()  # before clear(): clearing drops the cached header
        self.clear()
        muted = self.get_component_rich_style("process-table--unsupported", partial=True)
        for p in shown:
            style = muted if not supported(p) else ""
            command = p.command + ("  [agent: %s]" % p.agent if p.agent else "")
            room = self.scrollable_content_region.width - FIXED_WIDTH
            cell = fit(Text(command, style), room) if room > 0 else Text(command, style)
            self.add_row(Text(str(p.pid), style), Text(p.user[:8], style),
                         Text(p.version, style), Text("%5.1f" % p.cpu_percent, style),
                         Text(human_bytes(p.rss), style), Text(str(p.num_threads), style),
                         cell, key=str(p.pid))
        if current is not None:
            for index, p in enumerate(shown):
                if p.pid == current.pid:
                    self.move_cursor(row=index, animate=False)
                    break

    def _label_sorted_column(self) -> None:
        for col in COLUMNS:
            arrow = ""
            if col.key == self.sort_column:
                arrow = " ▼" if col.descending != self.sort_reverse else " ▲"
            self.columns[col.key].label = Text(col.title + arrow)  # type: ignore[index]

    def current_process(self) -> PythonProcess | None:
        if not self.rows_shown or not 0 <= self.cursor_row < len(self.rows_shown):
            return None
        return self.rows_shown[self.cursor_row]

    def sort_by(self, column: str) -> None:
        if column == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = column, False

    def next_sort_column(self) -> str:
        index = COLUMN_KEYS.index(self.sort_column)
        return COLUMN_KEYS[(index + 1) % len(COLUMN_KEYS)]
