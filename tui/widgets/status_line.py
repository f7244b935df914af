"""StatusLine: what the app is waiting for, with a spinner and the cancel key."""

from __future__ import annotations

import time

from textual.timer import Timer
from textual.widgets import Static

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
SHOW_AFTER = 0.3  # seconds: quick answers do not flash the line (and shift the layout)


class StatusLine(Static):
    """One line, hidden when nothing is pending."""

    DEFAULT_CSS = """
    StatusLine { height: 1; padding: 0 1; display: none; color: $text-accent; }
    StatusLine.-busy { display: block; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("", id=id, classes=classes, markup=False)
        self._frame = 0
        self._busy: str | None = None
        self._started: float | None = None
        self._since = 0.0
        self._timer: Timer | None = None

    @property
    def busy_text(self) -> str | None:
        return self._busy

    def set_busy(self, text: str | None, *, started: float | None = None) -> None:
        """Show `text` with a spinner (and the time since `started`), or hide."""
        self._busy = text
        self._started = started
        if text is None:
            self.set_class(False, "-busy")
            if self._timer is not None:
                self._timer.stop()
                self._timer = None
            self.update("")
            return
        if self._timer is None:
            self._since = time.monotonic()
            self._timer = self.set_interval(0.1, self._tick)
        self._draw()

    def _tick(self) -> None:
        self._frame = (self._frame + 1) % len(SPINNER)
        if time.monotonic() - self._since >= SHOW_AFTER:
            self.set_class(True, "-busy")
        self._draw()

    def _draw(self) -> None:
        if self._busy is None:
            return
        elapsed = ""
        if self._started is not None:
            elapsed = " %.1f s" % (time.monotonic() - self._started)
        self.update("%s %s%s — esc cancels" % (SPINNER[self._frame], self._busy, elapsed))
