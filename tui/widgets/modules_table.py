"""ModulesTable: the target's `sys.modules` (name, version, file)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from inspector.models import ModuleInfo

from ..fmt import clip_left

NAME_MAX = 28  # a longer module name is cut from the left too
CELL_PADDING = 6  # one cell either side of three columns


class ModulesTable(DataTable[Text]):
    """One row per imported module, sorted by name."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        self._fitted_width = -1
        super().__init__(id=id, classes=classes, cursor_type="row")
        self.modules: list[ModuleInfo] = []

    def on_mount(self) -> None:
        self.add_column("Module", key="name")
        self.add_column("Version", key="version")
        self.add_column("File", key="file")

    def show_modules(self, modules: list[ModuleInfo]) -> None:
        self.modules = sorted(modules, key=lambda m: m.name)
        self._fill()

    def _fill(self) -> None:
        """Rows fitted to the width: a path is cut from the left, so the file
        name stays (a cut at the right kept `/usr/lib/python3.11/thre`)."""
        name_w = min(NAME_MAX, max((len(m.name) for m in self.modules), default=6))
        version_w = max((len(m.version or "") for m in self.modules), default=0)
        width = self.scrollable_content_region.width
        file_w = max(12, width - name_w - version_w - CELL_PADDING) if width > 0 else 0
        self.clear()
        for m in self.modules:
            file = m.file or "(built-in)"
            self.add_row(Text(clip_left(m.name, name_w)), Text(m.version or ""),
                         Text(clip_left(file, file_w) if file_w else file,
                              style="" if m.file else "dim"),
                         key=m.name)
        self.border_subtitle = "%d modules" % len(self.modules)

    def on_resize(self) -> None:
        width = self.size.width
        if self.modules and width != self._fitted_width:
            self._fitted_width = width
            self.call_after_refresh(self._refill)  # once the table has its new size

    def _refill(self) -> None:
        row = self.cursor_row
        self._fill()
        self.move_cursor(row=row, animate=False)

    def cursor_text(self) -> str | None:
        if not self.modules or not 0 <= self.cursor_row < len(self.modules):
            return None
        m = self.modules[self.cursor_row]
        return " ".join(part for part in (m.name, m.version, m.file) if part)
