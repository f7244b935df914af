"""inspector: a safe, read-only inspector for live CPython processes.

    import inspector
    with inspector.attach(pid) as s:
        s.threads(); s.stack(); s.eval("len(cache._data)")
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
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

# The public names are imported on first use (PEP 562), so that `import
# inspector.cli` does not load the session and everything under it: each
# command imports what it needs (docs/DESIGN.md, "Round 5: the cold path").
_LAZY = {
    "AttachError": "errors", "BudgetExceeded": "errors", "Denied": "errors",
    "EvalError": "errors", "FrameGone": "errors", "FrameMoved": "errors",
    "InspectorError": "errors", "ProtocolError": "errors", "TargetLost": "errors",
    "UsageError": "errors",
    "FrameInfo": "models", "ModuleInfo": "models", "ThreadInfo": "models",
    "ThreadStack": "models", "Value": "models",
    "Session": "session", "attach": "session",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError("module 'inspector' has no attribute %r" % name)
    from importlib import import_module

    value = getattr(import_module("." + module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
