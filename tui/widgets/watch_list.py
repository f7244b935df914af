"""WatchList: pinned queries, re-evaluated by the app every few seconds.

A number gets a sparkline and its min/max; anything else shows when it last
changed. `p` (or delete) on a highlighted watch unpins it.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Label, ListItem, ListView, Sparkline

from ..fmt import clock_time, fit
from ..messages import WatchUnpinned
from ..values import clip
from ..watching import Watch, compact_number

ERROR_ICONS = {"denied": "⊘", "budget": "◔", "lost": "✖"}


def watch_summary(watch: Watch) -> str:
    """The second line's text part: value, min/max or when it changed."""
    if watch.updated_at is None:
        return "⋯ waiting for the first value"
    if watch.error_kind is not None:
        return "%s %s" % (ERROR_ICONS.get(watch.error_kind, "✖"), watch.text)
    if watch.is_number:
        lo, hi = watch.minimum, watch.maximum
        assert lo is not None and hi is not None
        return "%s  (%s–%s)" % (watch.text, compact_number(lo), compact_number(hi))
    return watch.text


def watch_title(watch: Watch) -> Text:
    """The first line: what is watched, where, and when a non-number last changed."""
    scope = watch.address.scope
    text = Text(clip(watch.label, 60))
    if scope.is_frame:
        text.append("  in " + scope.label, "dim")
    if not watch.is_number and watch.changed_at is not None:
        text.append("  changed %s" % clock_time(watch.changed_at), "dim")
    return text


SPARKLINE_ROOM = 7  # its minimum width and margin


class WatchRow(ListItem):
    """Two lines: what is watched, then its value."""

    DEFAULT_CSS = """
    WatchRow { height: 2; }
    WatchRow .watch-label { width: 1fr; height: 1; text-style: bold; }
    WatchRow .watch-value-line { height: 1; }
    WatchRow .watch-value { width: auto; max-width: 1fr; height: 1; }
    WatchRow Sparkline { width: 1fr; min-width: 6; height: 1; margin: 0 0 0 1; }
    WatchRow.-error .watch-value { color: $text-error; }
    WatchRow.-text Sparkline { display: none; }
    """

    def __init__(self, watch: Watch) -> None:
        super().__init__()
        self.pinned = watch

    def compose(self) -> ComposeResult:
        yield Label(watch_title(self.pinned), classes="watch-label", markup=False)
        with Horizontal(classes="watch-value-line"):
            yield Label("", classes="watch-value", markup=False)
            yield Sparkline([])

    def on_resize(self) -> None:
        self.update_watch()

    def update_watch(self) -> None:
        if not self.is_mounted:
            return
        watch = self.pinned
        self.set_class(watch.error_kind is not None, "-error")
        self.set_class(not watch.is_number, "-text")
        # Fitted to the row, never cut inside a number (a Label crops blindly)
        width = self.size.width
        spark = SPARKLINE_ROOM if watch.is_number else 0
        self.query_one(".watch-label", Label).update(fit(watch_title(watch), width))
        self.query_one(".watch-value", Label).update(
            fit(Text(watch_summary(watch)), width - spark if width else 0))
        if watch.is_number:
            self.query_one(Sparkline).data = list(watch.history)

    def on_mount(self) -> None:
        self.update_watch()


class WatchList(ListView):
    """The pinned queries."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("delete", "unpin", "Unpin", show=False),
    ]

    def show_watches(self, watches: list[Watch]) -> None:
        """Add, update and remove rows so they match `watches` (in order)."""
        rows = {row.pinned.key: row for row in self.query(WatchRow)}
        wanted = {w.key for w in watches}
        for key, row in rows.items():
            if key not in wanted:
                row.remove()
        for watch in watches:
            found = rows.get(watch.key)
            if found is None:
                self.append(WatchRow(watch))
            else:
                row = found
                row.pinned = watch
                row.update_watch()
        if watches and self.index is None:
            self.index = 0

    def highlighted_watch(self) -> Watch | None:
        item = self.highlighted_child
        return item.pinned if isinstance(item, WatchRow) else None

    def action_unpin(self) -> None:
        watch = self.highlighted_watch()
        if watch is not None:
            self.post_message(WatchUnpinned(watch.key))
