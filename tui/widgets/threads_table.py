"""ThreadsTable: the target's threads, with per-thread CPU from outside.

The main thread is marked, the inspector's own agent thread is listed last and
dimmed, and the one thread burning a core (likely the one holding the GIL) is
flagged. Moving the cursor to another thread posts `ThreadHighlighted`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.widgets import DataTable

from inspector.models import ThreadInfo

from ..fmt import fit
from ..messages import ThreadHighlighted

NAME_SPARE = 13  # cells of a row that are not the name: marker, CPU %, cell padding


def thread_order(thread: ThreadInfo) -> tuple[int, str]:
    rank = 0 if thread.is_main else 2 if thread.is_agent else 1
    return rank, thread.label


def marker(thread: ThreadInfo, busy: bool) -> str:
    if busy:
        return "▲"
    if thread.is_agent:
        return "·"
    return "●" if thread.is_main else " "


class ThreadsTable(DataTable[Text]):
    """One row per thread: marker (● main, ▲ busy, · agent), name, CPU %."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "threads-table--busy", "threads-table--agent", "threads-table--muted",
        "threads-table--main",
    }
    DEFAULT_CSS = """
    ThreadsTable > .threads-table--busy { color: $text-error; text-style: bold; }
    ThreadsTable > .threads-table--agent { color: $text-muted; text-style: italic; }
    ThreadsTable > .threads-table--muted { color: $text-muted; }
    ThreadsTable > .threads-table--main { color: $text-accent; }
    ThreadsTable { overflow-x: hidden; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        self._fitted_width = -1
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=False)
        self.threads: list[ThreadInfo] = []
        self.thread_cpu: dict[int, float] = {}
        self.busiest: int | None = None
        self._posted: int | None = None

    def on_mount(self) -> None:
        self.add_column(" ", key="mark", width=1)
        self.add_column("Thread", key="name")
        self.add_column("CPU%", key="cpu", width=5)

    def show_threads(self, threads: list[ThreadInfo]) -> None:
        """Replace the rows, keeping the cursor on the same thread."""
        current = self.current_thread()
        self.threads = sorted(threads, key=thread_order)
        self._render_rows(current.ident if current else None)

    def show_cpu(self, thread_cpu: Mapping[int, float], busiest: int | None = None) -> None:
        """Per-thread CPU %; `busiest` (ProcessSample.busiest_thread) is the one
        thread burning a core, which gets the ▲ (none when several do)."""
        self.thread_cpu = dict(thread_cpu)
        self.busiest = busiest
        current = self.current_thread()
        self._render_rows(current.ident if current else None)

    def _busy(self, thread: ThreadInfo) -> bool:
        return self.busiest is not None and thread.native_id == self.busiest

    def _cells(self, thread: ThreadInfo) -> tuple[Text, Text, Text]:
        busy = self._busy(thread)
        role = "busy" if busy else "agent" if thread.is_agent else (
            "main" if thread.is_main else "")
        style = (self.get_component_rich_style("threads-table--" + role, partial=True)
                 if role else Style())
        muted = self.get_component_rich_style("threads-table--muted", partial=True)
        pct = self.thread_cpu.get(thread.native_id or -1)
        cpu = "%5.1f" % pct if pct is not None else "    -"
        name = Text(thread.label, style=style)
        room = self.scrollable_content_region.width - NAME_SPARE
        return (Text(marker(thread, busy), style=style), fit(name, room) if room > 0 else name,
                Text(cpu, style=style if busy else muted))

    def on_resize(self) -> None:
        width = self.size.width
        if width != self._fitted_width:
            self._fitted_width = width
            self.call_after_refresh(self._refill)  # once the table has its new size

    def _refill(self) -> None:
        current = self.current_thread()
        self.clear()  # cells are fitted to the width: build them again
        self._render_rows(current.ident if current else None)

    def _render_rows(self, keep: int | None) -> None:
        keys = [str(t.ident) for t in self.threads]
        if keys == [str(k.value) for k in self.rows]:
            # Same threads: update the cells in place (no scroll jump, no flicker).
            for thread, key in zip(self.threads, keys, strict=True):
                for column, cell in zip(("mark", "name", "cpu"), self._cells(thread),
                                        strict=True):
                    self.update_cell(key, column, cell)
            return
        self.clear()
        for thread, key in zip(self.threads, keys, strict=True):
            self.add_row(*self._cells(thread), key=key)
        if keep is not None:
            for index, thread in enumerate(self.threads):
                if thread.ident == keep:
                    self.move_cursor(row=index, animate=False, scroll=False)
                    break

    def current_thread(self) -> ThreadInfo | None:
        if not self.threads or self.row_count == 0:
            return None
        row = self.cursor_row
        if 0 <= row < len(self.threads):
            return self.threads[row]
        return None

    def select_ident(self, ident: int) -> None:
        for index, thread in enumerate(self.threads):
            if thread.ident == ident:
                self.move_cursor(row=index)
                return

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        thread = self.current_thread()
        if thread is not None and thread.ident != self._posted:
            self._posted = thread.ident
            self.post_message(ThreadHighlighted(thread))
