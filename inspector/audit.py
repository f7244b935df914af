"""The operator-side audit log: one JSON line per question asked of a target.

Where: ``$INSPECTOR_AUDIT_LOG`` if set; otherwise ``/var/log/inspector/audit.jsonl``
for root and ``$XDG_STATE_HOME/inspector/audit.jsonl`` (default
``~/.local/state/inspector/audit.jsonl``) for everyone else. The file is
opened append-only (O_APPEND), created 0600, and each record is written with
a single ``write`` so concurrent operators do not interleave lines. Records
are ASCII-only JSON (C1 controls, U+2028 and the like escaped), so a record is
exactly one line whatever the target's command line holds.

Only a regular file is written: the log is opened ``O_NONBLOCK`` (a FIFO
without a reader, or a device, can never block the client) and anything else
is refused. Rule: the audit log fails *open*. When it cannot be written
(refused type, permissions, full disk) the command still runs, and the client
warns once, on stderr, naming the path and the cause; it never blocks or
fails a query because of its log.

A record: ts (UTC ISO-8601), operator uid and user, target pid and command,
op, query (expression, thread, frame, module, path), options (redaction,
properties), outcome ("ok" or the error kind) and the error message.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
import time

from . import _log
from ._text import json_dumps

TYPE_CHECKING = False  # typing's constant without importing typing (mypy reads it as True)
if TYPE_CHECKING:
    from typing import Any

log = _log.getLogger(__name__)


def audit_log_path() -> str:
    # (os.path and time, not pathlib and datetime: this module is on every
    # command's import path, and those two cost ~9 ms of it)
    override = os.environ.get("INSPECTOR_AUDIT_LOG")
    if override:
        return override
    if os.geteuid() == 0:
        return "/var/log/inspector/audit.jsonl"
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"),
                                                             ".local", "state")
    return os.path.join(state, "inspector", "audit.jsonl")


def _operator() -> tuple[int, str]:
    uid = os.getuid()
    try:
        return uid, pwd.getpwuid(uid).pw_name
    except KeyError:
        return uid, str(uid)


class AuditLog:
    def __init__(self, pid: int, command: str, path: str | os.PathLike[str] | None = None) -> None:
        self.pid = pid
        self.command = command
        self.path = os.fspath(path) if path is not None else audit_log_path()
        self.uid, self.user = _operator()
        self.failed = False

    def record(self, op: str, query: dict[str, Any], outcome: str, message: str = "") -> None:
        entry = {
            "ts": _utc_now(),
            "operator_uid": self.uid,
            "operator": self.user,
            "target_pid": self.pid,
            "target_command": self.command[:300],
            "op": op,
            "query": query,
            "outcome": outcome,
        }
        if message:
            entry["message"] = message[:500]
        line = (json_dumps(entry, default=str) + "\n").encode()
        try:
            os.makedirs(os.path.dirname(self.path) or ".", mode=0o700, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
                         | os.O_NONBLOCK | os.O_NOCTTY, 0o600)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise OSError(errno.EINVAL, "not a regular file (refused: it could block or "
                                  "swallow the records)")
                _keep_private(fd)
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as e:
            if not self.failed:
                why = ("a FIFO or device with no reader" if e.errno == errno.ENXIO
                       else e.strerror or str(e))
                log.warning("cannot write the audit log %s: %s; this command goes on without "
                            "it (the audit log fails open): point INSPECTOR_AUDIT_LOG at a "
                            "regular file", self.path, why)
            self.failed = True


def _utc_now() -> str:
    """The time now as ISO 8601 UTC with milliseconds, like
    datetime.now(timezone.utc).isoformat(timespec="milliseconds")."""
    now = time.time()
    return "%s.%03d+00:00" % (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)),
                              int(now * 1000) % 1000)


def _keep_private(fd: int) -> None:
    """Queries name what an operator looked at: a log created by someone else's
    umask, or copied in, must not stay readable by others. Only the owner may
    chmod; anyone else just appends."""
    st = os.fstat(fd)
    if st.st_mode & 0o077 and st.st_uid == os.geteuid():
        os.fchmod(fd, 0o600)
