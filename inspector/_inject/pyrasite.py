"""The compatibility injector: pyrasite-ng's own gdb recipe.

pyrasite calls ``PyGILState_Ensure`` and ``PyRun_SimpleString`` from gdb on
whatever thread gdb stopped first, with gdb loading full symbols: a longer
freeze (hundreds of ms) and the crash risks the shared DESIGN.md lists
(blocking inside Ensure while another thread holds the GIL; running Python
in the middle of a C call). We keep it selectable so the benchmark can put
the two side by side, and wrap it to stay safe where we can:

- it runs in its own session, so Ctrl-C never reaches gdb mid-call, and it
  is never killed: after the timeout we stop waiting and let it finish;
- its ``PyRun_SimpleString`` text is ``import sys; sys.path.insert(0, DIR);
  sys.path.insert(0, PYRASITE_DIR); exec(open(FILE).read())`` - our FILE
  (stage 1) removes those two sys.path entries again. It also binds ``sys``
  in ``__main__`` if the target's main module had not imported it; we cannot
  tell afterwards whether it was there, so we leave it (documented limit).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from ..errors import AttachError
from .base import FileDrop, InjectionReport, Target

TIMEOUT = 15.0  # seconds for pyrasite's gdb to finish

_RUNNER = (
    "import sys, pyrasite\n"
    "pyrasite.inject(int(sys.argv[1]), sys.argv[2], verbose=True)\n"
)


def _sys_path_cleanup(file_path: str) -> str:
    """Python that undoes pyrasite's two sys.path.insert(0, ...) calls."""
    import pyrasite

    pyrasite_parent = os.path.abspath(os.path.join(os.path.dirname(pyrasite.__file__), ".."))
    entries = [pyrasite_parent, os.path.dirname(file_path)]
    return (
        "exec(%r, {'__builtins__': __builtins__})\n"
        % ("try:\n"
           "    import sys\n"
           "    for p in %r:\n"
           "        if sys.path and sys.path[0] == p:\n"
           "            del sys.path[0]\n"
           "except BaseException:\n"
           "    pass\n" % (entries,))
    )


class PyrasiteInjector:
    name = "pyrasite"
    own_thread = False  # stage 1 runs on a target thread, inside gdb's call

    def __init__(self, gdb_path: str) -> None:
        self.gdb_path = gdb_path

    def inject(self, target: Target, stage1: str, files: FileDrop, deadline: float, *,
               stage1_code: bytes | None = None) -> InjectionReport:
        """Write stage 1 to a file in the private directory and run pyrasite on it."""
        path = files.target_path("stage1.py")
        text = _sys_path_cleanup(path) + stage1
        files.write_file("stage1.py", text.encode("ascii"))
        env = dict(os.environ)
        env["PATH"] = os.path.dirname(self.gdb_path) + os.pathsep + env.get("PATH", "")
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-c", _RUNNER, str(target.pid), path],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env=env,
        )
        wait = max(0.1, min(TIMEOUT, deadline - time.monotonic()))
        try:
            out, _ = proc.communicate(timeout=wait)
        except subprocess.TimeoutExpired:
            # Never kill gdb inside PyGILState_Ensure: that crashes the target.
            raise AttachError(
                "pyrasite's gdb did not finish within %.1f s on process %d (another thread "
                "may hold the GIL); it was left to finish on its own. The default injector "
                "does not block like this" % (wait, target.pid)) from None
        elapsed = (time.monotonic() - started) * 1000.0
        text_out = out.decode("utf-8", "replace")
        if proc.returncode != 0 or "ptrace: Operation not permitted" in text_out:
            last = text_out.strip().splitlines()[-1:] or ["no output"]
            raise AttachError("pyrasite failed on process %d: %s" % (target.pid, last[0]))
        if "unknown return type" in text_out or "No symbol" in text_out:
            raise AttachError("pyrasite's gdb could not call into process %d (%s); use the "
                              "gdb injector" % (target.pid, _first_gdb_error(text_out)))
        return InjectionReport(backend=self.name, path="gil", thread=target.pid,
                               stopped_ms=elapsed, total_ms=elapsed)


def _first_gdb_error(text: str) -> str:
    for line in text.splitlines():
        if "unknown return type" in line or "No symbol" in line:
            return line.strip()
    return "unknown error"
