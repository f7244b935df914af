"""Exceptions raised by payload code; the agent turns them into error replies.

AgentError
 +-- DeniedError   the sandbox policy refused a construct (exit code 3)
 +-- BudgetError   a budget would be exceeded (exit code 4)
 +-- QueryError    the query itself failed inside the sandbox (exit code 1)
 +-- MalformedQueryError  the query is not valid Python syntax (exit code 2)
 +-- ScopeError    no such thread or frame (exit code 2: the caller's mistake)
 +-- FrameGoneError  the call named by a frame_id has returned (exit code 1)
"""
from __future__ import annotations


class AgentError(Exception):
    """Base of every error the agent reports back to the client."""

    kind = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DeniedError(AgentError):
    """A construct is not allowed: names the construct and the rule."""

    kind = "denied"


class BudgetError(AgentError):
    """A budget (steps, time, size ...) would be exceeded; names the budget."""

    kind = "budget"

    def __init__(self, budget: str, message: str) -> None:
        super().__init__(message)
        self.budget = budget


class MalformedQueryError(AgentError):
    """The query is not one valid Python expression (exit code 2, like any
    other malformed argument)."""

    kind = "usage"


class ScopeError(AgentError):
    """The thread or frame a request names does not exist; the message lists
    the ones that do."""

    kind = "usage"


class FrameGoneError(AgentError):
    """The call a frame_id named has returned (a race, not a mistake)."""

    kind = "frame_gone"


class QueryError(AgentError):
    """The query raised inside the sandbox (NameError, KeyError ...)."""

    kind = "eval"

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__("%s: %s" % (error_type, message) if message else error_type)
        self.error_type = error_type


def safe_error_text(exc):
    """Describe an exception without calling str()/repr() on target objects:
    its type name and only those args that are exact str."""
    parts = [a for a in getattr(exc, "args", ()) if type(a) is str]
    text = type(exc).__name__
    if parts:
        text += ": " + "; ".join(parts)[:500]
    return text


def message_of(exc) -> str:
    """The message of an exception, without calling its __str__ (may be target
    code): its first argument if that is an exact str, else ""."""
    try:
        args = BaseException.__dict__["args"].__get__(exc)
    except Exception:
        return ""
    if type(args) is tuple and len(args) >= 1 and type(args[0]) is str:
        return args[0][:300]
    return ""
