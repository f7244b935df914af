"""ModulesTable: the target's `sys.modules` (name, version, file)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from inspector.models import ModuleInfo


class ModulesTable(DataTable[Text]):
    """One row per imported module, sorted by name."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row")
        self.modules: list[ModuleInfo] = []

    def on_mount(self) -> None:
        self.add_column("Module", key="name")
        self.add_column("Version", key="version")
        self.add_column("File", key="file")

    def show_modules(self, modules: list[ModuleInfo]) -> None:
        self.modules = sorted(modules, key=lambda m: m.name)
        self.clear()
        for m in self.modules:
            self.add_row(Text(m.name), Text(m.version or ""),
                         Text(m.file or "(built-in)", style="" if m.file else "dim"),
                         key=m.name)
        self.border_subtitle = "%d modules" % len(self.modules)

    def cursor_text(self) -> str | None:
        if not self.modules or not 0 <= self.cursor_row < len(self.modules):
            return None
        m = self.modules[self.cursor_row]
        return " ".join(part for part in (m.name, m.version, m.file) if part)
