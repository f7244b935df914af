"""ValueTree: a tree of target values whose children are fetched when opened.

Expanding a value posts `ChildrenRequested` (its address and a token); the
app answers through `show_children`. Big containers end with a "1,000 of
120,000 items — more…" row that fetches the next page. Tokens are never
reused, so an answer that arrives after the tree was rebuilt or the request
was cancelled finds no node and is dropped.
"""

from __future__ import annotations

import itertools
import textwrap
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from inspector.models import FrameInfo, Value
from inspector.render import pretty

from .. import values
from ..fmt import fit
from ..messages import ChildrenRequested, Failure
from ..values import Address, Node, Scope

Role = Literal["frame", "value", "query", "more", "note"]

FAILURE_ICONS = {"denied": "⊘ refused:", "budget": "◔ budget:", "lost": "✖ lost:"}


@dataclass
class NodeData:
    """What a tree row stands for."""

    role: Role
    address: Address | None = None  # how to fetch this value again
    node: Node | None = None  # the snapshot it was drawn from
    name: str = ""
    frame: FrameInfo | None = None
    scope: Scope | None = None  # frames: the scope queries run in
    loaded: bool = False
    token: int | None = None  # the request in flight for this row
    offset: int = 0  # "more" rows: the index of the next item to fetch
    failure: Failure | None = None


def _depth(node: TreeNode[Any]) -> int:
    depth = 0
    while node.parent is not None:
        node, depth = node.parent, depth + 1
    return depth


def failure_text(failure: Failure) -> str:
    icon = FAILURE_ICONS.get(failure.kind, "✖")
    return "%s %s" % (icon, failure.message)


