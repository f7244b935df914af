"""CensusView: objects the target's garbage collector tracks, by type.

A census walks every object (about half a second per million, pausing the
target's threads for at most ~25 ms at a time), so it is taken only when the
operator asks (`n`). From the second one on, the table shows what grew since
the previous census, largest growth first: the leak hunter's question.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from inspector.census import census_diff
from inspector.diagnostics import Census

from ..fmt import clock_time, human_bytes
from ..messages import CensusRequested

ROWS = 200  # types shown (the census itself lists every type, for the diff)
INTRO = ("Objects the garbage collector tracks, by type. n takes a census: it walks every "
         "object (~0.5 s per million; the target's threads pause ≤ 25 ms at a time). Take "
         "a second one later to see what grew.")


def census_summary(census: Census) -> str:
    text = "%s objects · %s · %s types · took %.2f s (longest pause %.0f ms) · at %s" % (
        format(census.total_objects, ","), human_bytes(census.total_size),
        format(census.distinct_types, ","), census.duration, census.max_hold * 1000,
        clock_time(census.taken_at))
    if not census.complete:
        text += " · PARTIAL: the %s budget ran out" % (census.stopped or "time")
    return text


def signed(n: int) -> str:
    return "%+d" % n if n else ""


class CensusView(Vertical):
    """Intro, the census table, a summary line."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "take_census", "New census"),
    ]
    DEFAULT_CSS = """
    CensusView #census-intro { color: $text-muted; padding: 0 1; height: auto; }
    CensusView #census-summary { padding: 0 1; height: auto; }
    CensusView DataTable { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.census: Census | None = None
        self.previous: Census | None = None

    def compose(self) -> ComposeResult:
        yield Static(INTRO, id="census-intro")
        yield DataTable(id="census-table", cursor_type="row")
        yield Static("no census yet: n takes one", id="census-summary", markup=False)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("Type", key="type")
        table.add_column("Count", key="count")
        table.add_column("Size", key="size")
        table.add_column("Δ count", key="dcount")
        table.add_column("Δ size", key="dsize")

    def action_take_census(self) -> None:
        self.query_one("#census-summary", Static).update("⋯ taking a census (esc cancels)")
        self.post_message(CensusRequested())

    def show_failure(self, message: str) -> None:
        self.query_one("#census-summary", Static).update("✖ " + message)

    def show_census(self, census: Census) -> None:
        """A new census: compared with the one before it, when there is one."""
        self.previous, self.census = self.census, census
        table = self.query_one(DataTable)
        table.clear()
        by_type = census.by_type()
        if self.previous is None:
            for entry in census.entries[:ROWS]:
                table.add_row(Text(entry.type), Text(format(entry.count, ","), justify="right"),
                              Text(human_bytes(entry.size), justify="right"), "", "",
                              key=entry.type)
        else:
            deltas = census_diff(self.previous, census, top=0, growth_only=False)
            changed = {d.type for d in deltas}
            for d in deltas[:ROWS]:
                style = "bold" if d.count_delta > 0 else "dim"
                table.add_row(Text(d.type + (" (new)" if d.new else ""), style=style),
                              Text(format(d.count_after, ","), justify="right"),
                              Text(human_bytes(d.size_after), justify="right"),
                              Text(signed(d.count_delta), style=style, justify="right"),
                              Text(("+" if d.size_delta > 0 else "-" if d.size_delta < 0
                                    else "") + human_bytes(abs(d.size_delta))
                                   if d.size_delta else "", justify="right"),
                              key=d.type)
            for entry in census.entries:  # unchanged ones after, by count
                if len(table.rows) >= ROWS:
                    break
                if entry.type not in changed and entry.type in by_type:
                    table.add_row(Text(entry.type, style="dim"),
                                  Text(format(entry.count, ","), justify="right"),
                                  Text(human_bytes(entry.size), justify="right"), "", "",
                                  key=entry.type)
        summary = census_summary(census)
        if self.previous is not None:
            summary += " · Δ since %s" % clock_time(self.previous.taken_at)
        self.query_one("#census-summary", Static).update(summary)

    def cursor_text(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return " ".join(str(cell) for cell in table.get_row_at(table.cursor_row) if str(cell))
