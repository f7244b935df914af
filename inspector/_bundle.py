"""Render what the injectors put into the target.

Stage 1 is the only text that runs at the injection point (on a target thread
or in a pending call). It is one exception-proof expression statement: it
binds no name in ``__main__``, prints nothing, and only starts one thread
with ``_thread``, then returns. That thread (stage 1's ``go``) checks the
deadline, reads and deletes the 0600 boot file and executes it: the boot file
is ``payloads/loader.py`` followed by a call carrying the token, the socket
path and every payload source.

A stage 1 that fires late (a pending call the client gave up on) finds the
deadline passed, or the boot file gone, and does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import payloads

# Payload modules shipped to the target (payloads/<name>.py). The loader is
# not in this list: it is the boot file's body.
PAYLOAD_MODULES = (
    "errors", "limits", "wire", "policy", "static", "snapshot", "costs", "datasafety",
    "operators", "callables", "query_text", "query_tree", "evaluator", "frames",
    "cmodules", "gcguard",
    "census", "tasks", "isolate", "resident", "agent",
)

_STAGE1 = """\
try:
    import _thread
    def go():
        try:
            import posix, time
            if time.monotonic() >= {deadline!r}:
                return
            fd = posix.open({boot_path!r}, posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_CLOEXEC)
            try:
                st = posix.fstat(fd)
                if st.st_uid not in (0, posix.geteuid()) or st.st_mode & 0o077:
                    return
                chunks = []
                while True:
                    chunk = posix.read(fd, 1 << 20)
                    if not chunk:
                        break
                    chunks.append(chunk)
            finally:
                posix.close(fd)
            posix.unlink({boot_path!r})
            code = compile(b"".join(chunks), "<inspector-agent>", "exec", dont_inherit=True)
            exec(code, {{"__builtins__": __builtins__, "__name__": "_inspector_loader"}})
        except BaseException:
            pass
    _thread.start_new_thread(go, ())
except BaseException:
    pass
"""


@dataclass(frozen=True)
class BootParams:
    """What the agent needs to find and prove itself to the client."""

    token: str
    socket_path: str  # as seen from inside the target's mount namespace
    boot_path: str  # likewise
    deadline: float  # time.monotonic() value; CLOCK_MONOTONIC is system-wide
    package: str  # private module prefix, unique per injection
    idle_timeout: float
    client_uid: int
    resident: dict[str, str] | None = None  # stay after the session (attach --keep)


@cache
def payload_source(name: str) -> str:
    return (_PAYLOADS_DIR / (name + ".py")).read_text("utf-8")


def render_stage1(params: BootParams) -> str:
    """The statement run by PyRun_SimpleString in the target's __main__."""
    inner = _STAGE1.format(deadline=params.deadline, boot_path=params.boot_path)
    # exec() in a fresh dict: nothing of ours is bound in __main__.
    return "exec(%r, {'__builtins__': __builtins__, '__name__': '_inspector_boot'})\n" % inner


_PAYLOADS_DIR = Path(payloads.__file__).parent  # shipped in the wheel (test_packaging)
CHUNK_LINES = 60  # about this many lines per compile() in the target (GIL held)


_TOP_LEVEL_STARTS = ("def ", "class ", "async def ", "@")


@cache
def payload_chunks(name: str) -> list[list[object]]:
    """A payload module cut into [first_line, text] chunks of about CHUNK_LINES
    lines, so that the target never compiles more than that in one
    GIL-holding call. Cuts fall only before a top-level `def`, `class` or
    decorator line (cheap to find; parsing every module with `ast` on each
    attach would cost 50 ms). tests/unit/test_bundle.py proves every chunk
    compiles on its own."""
    lines = payload_source(name).splitlines(keepends=True)
    chunks: list[list[object]] = []
    start = 0  # index of the chunk's first line
    for i, line in enumerate(lines):
        if i - start >= CHUNK_LINES and line.startswith(_TOP_LEVEL_STARTS) and \
                not lines[i - 1].startswith("@"):
            chunks.append([start + 1, "".join(lines[start:i])])
            start = i
    chunks.append([start + 1, "".join(lines[start:])])
    return chunks


def render_boot_file(params: BootParams) -> bytes:
    """Stage 2: loader.py plus the call that carries token and sources."""
    sources = {name: payload_chunks(name) for name in PAYLOAD_MODULES}
    call = "main(%r, %r)\n" % (
        {
            "token": params.token,
            "socket_path": params.socket_path,
            "package": params.package,
            "idle_timeout": params.idle_timeout,
            "client_uid": params.client_uid,
            "resident": params.resident,
        },
        sources,
    )
    return (payload_source("loader") + "\n\n" + call).encode("utf-8")
