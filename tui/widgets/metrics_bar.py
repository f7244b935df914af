"""MetricsBar: pid, Python version, uptime, and live CPU % / RSS sparklines.

The numbers are sampled from outside the target (psutil, no agent call), so
they keep moving while a slow query runs and they say when the process dies.
"""

from __future__ import annotations

from collections import deque

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, Sparkline

from inspector.metrics import ProcessSample

from ..fmt import duration, human_bytes

HISTORY = 120  # samples kept for the sparklines (two minutes at one per second)


class MetricsBar(Horizontal):
    """One line: identity of the target, then CPU and memory over time."""

    DEFAULT_CSS = """
    MetricsBar { height: 1; }
    MetricsBar > Label { width: auto; padding: 0 1 0 0; }
    MetricsBar > Sparkline { width: 1fr; min-width: 4; margin: 0 1 0 0; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.cpu: deque[float] = deque(maxlen=HISTORY)
        self.rss: deque[float] = deque(maxlen=HISTORY)

    def compose(self) -> ComposeResult:
        yield Label("", id="metrics-target")
        yield Label("", id="metrics-how")
        yield Label("│ up -", id="metrics-uptime")
        yield Label("│ CPU     -", id="metrics-cpu")
        yield Sparkline([], id="cpu-spark")
        yield Label("│ RSS       -", id="metrics-rss")
        yield Sparkline([], id="rss-spark")

    def show_target(self, pid: int, version: tuple[int, ...], how: str = "", *,
                    offline: bool = False) -> None:
        text = "pid %d · Python %s" % (pid, ".".join(str(p) for p in version))
        if offline:  # said up front: the "how" part is hidden at 80 columns
            text = "OFFLINE dump · " + text
        self.query_one("#metrics-target", Label).update(text)
        self.query_one("#metrics-how", Label).update("· " + how if how else "")

    def add_sample(self, sample: ProcessSample) -> None:
        self.cpu.append(sample.cpu_percent)
        self.rss.append(float(sample.rss))
        self.query_one("#metrics-uptime", Label).update("│ up %s" % duration(sample.uptime))
        self.query_one("#metrics-cpu", Label).update("│ CPU %5.1f%%" % sample.cpu_percent)
        self.query_one("#metrics-rss", Label).update("│ RSS %7s" % human_bytes(sample.rss))
        self.query_one("#cpu-spark", Sparkline).data = list(self.cpu)
        self.query_one("#rss-spark", Sparkline).data = list(self.rss)
