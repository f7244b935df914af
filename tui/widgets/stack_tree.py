"""StackTree: one thread's frames; opening a frame loads its locals.

Each frame row shows `#index function  file:line  │ source line`. Opening a
frame posts `LocalsRequested`; opening a local fetches its children by
address (the local's name evaluated in that frame, then a path), so nothing
in the target is held between requests. Moving the cursor posts
`FrameHighlighted` with the frame's scope, which the console evaluates in.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from inspector.models import FrameInfo, ThreadInfo, ThreadStack, Value

from .. import values
from ..fmt import frame_place, thread_flags
from ..messages import Failure, FrameHighlighted, LocalsRequested
from ..values import Address, Scope
from .value_tree import NodeData, ValueTree


def frame_scope(thread: ThreadInfo, frame: FrameInfo, stack_size: int) -> Scope:
    return Scope.of_frame(thread.ident, frame, stack_size,
                          "%s · %s" % (thread.label, frame.qualname))


class StackTree(ValueTree):
    """The selected thread's stack."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("no thread selected", id=id, classes=classes)
        self.show_root = True
        self.thread: ThreadInfo | None = None
        self._last_scope: Scope | None = None

    def show_loading(self, thread: ThreadInfo) -> None:
        self.reset_tree(Text("%s — loading its stack…" % thread.label, self.style("dim")))

    def show_stack(self, thread: ThreadInfo, stack: ThreadStack | None,
                   failure: Failure | None = None) -> None:
        """Replace the tree with this thread's frames (all collapsed)."""
        self.thread = thread
        flags = thread_flags(thread)
        title = Text(thread.label, self.style("name"))
        native = " · native %d" % thread.native_id if thread.native_id is not None else ""
        title.append("  ident %d%s%s" % (thread.ident, native, " · " + flags if flags else ""),
                     self.style("type"))
        self.reset_tree(title)
        self.root.expand()
        if failure is not None or stack is None:
            self.add_failure(self.root, failure or Failure("error", "no stack"))
            return
        if not stack.frames:
            self.add_note(self.root, "(no Python frames: the thread runs only C code)")
        for frame in stack.frames:
            self.root.add(self.frame_label(frame),
                          NodeData("frame", frame=frame,
                                   scope=frame_scope(thread, frame, len(stack.frames)),
                                   name=frame.function),
                          allow_expand=True)
        if stack.frames_cut:
            self.add_note(self.root, "… deeper frames not shown")
        if stack.frames:
            self.cursor_line = 1  # the innermost frame (line 0 is the thread)

    def frame_label(self, frame: FrameInfo) -> Text:
        text = Text()
        text.append("#%d " % frame.index, self.style("type"))
        text.append(frame.qualname, self.style("frame"))
        text.append("  ")
        text.append(frame_place(frame), self.style("place"))
        if frame.source:
            text.append("  │ " + values.clip(frame.source.strip(), 100), self.style("dim"))
        return text

    # -- locals ---------------------------------------------------------------------

    def request_children(self, node: TreeNode[NodeData]) -> None:
        data = node.data
        if data is None or data.role != "frame":
            super().request_children(node)
            return
        if data.scope is None:
            return
        self._loading(node)
        token = self._new_token(node)
        self.post_message(LocalsRequested(self.id or "", token, data.scope))

    def show_locals(self, token: int, value: Value | None, failure: Failure | None) -> None:
        node = self._take(token)
        if node is None or node.data is None:
            return
        node.remove_children()
        if failure is not None or value is None:
            self.add_failure(node, failure or Failure("error", "no answer"))
            return
        node.data.loaded = True
        scope = node.data.scope or Scope()
        entries = values.namespace_entries(value.node)
        if not entries:
            self.add_note(node, "(no locals)")
        for index, (name, child) in enumerate(entries):
            # A local is read back by name; a hidden one (`.0` of a comprehension)
            # by its position in the frame's locals.
            address = (Address(scope, name) if name.isidentifier()
                       else Address(scope, "", (("item", index),)))
            self.add_value(node, name, child, address)
        if value.node.get("truncated"):
            self.add_note(node, "… more locals not shown")

    # -- the console's scope ----------------------------------------------------------

    def frame_scope_at_cursor(self) -> Scope | None:
        node = self.cursor_node
        while node is not None:
            if node.data is not None and node.data.role == "frame":
                return node.data.scope
            node = node.parent
        return None

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[NodeData]) -> None:
        event.stop()
        scope = self.frame_scope_at_cursor()
        if scope != self._last_scope:
            self._last_scope = scope
            self.post_message(FrameHighlighted(scope))
