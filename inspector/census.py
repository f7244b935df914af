"""Comparing two object censuses: which types grew (leak hunting). Pure functions.

    before = s.census(top=0); time.sleep(30); after = s.census(top=0)
    for d in census_diff(before, after, top=20):
        print(d.type, d.count_delta, d.size_delta)

Types are matched by name (module + qualname, the same in every census of a
process). A type missing from a census that lists every type
(`Census.has_all_types`) had no objects; missing from a census cut to its
top N, its count is unknown and is taken as 0 (`new=True` marks it), so diff
censuses taken with `top=0`.
"""

from __future__ import annotations

from .diagnostics import Census, CensusDelta


def census_diff(before: Census, after: Census, top: int = 20, *,
                growth_only: bool = True) -> list[CensusDelta]:
    """Types whose count or size changed, largest count growth first.

    With `growth_only` (the default) only types that gained objects (or, at
    an equal count, bytes) are listed. `top` <= 0 returns every change.
    """
    old = before.by_type()
    new = after.by_type()
    deltas = []
    for name in set(old) | set(new):
        b = old.get(name)
        a = new.get(name)
        delta = CensusDelta(
            type=name,
            count_before=b.count if b else 0,
            count_after=a.count if a else 0,
            size_before=b.size if b else 0,
            size_after=a.size if a else 0,
            new=b is None,
        )
        if delta.count_delta == 0 and delta.size_delta == 0:
            continue
        if growth_only and (delta.count_delta < 0
                            or (delta.count_delta == 0 and delta.size_delta <= 0)):
            continue
        deltas.append(delta)
    deltas.sort(key=lambda d: (-d.count_delta, -d.size_delta, d.type))
    return deltas[:top] if top > 0 else deltas


def growth_rate(delta: CensusDelta, seconds: float) -> float:
    """Objects per second gained by one type over the interval."""
    return delta.count_delta / seconds if seconds > 0 else 0.0
