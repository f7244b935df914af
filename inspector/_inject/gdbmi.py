"""A minimal driver for gdb's machine interface (MI3) over pipes.

We drive gdb command by command, so the client can look at the stopped
target (which thread is parked where) and decide what to do while it is
stopped. Each command has a timeout. The one rule that matters: gdb is never
killed while it runs an inferior function call (killing it then leaves the
target thread inside a half-finished call and crashes the target). A timed
out call is abandoned, not killed: gdb finishes it, sees EOF on stdin and
detaches by itself.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import threading
import time

from .._record import field, mutable_record

_RESULT_RE = re.compile(r"^(\d+)\^(done|running|connected|error|exit)(?:,(.*))?$")
_CSTRING_RE = re.compile(r'(\w[\w-]*)="((?:[^"\\]|\\.)*)"')


class GdbError(Exception):
    """gdb answered ^error; `.message` is gdb's text."""


class GdbTimeout(Exception):
    """gdb did not answer in time."""

    def __init__(self, command: str, in_call: bool) -> None:
        super().__init__(command)
        self.command = command
        self.in_call = in_call


def unescape(s: str) -> str:
    return (s.replace("\\n", "\n").replace("\\t", "\t").replace('\\"', '"')
            .replace("\\\\", "\\"))


@mutable_record
class Result:
    fields: str
    console: list[str] = field(default_factory=list)

    def get(self, key: str) -> str | None:
        for k, v in _CSTRING_RE.findall(self.fields):
            if k == key:
                return unescape(v)
        return None


class GdbMI:
    def __init__(self, gdb: str, extra_args: tuple[str, ...] = ()) -> None:
        self.proc = subprocess.Popen(
            [gdb, "--interpreter=mi3", "--nx", "--quiet", "--readnever", *extra_args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            bufsize=0,
            # Our terminal's Ctrl-C must not reach gdb mid-call (see module doc).
            start_new_session=True,
        )
        self._buf = b""
        self._token = 0
        self.transcript: list[str] = []  # for --debug and error messages
        self.abandoned = False

    def command(self, cmd: str, timeout: float, in_call: bool = False) -> Result:
        """Run one MI command; return its ^done result (raise on ^error)."""
        self._token += 1
        token = str(self._token)
        assert self.proc.stdin is not None
        self.transcript.append("> " + cmd)
        try:
            self.proc.stdin.write(("%s%s\n" % (token, cmd)).encode())
        except BrokenPipeError:
            raise GdbError("gdb exited unexpectedly") from None
        deadline = time.monotonic() + timeout
        console: list[str] = []
        while True:
            line = self._readline(deadline, cmd, in_call)
            self.transcript.append(line)
            if line.startswith(("~", "&")):
                console.append(unescape(line[2:-1]) if line.endswith('"') else line[1:])
                continue
            m = _RESULT_RE.match(line)
            if not m or m.group(1) != token:
                continue
            kind, rest = m.group(2), m.group(3) or ""
            if kind == "error":
                msg = Result(rest).get("msg") or rest
                raise GdbError(msg)
            return Result(rest, console)

    def _readline(self, deadline: float, cmd: str, in_call: bool) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GdbTimeout(cmd, in_call)
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise GdbError("gdb exited unexpectedly")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode("utf-8", "replace").rstrip("\r")

    def console(self, cli: str, timeout: float) -> list[str]:
        """Run a CLI command through MI and return what it printed."""
        quoted = cli.replace("\\", "\\\\").replace('"', '\\"')
        return self.command('-interpreter-exec console "%s"' % quoted, timeout).console

    def abandon(self) -> None:
        """Leave gdb to finish its inferior call on its own, then quit.

        Closing stdin makes gdb quit after the current command; quitting
        detaches from a process it attached to. We do not wait.
        """
        self.abandoned = True
        with contextlib.suppress(OSError):
            if self.proc.stdin:
                self.proc.stdin.close()

    def release(self) -> None:
        """gdb has detached: let it quit without waiting for it (its exit takes
        tens of ms of cleanup we need not sit through); a daemon thread reaps it."""
        self.abandoned = True
        with contextlib.suppress(OSError):
            if self.proc.stdin:
                self.proc.stdin.close()
        threading.Thread(target=self._reap, name="inspector-gdb-reaper", daemon=True).start()

    def _reap(self) -> None:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            self.proc.wait(30)
        with contextlib.suppress(OSError):
            if self.proc.stdout:
                self.proc.stdout.close()

    def close(self, timeout: float = 5.0) -> None:
        """Quit gdb (it detaches); escalate only if it does not go."""
        if self.abandoned:
            return
        with contextlib.suppress(OSError):
            if self.proc.stdin:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            # Not inside an inferior call (abandon() handles that case):
            # SIGTERM makes gdb detach and exit.
            with contextlib.suppress(OSError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with contextlib.suppress(OSError):
            if self.proc.stdout:
                self.proc.stdout.close()
