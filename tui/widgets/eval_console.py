"""EvalConsole: type a query, Enter evaluates it in the target's sandbox.

Queries run in the frame highlighted in the stack (the prompt names it) or in
`__main__` (ctrl+g toggles). ctrl+o toggles isolation: each query then runs in
a disposable fork of the target (shown in the prompt and the console title).
Each answer is a row of the transcript tree, opened lazily like any other
value; a refusal or a budget error is one line in its own style, with the
rule's message, never a traceback. Up and down walk the history.
"""

from __future__ import annotations

import textwrap
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Input, Label
from textual.widgets.tree import TreeNode

from inspector.models import Value

from .. import values
from ..fmt import clip_left
from ..messages import Failure, QuerySubmitted, WatchPinned
from ..values import MAIN, Address, Scope
from .value_tree import NodeData, ValueTree

HISTORY_SIZE = 200
FAILURE_TITLES = {"denied": "⊘ refused by the sandbox", "budget": "◔ over budget",
                  "eval": "✖ raised", "usage": "✖ malformed query", "lost": "✖ session lost",
                  "moved": "✖ frame gone"}


PROMPT_NAME_MAX = 24  # the prompt names the frame's function; the title says the rest


def prompt_name(scope: Scope) -> str:
    """What the prompt shows: the frame's function (`handle`, `Worker.handle`)
    or the module, cut from the left so the function's own name stays."""
    if scope.is_frame and scope.qualname:
        return clip_left(scope.qualname, PROMPT_NAME_MAX)
    return clip_left(scope.label, PROMPT_NAME_MAX)


class Transcript(ValueTree):
    """The console's answers, newest last."""

    def add_query(self, expr: str, scope: Scope) -> int:
        label = self.query_label(expr, scope)
        label.append("  ⋯ running (esc cancels)", self.style("dim"))
        node = self.root.add_leaf(label, NodeData("query", address=Address(scope, expr),
                                                  name=expr, scope=scope))
        token = self._new_token(node)
        self.cursor_line = self.last_line  # the new row is the last one
        self.scroll_to_line(self.cursor_line, animate=False)
        return token

    def query_label(self, expr: str, scope: Scope) -> Text:
        text = Text("› ", self.style("type"))
        text.append(expr, self.style("name"))
        return text

    def scope_suffix(self, scope: Scope) -> Text:
        return Text("  in %s" % scope.label, self.style("type"))

    def show_result(self, token: int, value: Value | None, failure: Failure | None,
                    note: str = "") -> None:
        node = self._take(token)
        if node is None or node.data is None or node.data.address is None:
            return
        data = node.data
        if note:  # it ran elsewhere (its frame had returned): say where, and why
            data.scope = MAIN
            data.address = Address(MAIN, data.name)
            width = max(30, self.scrollable_content_region.width - 4)
            after = node
            for line in textwrap.wrap("↳ " + note, width):
                after = self.root.add_leaf(Text(line, self.style("dim")), NodeData("note"),
                                           after=after)
        scope = data.scope or MAIN
        label = self.query_label(data.name, scope)
        if failure is not None or value is None:
            # The verdict on the row, the rule's message below it, wrapped: never cut off.
            failure = failure or Failure("error", "no answer")
            data.failure = failure
            data.loaded = True
            label.append("  " + FAILURE_TITLES.get(failure.kind, "✖ error"),
                         self.failure_style(failure))
            label.append_text(self.scope_suffix(scope))
            node.set_label(label)
            self.add_failure(node, failure, with_icon=False)
            node.allow_expand = True
            node.expand()
            return
        data.node = value.node
        label.append(" → ")
        label.append_text(self.value_label("", value.node))
        label.append_text(self.scope_suffix(scope))
        node.set_label(label)
        if values.has_children(value.node):
            node.allow_expand = True

    def cancel_query(self, node: TreeNode[NodeData]) -> None:
        data = node.data
        if data is None:
            return
        if data.node is None and data.failure is None:  # still running: the answer is dropped
            label = self.query_label(data.name, data.scope or MAIN)
            label.append("  cancelled", self.style("dim"))
            node.set_label(label)
        else:
            super().cancel_query(node)

    def cursor_text(self) -> str | None:
        data = self.cursor_data()
        if data is not None and data.role == "query" and data.node is None:
            if data.failure is not None:
                return "%s\n%s" % (data.name, data.failure.message)
            return data.name
        return super().cursor_text()


