"""inspector: a safe, read-only inspector for live CPython processes.

    import inspector
    with inspector.attach(pid) as s:
        s.threads(); s.stack(); s.eval("len(cache._data)")
"""

from __future__ import annotations

from .errors import (
    AttachError,
    BudgetExceeded,
    Denied,
    EvalError,
    FrameGone,
    FrameMoved,
    InspectorError,
    ProtocolError,
    TargetLost,
    UsageError,
)
from .models import FrameInfo, ModuleInfo, ThreadInfo, ThreadStack, Value
from .session import Session, attach

__version__ = "0.1.0"

__all__ = [
    "AttachError", "BudgetExceeded", "Denied", "EvalError", "FrameGone", "FrameInfo", "FrameMoved",
    "InspectorError",
    "ModuleInfo", "ProtocolError", "Session", "TargetLost", "ThreadInfo", "ThreadStack",
    "UsageError", "Value", "attach",
]
