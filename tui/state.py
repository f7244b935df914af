"""The TUI's session lifecycle as one explicit state (no nullable flags).

    IDLE ──attach──▶ ATTACHING ──attached──▶ LIVE ──lose──▶ LOST
     ▲                 │  ▲                   │              │
     │       failed/   │  └────── attach (a re-attaches) ────┘
     │       cancelled ▼                      │ leave (d, q)
     └──── left ◀── DETACHING ◀───────────────┘

`pid` is the process of the current phase; `last_pid` the process the app
was last attached to (watches and re-attach belong to it); `reason` why a
LOST session ended (kept while re-attaching, so a failed re-attach goes
back to LOST with it). Only LIVE has a `session`: the others answer every
request at once ("lost", "not attached").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from .api import SessionAPI


class Phase(enum.Enum):
    IDLE = "idle"  # the picker: no session
    ATTACHING = "attaching"  # an agent is starting in `pid`
    LIVE = "live"  # `session` answers
    LOST = "lost"  # the target or its agent went away (`reason`); data stays read-only
    DETACHING = "detaching"  # leaving: the agent is being removed


@dataclass(frozen=True)
class SessionState:
    phase: Phase = Phase.IDLE
    pid: int | None = None
    session: SessionAPI | None = None
    reason: str | None = None
    last_pid: int | None = None

    # -- what the app asks ---------------------------------------------------------------

    @property
    def live(self) -> SessionAPI | None:
        """The session requests may use, or None."""
        return self.session if self.phase is Phase.LIVE else None

    @property
    def attaching(self) -> int | None:
        return self.pid if self.phase is Phase.ATTACHING else None

    @property
    def lost(self) -> str | None:
        """Why the last session ended, while its data is still on screen."""
        return self.reason if self.phase in (Phase.LOST, Phase.ATTACHING) else None

    @property
    def can_reattach(self) -> bool:
        return self.phase is Phase.LOST and self.last_pid is not None

    # -- transitions (each returns the next state) ------------------------------------

    def attach(self, pid: int) -> SessionState:
        return SessionState(Phase.ATTACHING, pid, None, self.lost, self.last_pid)

    def attached(self, session: SessionAPI) -> SessionState:
        return SessionState(Phase.LIVE, session.pid, session, None, session.pid)

    def attach_ended(self) -> SessionState:
        """Failed or cancelled: back where it started (LOST after a failed re-attach)."""
        if self.reason is not None:
            return SessionState(Phase.LOST, self.last_pid, None, self.reason, self.last_pid)
        return SessionState(Phase.IDLE, None, None, None, self.last_pid)

    def lose(self, reason: str) -> SessionState:
        return replace(self, phase=Phase.LOST, session=None, reason=reason)

    def leave(self) -> SessionState:
        return SessionState(Phase.DETACHING, self.pid, None, None, self.last_pid)

    def left(self) -> SessionState:
        return SessionState(Phase.IDLE, None, None, None, self.last_pid)
