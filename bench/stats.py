"""Small statistics over repeated measurements (no numpy)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile, p in [0, 100]; nan for no values."""
    data = sorted(v for v in values if v is not None and not math.isnan(v))
    if not data:
        return math.nan
    if len(data) == 1:
        return data[0]
    rank = (len(data) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def summary(values: Sequence[float]) -> dict[str, float]:
    """n, median, p10, p90, p99, min, max of `values`."""
    data = [v for v in values if v is not None and not math.isnan(v)]
    return {
        "n": len(data),
        "median": median(data),
        "p10": percentile(data, 10),
        "p90": percentile(data, 90),
        "p99": percentile(data, 99),
        "min": min(data) if data else math.nan,
        "max": max(data) if data else math.nan,
    }


def ratio(a: float, b: float) -> float:
    if b is None or a is None or b == 0 or math.isnan(a) or math.isnan(b):
        return math.nan
    return a / b
