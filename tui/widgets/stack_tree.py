"""StackTree: one thread's frames; opening a frame loads its locals.

Each frame row shows `#index function  file:line  │ source line`. Opening a
frame posts `LocalsRequested`; opening a local fetches its children by
address (the local's name evaluated in that frame, then a path), so nothing
in the target is held between requests. Moving the cursor posts
`FrameHighlighted` with the frame's scope, which the console evaluates in.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from inspector.models import FrameInfo, ThreadInfo, ThreadStack, Value

from .. import values
from ..fmt import ELLIPSIS, clip_left, fit, safe_cut, short_path, thread_flags
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
        self.reset_tree(self.thread_title(thread, 0))
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

    def thread_title(self, thread: ThreadInfo, room: int) -> Text:
        """`worker-1 · native 19271 · daemon · ident 1406…`: whole parts only,
        dropped from the end when `room` (0: no limit) is short."""
        flags = thread_flags(thread)
        parts = []
        if thread.native_id is not None:
            parts.append("native %d" % thread.native_id)
        if flags:
            parts.append(flags)
        parts.append("ident %d" % thread.ident)
        title = Text(thread.label, self.style("name"))
        for i, part in enumerate(parts):
            piece = ("  " if i == 0 else " · ") + part
            if room and title.cell_len + len(piece) > room:
                break
            title.append(piece, self.style("type"))
        return fit(title, room)

    def frame_label(self, frame: FrameInfo, room: int = 0) -> Text:
        """`#2 Thread._bootstrap_inner  threading.py:1045  │ self.run()`. When
        `room` (0: no limit) is short, the source line goes first, then the file
        name is cut from the left, then the function name: the line number
        stays whole."""
        head = "#%d " % frame.index
        line = ":%d" % frame.line
        path = short_path(frame.file)
        name = frame.qualname
        source = "  │ " + values.clip(frame.source.strip(), 100) if frame.source else ""
        if room:
            fixed = len(head) + 2 + len(line)
            if fixed + len(name) + len(path) > room:
                path = clip_left(path, max(8, room - fixed - len(name)))
            if fixed + len(name) + len(path) > room:
                name = clip_left(name, max(4, room - fixed - len(path)))
            left = room - (fixed + len(name) + len(path))
            if source and left < 8:
                source = ""
            elif source and len(source) > left:
                source = source[:safe_cut(source, left - 1)] + ELLIPSIS
        text = Text()
        text.append(head, self.style("type"))
        text.append(name, self.style("frame"))
        text.append("  ")
        text.append(path + line, self.style("place"))
        if source:
            text.append(source, self.style("dim"))
        return text

    def render_label(self, node: TreeNode[NodeData], base_style: Style,
                     style: Style) -> Text:
        data = node.data
        room = self.label_room(node) - 2  # the ▶ icon
        if room > 0 and data is not None:
            # Built for the width (a cut would take digits off a line number or
            # an id); the label is a pure function of the width, so this only
            # replaces what the tree draws.
            if data.role == "frame" and data.frame is not None:
                node._label = self.frame_label(data.frame, room)
            elif node is self.root and self.thread is not None:
                node._label = self.thread_title(self.thread, room)
        return super().render_label(node, base_style, style)

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