class HistoryInput(Input):
    """An Input with shell-like history on up/down. Letters are text here, so
    the way out is shown first in the footer: esc leaves the console, ctrl+q
    quits, f1 is the help (q, d and ? would be typed into the query)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "leave", "Leave"),
        Binding("ctrl+q", "app.quit", "Quit", priority=True),
        Binding("f1", "app.help", "Help"),
        Binding("up", "history(-1)", "Previous query", show=False),
        Binding("down", "history(1)", "Next query", show=False),
    ]

    class Left(Message):
        """esc in the console: focus goes back to the stack."""

    def action_leave(self) -> None:
        self.post_message(self.Left())

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.history: list[str] = []
        self._position = 0
        self._draft = ""

    def remember(self, expr: str) -> None:
        if not self.history or self.history[-1] != expr:
            self.history.append(expr)
            del self.history[:-HISTORY_SIZE]
        self._position = len(self.history)
        self._draft = ""

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        if self._position == len(self.history):
            self._draft = self.value
        self._position = max(0, min(len(self.history), self._position + step))
        self.value = (self.history[self._position] if self._position < len(self.history)
                      else self._draft)
        self.cursor_position = len(self.value)


class EvalConsole(Vertical):
    """The query console: transcript above, prompt and input below."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+g", "toggle_scope", "Frame/__main__"),
        Binding("ctrl+o", "toggle_isolated", "Isolated"),
        Binding("ctrl+t", "pin_query", "Pin query"),
    ]

    frame_scope: reactive[Scope | None] = reactive(None)
    use_main: reactive[bool] = reactive(False)
    isolated: reactive[bool] = reactive(False)

    def compose(self) -> ComposeResult:
        yield Transcript("queries", id="console-output")
        with Horizontal(id="console-prompt"):
            yield Label("›", id="console-scope")
            yield HistoryInput(placeholder="a query, e.g. len(orders) — enter runs it",
                               id="console-input")

    def on_mount(self) -> None:
        self.query_one(Transcript).show_root = False
        self._show_scope()

    @property
    def scope(self) -> Scope:
        if self.use_main or self.frame_scope is None:
            return MAIN
        return self.frame_scope

    def watch_frame_scope(self) -> None:
        self._show_scope()

    def watch_use_main(self) -> None:
        self._show_scope()

    def watch_isolated(self) -> None:
        self._show_scope()

    def _show_scope(self) -> None:
        if not self.children:  # not composed yet
            return
        fork = " (fork)" if self.isolated else ""
        self.query_one("#console-scope", Label).update("%s%s ›" % (prompt_name(self.scope),
                                                                     fork))
        self.border_title = "Console · evaluates in %s%s" % (
            self.scope.label, " · isolated: in a disposable fork (ctrl+o)" if self.isolated
            else "")
        self.set_class(self.isolated, "-isolated")

    def action_toggle_scope(self) -> None:
        self.use_main = not self.use_main

    def action_toggle_isolated(self) -> None:
        self.isolated = not self.isolated
        self.notify("Queries now run %s." % ("in a disposable fork of the target (isolated)"
                                              if self.isolated else "in the target's sandbox"))

    def action_pin_query(self) -> None:
        field = self.query_one(HistoryInput)
        expr = field.value.strip() or (field.history[-1] if field.history else "")
        if not expr:
            self.notify("Type a query to pin it as a watch.", severity="warning")
            return
        self.post_message(WatchPinned(Address(self.scope, expr)))

    @on(Input.Submitted, "#console-input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        expr = event.value.strip()
        if not expr:
            return
        field = self.query_one(HistoryInput)
        field.remember(expr)
        field.value = ""
        transcript = self.query_one(Transcript)
        token = transcript.add_query(expr, self.scope)
        self.post_message(QuerySubmitted(token, expr, self.scope, self.isolated))

    def show_result(self, token: int, value: Value | None, failure: Failure | None,
                    note: str = "") -> None:
        self.query_one(Transcript).show_result(token, value, failure, note)

    def set_read_only(self, read_only: bool) -> None:
        self.query_one(Transcript).read_only = read_only
        field = self.query_one(HistoryInput)
        field.disabled = read_only
        field.placeholder = ("read-only: the session is over" if read_only else
                             "a query, e.g. len(orders) — enter runs it")
