"""Keep the target's garbage collections off the agent's thread during a request.

CPython starts a collection on whichever thread allocates past the
generation-0 threshold (3.12+: on the thread that next checks its eval
breaker, the same one). The agent allocates while it answers, so without
this guard a collection could start on the agent thread and run the target's
``__del__`` methods and weakref callbacks there, mid-query: target code on
our thread, able to stall the request or walk into the agent's frames.

The decision (docs/DESIGN.md, "Collections during a request"): while one
request is answered (evaluation, snapshot and encoding; never while waiting
for the client), automatic collection is switched off with ``gc.disable()``
if, and only if, the target had it on, and switched back on right after.

* What the target can observe: ``gc.isenabled()`` is False for the length of
  one request (bounded by ``max_seconds``). No garbage is lost: the
  collection a target thread would have started in that window starts at its
  next allocation after the request. Nothing runs early, nothing is freed that
  would not have been.
* The one race: a target thread that calls ``gc.disable()`` itself during
  our window, meaning to keep it off, has it switched on again when the
  request ends (``gc.enable()`` cannot tell who disabled it). A target that
  calls ``gc.enable()`` in the window shortens our protection; nothing worse.
* A target that keeps gc disabled is left alone (nothing to restore).
* Requests of one agent (a resident agent serves several clients) share
  the switch: a count of requests in flight, so only the last one to finish
  switches collections back on. Two separately injected agents each see the
  other's switch as "the target turned it off" and leave it alone, so the
  first to finish switches it back on: never left off, at worst a shorter
  window for the other.
* A collection already scheduled before the switch (3.12+) may still run.

``gc`` is the target's module if it imported it and its functions are the C
ones; else a private instance (cmodules.builtin_module: no import, nothing
left in ``sys.modules``). The state it switches is per interpreter either way.
"""
from __future__ import annotations

from .cmodules import builtin_module, genuine


def _gc_functions():
    """(isenabled, disable, enable), the genuine C functions, or None."""
    try:
        gc = builtin_module("gc", "disable")
    except Exception:
        return None
    fns = (genuine(gc, "isenabled"), genuine(gc, "disable"), genuine(gc, "enable"))
    if fns[0] is None or fns[1] is None or fns[2] is None:
        return None
    return fns


class Guard:
    """One session's switch. `hold()` and `release()` allocate no tracked
    object (they only call the cached C functions), so switching collections
    back on cannot itself start one on this thread."""

    # No __slots__: the loader calls the bound release() after it emptied our
    # classes (loader._empty_classes), when only the instance dict remains.

    def __init__(self) -> None:
        self.fns = _gc_functions()
        self.off = False

    def hold(self) -> None:
        """Switch automatic collection off if the target has it on."""
        fns = self.fns
        if fns is not None and not self.off and fns[0]() is True:
            fns[1]()
            self.off = True

    def release(self) -> None:
        """Switch it back on if this guard switched it off."""
        if self.off:
            self.off = False
            self.fns[2]()
