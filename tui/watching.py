"""Watches: pinned queries re-evaluated on a timer (pure state, no widgets).

The app owns the list of `Watch` objects and hands it down to the watch list
widget; a watch keeps its own history so it survives a re-attach.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .values import Address, number, preview

HISTORY = 60  # samples kept per numeric watch (a sparkline's worth)
WATCH_INTERVAL = 2.0  # seconds between re-evaluations


@dataclass
class Watch:
    key: int
    address: Address
    text: str = "…"
    error_kind: str | None = None  # denied / budget / eval / lost, when the last try failed
    history: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))
    changed_at: float | None = None
    updated_at: float | None = None

    @property
    def label(self) -> str:
        return self.address.text

    @property
    def is_number(self) -> bool:
        return bool(self.history) and self.error_kind is None

    @property
    def minimum(self) -> float | None:
        return min(self.history) if self.history else None

    @property
    def maximum(self) -> float | None:
        return max(self.history) if self.history else None

    def record(self, node: dict[str, Any], now: float) -> None:
        text = preview(node, 200)
        value = number(node)
        if value is not None:
            self.history.append(value)
        else:
            self.history.clear()
        if text != self.text or self.error_kind is not None or self.changed_at is None:
            self.changed_at = now
        self.text, self.error_kind, self.updated_at = text, None, now

    def record_error(self, kind: str, message: str, now: float) -> None:
        if kind != self.error_kind or message != self.text:
            self.changed_at = now
        self.text, self.error_kind, self.updated_at = message, kind, now


def compact_number(value: float) -> str:
    """`200`, `2.5`, `1.2M`: short enough for a watch row."""
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return "%.1f%s" % (value / size, unit)
    return "%.3g" % value
