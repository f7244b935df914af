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
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Static

from inspector.census import census_diff
from inspector.diagnostics import Census

from ..fmt import clip_left, clock_time, human_bytes
from ..messages import CensusRequested

ROWS = 200  # types shown (the census itself lists every type, for the diff)
NUMBER_COLUMNS = ("Count", "Size", "Δ count", "Δ size")
CELL_PADDING = 2  # one cell either side of a column
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
        self._fitted_width = -1
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
        for label, key in zip(NUMBER_COLUMNS, ("count", "size", "dcount", "dsize"),
                              strict=True):
            table.add_column(label, key=key)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "take_census" and getattr(self.screen, "offline", False):
            return False  # a dump's census is the one it holds (shown at once)
        return True

    def action_take_census(self) -> None:
        self.query_one("#census-summary", Static).update("⋯ taking a census (esc cancels)")
        self.post_message(CensusRequested())

    def show_failure(self, message: str) -> None:
        self.query_one("#census-summary", Static).update("✖ " + message)

    def show_census(self, census: Census) -> None:
        """A new census: compared with the one before it, when there is one."""
        self.previous, self.census = self.census, census
        self.query_one("#census-intro").display = False  # the rows need the room
        self._fill()

    def on_resize(self) -> None:
        width = self.size.width
        if self.census is not None and width != self._fitted_width:
            self._fitted_width = width
            self.call_after_refresh(self._fill)  # once the table has its new size

    def _rows(self, census: Census) -> list[tuple[str, str, list[Text]]]:
        """(key, type name, style, number cells) of each row, biggest first."""
        rows: list[tuple[str, str, list[Text]]] = []
        if self.previous is None:
            for entry in census.entries[:ROWS]:
                rows.append((entry.type, "", [
                    Text(format(entry.count, ","), justify="right"),
                    Text(human_bytes(entry.size), justify="right"), Text(""), Text("")]))
            return rows
        by_type = census.by_type()
        deltas = census_diff(self.previous, census, top=0, growth_only=False)
        changed = {d.type for d in deltas}
        for d in deltas[:ROWS]:
            style = "bold" if d.count_delta > 0 else "dim"
            size_delta = (("+" if d.size_delta > 0 else "-") + human_bytes(abs(d.size_delta))
                          if d.size_delta else "")
            rows.append((d.type, style, [
                Text(format(d.count_after, ","), justify="right"),
                Text(human_bytes(d.size_after), justify="right"),
                Text(signed(d.count_delta), style=style, justify="right"),
                Text(size_delta, justify="right")]))
        for entry in census.entries:  # unchanged ones after, by count
            if len(rows) >= ROWS:
                break
            if entry.type not in changed and entry.type in by_type:
                rows.append((entry.type, "dim", [
                    Text(format(entry.count, ","), justify="right"),
                    Text(human_bytes(entry.size), justify="right"), Text(""), Text("")]))
        return rows

    def _fill(self) -> None:
        census = self.census
        if census is None:
            return
        table = self.query_one(DataTable)
        rows = self._rows(census)
        # The numbers keep their width; the type name gets the rest, cut from the
        # left (`….attributes.InstrumentedAttribute`) when it must be cut.
        numbers = sum(max([len(label)] + [r[2][i].cell_len for r in rows]) + CELL_PADDING
                      for i, label in enumerate(NUMBER_COLUMNS))
        width = table.scrollable_content_region.width
        room = max(12, width - numbers - CELL_PADDING) if width > 0 else 0
        before = self.previous.by_type() if self.previous is not None else None
        table.clear()
        for key, style, cells in rows:
            name = key + (" (new)" if before is not None and key not in before else "")
            table.add_row(Text(clip_left(name, room) if room else name, style=style), *cells,
                          key=key)
        summary = census_summary(census)
        if self.previous is not None:
            summary += " · Δ since %s" % clock_time(self.previous.taken_at)
        self.query_one("#census-summary", Static).update(summary)

    def cursor_text(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        cells = [str(cell) for cell in table.get_row_at(table.cursor_row)]
        row_key, _ = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0))
        if row_key.value is not None:
            cells[0] = row_key.value  # the whole type name, not the cut one on screen
        return " ".join(cell for cell in cells if cell)
