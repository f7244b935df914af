"""Results of one measure (`Section`), rendered as markdown and JSON."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Goal:
    text: str
    met: bool | None  # None: not measured here (tool missing, feature absent)
    detail: str = ""
    basis: str = ""  # how it was decided, when not by the direct measurement

    @property
    def mark(self) -> str:
        mark = {True: "met", False: "GAP", None: "n/a"}[self.met]
        return "%s (%s)" % (mark, self.basis) if self.basis else mark


@dataclass
class Section:
    key: str
    title: str
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra_tables: list[tuple[str, list[str], list[list[Any]]]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if abs(value) >= 100:
            return "%.0f" % value
        return "%.*f" % (digits, value)
    return str(value)


def fmt_ratio(value: float) -> str:
    if value is None or math.isnan(value):
        return "—"
    if value >= 10:
        return "%.0f×" % value
    if value >= 0.1:
        return "%.2g×" % value if value < 1 else "%.1f×" % value
    return "%.2f×" % value


def table(columns: list[str], rows: list[list[Any]]) -> str:
    cells = [[c if isinstance(c, str) else fmt(c) for c in row] for row in rows]
    lines = ["| " + " | ".join(columns) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def markdown(section: Section) -> str:
    out = ["### %s" % section.title, ""]
    if section.rows:
        out += [table(section.columns, section.rows), ""]
    for title, columns, rows in section.extra_tables:
        out += ["%s" % title, "", table(columns, rows), ""]
    for goal in section.goals:
        out.append("- **%s** — %s%s" % (goal.mark, goal.text,
                                         (": " + goal.detail) if goal.detail else ""))
    if section.goals:
        out.append("")
    for note in section.notes:
        out.append("- %s" % note)
    if section.notes:
        out.append("")
    return "\n".join(out)


def summary_table(sections: list[Section]) -> str:
    rows = []
    for s in sections:
        for g in s.goals:
            rows.append([s.title.split(".")[0], g.text, g.mark, g.detail])
    return table(["#", "goal", "status", "measured"], rows)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def to_json(meta: dict[str, Any], sections: list[Section]) -> str:
    doc = {"meta": meta, "sections": {}}
    for s in sections:
        d = asdict(s)
        d["goals"] = [dict(asdict(g), status=g.mark) for g in s.goals]
        doc["sections"][s.key] = d
    return json.dumps(_clean(doc), indent=1, default=str)