class ValueTree(Tree[NodeData]):
    """A lazily expanded tree of snapshot nodes."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "value-tree--name", "value-tree--type", "value-tree--dim", "value-tree--denied",
        "value-tree--budget", "value-tree--error", "value-tree--redacted", "value-tree--more",
        "value-tree--frame", "value-tree--place",
    }
    DEFAULT_CSS = """
    ValueTree { overflow-x: hidden; }
    ValueTree > .value-tree--name { color: $text-primary; text-style: bold; }
    ValueTree > .value-tree--type { color: $text-muted; }
    ValueTree > .value-tree--dim { color: $text-muted; text-style: italic; }
    ValueTree > .value-tree--denied { color: $text-error; text-style: bold; }
    ValueTree > .value-tree--budget { color: $text-warning; text-style: bold; }
    ValueTree > .value-tree--error { color: $text-error; }
    ValueTree > .value-tree--redacted { color: $text-warning; text-style: italic; }
    ValueTree > .value-tree--more { color: $text-accent; text-style: underline; }
    ValueTree > .value-tree--frame { color: $text-secondary; text-style: bold; }
    ValueTree > .value-tree--place { color: $text-success; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("right", "open_node", "Open", show=False),
        Binding("left", "close_node", "Close", show=False),
    ]

    _tokens = itertools.count(1)  # shared by every tree: a token is never reused

    def __init__(self, label: str = "", *, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(label, NodeData("note"), id=id, classes=classes)
        self._pending: dict[int, TreeNode[NodeData]] = {}
        self.read_only = False  # set when the session is lost: nothing new is fetched

    # -- fitting labels to the width ------------------------------------------------

    def label_room(self, node: TreeNode[NodeData]) -> int:
        """Cells left for a node's label (with its ▶ icon) after the guides;
        0 before the tree has a size."""
        width = self.scrollable_content_region.width
        if width <= 0:
            return 0
        depth = _depth(node) - (0 if self.show_root else 1)
        return max(8, width - depth * self.guide_depth)

    def render_label(self, node: TreeNode[NodeData], base_style: Style,
                     style: Style) -> Text:
        # Cut at the tree's width with an ellipsis, never inside a number (the
        # Tree itself would crop `threading.py:1045` to `threading.py:10`).
        return fit(super().render_label(node, base_style, style), self.label_room(node))

    # -- styling --------------------------------------------------------------------

    def style(self, name: str) -> Style:
        return self.get_component_rich_style("value-tree--" + name, partial=True)

    def value_label(self, name: str, node: Node) -> Text:
        text = Text()
        if name:
            text.append(name, self.style("name"))
            text.append(" = ")
        kind = node.get("kind")
        if kind == "redacted":
            text.append("<redacted>", self.style("redacted"))
        elif kind == "property":
            text.append("<property: not run>", self.style("dim"))
        else:
            text.append(values.preview(node))
        text.append("  " + values.type_tag(node), self.style("type"))
        return text

    def failure_label(self, failure: Failure, prefix: str = "") -> Text:
        text = Text(prefix)
        text.append(failure_text(failure), self.failure_style(failure))
        return text

    def failure_style(self, failure: Failure) -> Style:
        return self.style({"denied": "denied", "budget": "budget"}.get(failure.kind, "error"))

    def add_failure(self, parent: TreeNode[NodeData], failure: Failure,
                    with_icon: bool = True) -> None:
        """The failure's message as note rows, wrapped to the tree's width (never cut)."""
        text = failure_text(failure) if with_icon else failure.message
        self.add_wrapped(parent, text, self.failure_style(failure))

    def add_wrapped(self, parent: TreeNode[NodeData], text: str, style: Style) -> None:
        """Note rows wrapped to the tree's width: a message is never cut off."""
        width = max(30, self.scrollable_content_region.width - 4 * (_depth(parent) + 1) - 2)
        for line in textwrap.wrap(text, width) or [text]:
            self.add_note(parent, Text(line, style))

    # -- building ---------------------------------------------------------------------

    def add_value(self, parent: TreeNode[NodeData], name: str, node: Node,
                  address: Address | None) -> TreeNode[NodeData]:
        data = NodeData("value", address=address, node=node, name=name)
        label = self.value_label(name, node)
        if values.has_children(node) and address is not None:
            return parent.add(label, data, allow_expand=True)
        return parent.add_leaf(label, data)

    def add_note(self, parent: TreeNode[NodeData], text: str | Text,
                 style: str = "dim") -> TreeNode[NodeData]:
        label = text if isinstance(text, Text) else Text(text, self.style(style))
        return parent.add_leaf(label, NodeData("note"))

    def _loading(self, node: TreeNode[NodeData]) -> None:
        node.remove_children()
        self.add_note(node, "⋯ loading (esc cancels)")

    def _new_token(self, node: TreeNode[NodeData]) -> int:
        token = next(self._tokens)
        self._pending[token] = node
        assert node.data is not None
        node.data.token = token
        return token

    def reset_tree(self, label: str | Text) -> None:
        self._pending.clear()
        self.clear()
        self.root.set_label(label)

    # -- lazy loading -----------------------------------------------------------------

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[NodeData]) -> None:
        event.stop()
        node = event.node
        data = node.data
        if data is None or data.loaded or data.token is not None:
            return
        if self.read_only:
            node.remove_children()
            self.add_note(node, "read-only: the session is over (a re-attaches)")
            return
        self.request_children(node)

    def request_children(self, node: TreeNode[NodeData]) -> None:
        """Ask the app for a value's children (subclasses add other roles)."""
        data = node.data
        if data is None or data.address is None or data.role not in ("value", "query"):
            return
        self._loading(node)
        token = self._new_token(node)
        self.post_message(ChildrenRequested(self.id or "", token, data.address, 0))

    def on_tree_node_selected(self, event: Tree.NodeSelected[NodeData]) -> None:
        node = event.node
        data = node.data
        if data is None or data.role != "more" or data.token is not None:
            return
        event.stop()
        parent = node.parent
        if parent is None or parent.data is None or parent.data.address is None:
            return
        if self.read_only:
            return
        node.set_label(Text("⋯ loading the next page (esc cancels)", self.style("dim")))
        token = self._new_token(node)
        self.post_message(ChildrenRequested(self.id or "", token, parent.data.address,
                                            data.offset))

    def _take(self, token: int) -> TreeNode[NodeData] | None:
        node = self._pending.pop(token, None)
        if node is None or node.data is None or node.data.token != token:
            return None
        node.data.token = None
        return node

    def show_children(self, token: int, offset: int, value: Value | None,
                      failure: Failure | None) -> None:
        """The app's answer to a ChildrenRequested."""
        node = self._take(token)
        if node is None:
            return
        assert node.data is not None
        failure = failure if value is not None else failure or Failure("error", "no answer")
        if node.data.role == "more":
            if failure is not None or value is None:
                node.set_label(self.failure_label(failure or Failure("error", "no answer"),
                                                  "enter to retry · "))
                return
            parent = node.parent
            node.remove()
            if parent is not None:
                self._fill(parent, value.node, offset)
            return
        node.remove_children()
        if failure is not None or value is None:
            # Left unloaded: collapsing and expanding again retries.
            self.add_failure(node, failure or Failure("error", "no answer"))
            return
        node.data.loaded = True
        self._fill(node, value.node, offset)

    def _fill(self, target: TreeNode[NodeData], node: Node, offset: int) -> None:
        assert target.data is not None
        address = target.data.address
        start = values.page_offset(node, offset)
        if start is None:
            self.add_note(target, "this agent cannot page; only the first items are shown")
            return
        if node.get("kind") == "cut" or not values.has_children(node):
            self.add_note(target, "(nothing to expand: %s)" % values.preview(node, 60))
            return
        for child in values.children(node, start):
            self.add_value(target, child.name, child.node,
                           address.child(child.step) if address else None)
        if node.get("kind") == "object" and node.get("truncated"):
            self.add_note(target, "… more attributes not shown")
        more = values.remaining(node, start)
        if more is not None:
            shown, total = more
            target.add_leaf(Text(values.more_label(shown, total), self.style("more")),
                            NodeData("more", offset=shown))

    def cancel_pending(self) -> int:
        """Forget every request in flight; their rows can be opened again."""
        count = 0
        for token, node in list(self._pending.items()):
            data = node.data
            if data is None or data.token != token:
                continue
            data.token = None
            count += 1
            if data.role == "more":
                node.set_label(Text("cancelled — enter to try again", self.style("more")))
            elif data.role == "query":
                self.cancel_query(node)
            else:
                node.remove_children()
                self.add_note(node, "cancelled — collapse and expand to try again")
        self._pending.clear()
        return count

    def cancel_query(self, node: TreeNode[NodeData]) -> None:
        node.remove_children()
        self.add_note(node, "cancelled — collapse and expand to try again")

    # -- keys ---------------------------------------------------------------------------

    def action_open_node(self) -> None:
        """→ opens the row, or steps into it when it is already open."""
        node = self.cursor_node
        if node is None:
            return
        if node.allow_expand and not node.is_expanded:
            node.expand()
        elif node.is_expanded and node.children:
            self.action_cursor_down()

    def action_close_node(self) -> None:
        """← closes the row, or steps out to its parent."""
        node = self.cursor_node
        if node is None:
            return
        if node.is_expanded and node is not self.root:
            node.collapse()
        elif node.parent is not None and (node.parent is not self.root or self.show_root):
            self.move_cursor(node.parent)

    # -- what the screen asks ---------------------------------------------------------

    def cursor_data(self) -> NodeData | None:
        node = self.cursor_node
        return node.data if node is not None else None

    def cursor_address(self) -> Address | None:
        data = self.cursor_data()
        if data is None or data.role not in ("value", "query"):
            return None
        return data.address

    def cursor_text(self) -> str | None:
        """The highlighted row as text to copy: a value in full, a frame as file:line."""
        data = self.cursor_data()
        if data is None:
            return None
        if data.node is not None:
            body = pretty(data.node, 100)
            return "%s = %s" % (data.name, body) if data.name and data.role == "value" else body
        if data.frame is not None:
            f = data.frame
            text = "%s (%s:%d)" % (f.qualname, f.file, f.line)
            return text + ("\n    " + f.source if f.source else "")
        node = self.cursor_node
        return str(node.label) if node is not None else None
