"""Every error the inspector raises; one root, one exit code each.

InspectorError                     exit code
 +-- EvalError         1  the query raised inside the sandbox (NameError, KeyError ...)
 |   +-- FrameGone     7  the call a frame_id named has returned (a race: retry)
 |       +-- FrameMoved   frame #N runs another function than the one expected
 +-- UsageError        2  bad arguments (CLI) or API misuse
 +-- Denied            3  refused by the sandbox policy
 +-- BudgetExceeded    4  a budget (steps, time, size ...) would be exceeded
 +-- AttachError       5  could not attach (no such process, not Python, ptrace ...)
 +-- TargetLost        6  the target or its agent went away mid-session
     +-- ProtocolError    the agent sent something that breaks the protocol

Messages are one line: what failed, then what to do about it.
"""

from __future__ import annotations

from ._text import term_safe


class InspectorError(Exception):
    """Base class of all inspector errors."""

    exit_code = 1
    kind = "error"

    def __init__(self, message: str) -> None:
        # Messages are display text and often quote the target (thread names
        # from /proc, paths, its exception text): control characters escaped.
        message = term_safe(message)
        super().__init__(message)
        self.message = message


class EvalError(InspectorError):
    """The query itself failed inside the sandbox."""

    exit_code = 1
    kind = "eval"


class FrameGone(EvalError):
    """The call a `frame_id` named has returned: read the stack again (or
    query another scope). A race with the target, not a mistake: its own
    exit code, so a script can retry it and only it."""

    exit_code = 7
    kind = "frame_gone"


class FrameMoved(FrameGone):
    """Frame #N of a thread runs another function than the one the caller
    expected (`--expect-function`): a busy thread moved on since its stack
    was read; the message names the function now at N."""

    kind = "frame_moved"


class UsageError(InspectorError):
    exit_code = 2
    kind = "usage"


class Denied(InspectorError):
    """The sandbox policy refused the query; the message names the rule."""

    exit_code = 3
    kind = "denied"


class BudgetExceeded(InspectorError):
    """A budget would have been exceeded; the message names the budget."""

    exit_code = 4
    kind = "budget"


class AttachError(InspectorError):
    """Could not attach; the message says why and what the user can do."""

    exit_code = 5
    kind = "attach"


class TargetLost(InspectorError):
    """The target process or its agent went away during the session."""

    exit_code = 6
    kind = "lost"


class ProtocolError(TargetLost):
    """The agent broke the protocol; the session is over."""

    kind = "protocol"


_BY_KIND: dict[str, type[InspectorError]] = {
    "eval": EvalError,
    "frame_gone": FrameGone,
    "frame_moved": FrameMoved,
    "usage": UsageError,
    "denied": Denied,
    "budget": BudgetExceeded,
    "lost": TargetLost,
    "protocol": ProtocolError,
}


def from_reply(kind: str, message: str) -> InspectorError:
    """Map an agent error reply to the client exception."""
    cls = _BY_KIND.get(kind)
    if cls is None:
        return TargetLost("agent internal error: %s" % message)
    return cls(message)
