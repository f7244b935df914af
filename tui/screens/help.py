"""HelpScreen: the keys, and what the inspector promises about the target."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: tuple[tuple[str, str], ...] = (
    ("Picker", ""),
    ("type", "filter the list (pid, user, version, command)"),
    ("↑ ↓  enter", "choose a process, attach to it"),
    ("f5 / f6 / f7", "refresh now / sort by the next column / reverse the order"),
    ("Process view", ""),
    ("tab  shift+tab", "next / previous pane (threads, stack, console, watches)"),
    ("enter  space  → ←", "open / close a frame or a value (locals load when opened)"),
    ("e  or  /", "jump to the console; enter runs the query, ↑ ↓ walk the history"),
    ("esc", "console: leave it (letters are typed there: ctrl+q quits, f1 is this help)"),
    ("ctrl+g", "console: evaluate in __main__ instead of the highlighted frame"),
    ("ctrl+o", "console: isolated - run each query in a disposable fork of the target"),
    ("p", "pin the highlighted value as a watch (on a watch: unpin it)"),
    ("ctrl+t", "console: pin the typed (or last) query as a watch"),
    ("c", "copy the highlighted value, frame or watch to the clipboard"),
    ("r  f5", "refresh threads, the stack, modules and watches"),
    ("s m o t", "show the stack / modules / objects / tasks tab"),
    ("n", "objects tab: take a census; the next one shows what grew"),
    ("esc", "elsewhere: cancel what is loading (the answer, if it comes, is dropped)"),
    ("a", "re-attach after the target or its agent went away"),
    ("d", "detach (the agent leaves the target) and go back to the picker"),
    ("q  ctrl+q", "detach and quit"),
)

PROMISES = (
    "Read-only: queries cannot assign, delete or call target code; properties are never "
    "run (a query reading one is refused, the tree marks it 'not run'). Values whose names "
    "look secret are redacted. Every query is written to the "
    "audit log. Detach and quit remove the agent: no thread, socket or module is left "
    "behind."
)


def help_table() -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for key, text in KEYS:
        if not text:
            table.add_row(Text(key, style="bold underline"), "")
        else:
            table.add_row(key, text)
    return table


class HelpScreen(ModalScreen[None]):
    """Keys and promises; any of esc, q, ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1", "dismiss", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(help_table(), id="help-keys")
            yield Static(PROMISES, id="help-promises")

    def on_mount(self) -> None:
        self.query_one("#help-box").border_title = "inspector · help"
        self.query_one("#help-box").border_subtitle = "esc closes"
