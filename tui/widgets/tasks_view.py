"""TasksView: the target's asyncio tasks and what each one is waiting on.

One row per task (name, state, the loop's thread, what it waits on); opening
it shows its await chain, outermost coroutine first, down to the future it is
parked on, and the tasks it awaits.
"""

from __future__ import annotations

from rich.text import Text

from inspector.diagnostics import TaskInfo

from ..fmt import short_path
from ..messages import Failure
from .value_tree import NodeData, ValueTree


class TasksView(ValueTree):
    """A tree of tasks; each opens to its await chain."""

    def task_line(self, task: TaskInfo) -> Text:
        """`Task-1 main()  pending  waits on _GatheringFuture  loop in MainThread`:
        the coroutine it runs is on the row itself (the chain opens below)."""
        text = Text(task.label, style=self.style("name"))
        coroutine = next((link.name for link in task.chain if link.kind == "coroutine"), None)
        if coroutine and coroutine != task.label:
            text.append(" %s()" % coroutine, style=self.style("frame"))
        text.append("  " + task.state, style=self.style("type"))
        if task.current:
            text.append(" (running now)", style=self.style("place"))
        if task.exception:
            text.append("  raised %s" % task.exception, style=self.style("error"))
        if task.waiter:
            text.append("  waits on %s" % task.waiter, style=self.style("dim"))
        if task.loop is not None:
            where = task.loop.thread_name or ("thread %s" % task.loop.thread)
            text.append("  loop in %s" % where, style=self.style("dim"))
        return text

    def show_tasks(self, tasks: list[TaskInfo] | None, failure: Failure | None) -> None:
        self.reset_tree("asyncio tasks")
        self.show_root = False
        self.root.expand()
        if failure is not None or tasks is None:
            self.add_failure(self.root, failure or Failure("error", "no answer"))
            return
        if not tasks:
            self.add_note(self.root, "(no asyncio tasks: the target has none, or never "
                                     "imported asyncio)")
            return
        names = {t.id: t.label for t in tasks}
        for task in tasks:
            node = self.root.add(self.task_line(task), NodeData("note", loaded=True,
                                                           name=task.label))
            for depth, link in enumerate(task.chain):
                place = ""
                if link.file:
                    place = "  %s:%d" % (short_path(link.file), link.line or 0)
                label = Text("%s%s %s" % ("  " * depth, "↳" if depth else "•", link.name))
                label.append(place, style=self.style("place"))
                if link.running:
                    label.append("  (running)", style=self.style("place"))
                node.add_leaf(label, NodeData("note"))
            for other in task.awaiting:
                node.add_leaf(Text("awaits task %s" % names.get(other, hex(other)),
                                   style=self.style("dim")), NodeData("note"))
        self.cursor_line = 0
