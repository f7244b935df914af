"""Isolated queries (a disposable fork of the target) and explore mode.

Each hostile query runs in explore mode (--isolated --allow-calls) and must
leave the real target unchanged (fingerprint, shared memory, the mapped file
on disk, the multiprocessing lock, at-fork markers), alive, responsive and
without a leftover child process. The walls around shared memory and the
at-fork callbacks are checked on every interpreter; the rest on the oldest
and newest Python and Debian's python3.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import inspector
from tests.pythons import interpreters
from tests.targets.process import TargetProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
TARGET = Path(__file__).resolve().parents[1] / "targets" / "isolation_target.py"
_PICK = {i.label: i for i in interpreters()}
_PYTHONS = [_PICK[k] for k in ("3.8", "3.13", "system") if k in _PICK]
_ALL = list(interpreters())

# A native library whose pthread_atfork handlers leave marker files: glibc's
# fork() runs `prepare` in the real process (grpc's prefork handler is one).
_ATFORK_C = r"""
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static char dir[2048];
static void mark(const char *name) {
    char path[2200];
    snprintf(path, sizeof path, "%s/native-%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) close(fd);
}
static void prepare(void) { mark("prepare"); }
static void parent(void) { mark("parent"); }
static void child(void) { mark("child"); }
int register_markers(const char *d) {
    strncpy(dir, d, sizeof dir - 1);
    return pthread_atfork(prepare, parent, child);
}
"""


@pytest.fixture(scope="module")
def atfork_lib(tmp_path_factory) -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc) to build the at-fork handler library")
    d = tmp_path_factory.mktemp("atfork")
    (d / "atfork.c").write_text(_ATFORK_C)
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(d / "libatfork.so"), str(d / "atfork.c"),
                    "-lpthread"], check=True, capture_output=True)
    return str(d / "libatfork.so")


def _start(python, tmp_path, atfork_lib=None):
    env = {"ISOLATION_DIR": str(tmp_path)}
    if atfork_lib:
        env["ISOLATION_ATFORK_LIB"] = atfork_lib
    return TargetProcess(python, [str(TARGET)], control=True, env=env)


@pytest.fixture(params=_PYTHONS, ids=["py" + i.label for i in _PYTHONS])
def isolation_target(request, needs_gdb, tmp_path):
    if request.param.path is None:
        pytest.skip(request.param.missing_reason)
    target = _start(request.param.path, tmp_path)
    yield target
    target.kill()


@pytest.fixture(params=_ALL, ids=["py" + i.label for i in _ALL])
def walled_target(request, needs_gdb, tmp_path, atfork_lib):
    """The isolation target on every interpreter, with the native at-fork library."""
    if request.param.path is None:
        pytest.skip(request.param.missing_reason)
    target = _start(request.param.path, tmp_path, atfork_lib)
    yield target
    target.kill()


def _children(pid: int) -> str:
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        return f.read().strip()


HOSTILE = [
    ("cache.clear()", None),
    ("orders.pop()", None),
    ("next(gen)", None),
    ("gen.send(None)", None),
    ("conn.send(b'written from the child')", "eval"),
    ("__import__('os')._exit(1)", "eval"),
    ("__import__('ctypes').string_at(0)", "eval"),
    ("[0 for _ in iter(int, 1)]", "eval"),
    ("open('/tmp/inspector-isolation-probe', 'w').write('x')", "eval"),
    ("__import__('os').fork()", "eval"),
]


def test_hostile_queries_leave_the_target_unchanged(isolation_target):
    target = isolation_target
    before = target.state()
    with inspector.attach(target.pid) as session:
        for query, error in HOSTILE:
            try:
                value = session.eval(query, isolated=True, allow_calls=True,
                                     limits={"max_seconds": 2})
            except inspector.EvalError:
                assert error == "eval", query
            else:
                assert error is None, (query, value.node)
            assert _children(target.pid) == "", query  # every child reaped
        # the agent and the target still answer after all of that
        assert session.eval("len(cache)").to_python() == 50
    target.wait_threads(before["os_threads"])
    after = target.state()
    assert after == before
    assert not os.path.exists("/tmp/inspector-isolation-probe")
    assert target.alive() and target.stderr_text() == ""


def test_isolated_sandboxed_query_gives_the_same_answer(isolation_target):
    with inspector.attach(isolation_target.pid) as session:
        plain = session.eval("sorted(cache)[:3]").to_python()
        forked = session.eval("sorted(cache)[:3]", isolated=True)
        assert forked.to_python() == plain
        assert "fork_ms" in forked.node["isolated"]
        # the sandbox still applies inside the fork without --allow-calls
        with pytest.raises(inspector.Denied):
            session.eval("cache.clear()", isolated=True)


def test_allow_calls_without_isolation_is_refused(isolation_target):
    before = isolation_target.state()
    with inspector.attach(isolation_target.pid) as session:
        with pytest.raises(inspector.Denied, match="--isolated"):
            session.eval("cache.clear()", allow_calls=True)
    isolation_target.wait_threads(before["os_threads"])
    assert isolation_target.state() == before


def test_rss_limit_refuses_with_the_reason(isolation_target):
    with inspector.attach(isolation_target.pid) as session:
        with pytest.raises(inspector.Denied, match="RSS"):
            session.eval("1", isolated=True, max_isolated_rss=1024)


# Explore-mode queries that would change the real process through shared
# memory or another channel a forked child keeps. Each must be refused (the
# child dies of SIGSEGV on a read-only page, or gets PermissionError) - or,
# where marked "ok", be harmless - and leave the target unchanged.
WALL_ATTACKS = [
    # anonymous shared memory
    "shm.seek(0) or shm.write(b'X')",
    "shm.__setitem__(slice(0, 4), b'XXXX')",
    "ctypes.memset(shm_addr, 88, 64)",
    "[ctypes.CDLL(None).mprotect(ctypes.c_void_p(shm_addr), 4096, 3), "
    "ctypes.memset(shm_addr, 88, 64)]",
    "shm.madvise(__import__('mmap').MADV_REMOVE)",
    "shm.flush()",
    "[shm.resize(8192), shm.seek(0), shm.write(b'X')]",  # mremap keeps it read-only
    # a file-backed shared mapping: writes would reach the file on disk
    "fmap.seek(0) or fmap.write(b'X')",
    "fmap.madvise(__import__('mmap').MADV_REMOVE)",
    "fmap.resize(8192)",
    "fmap.flush()",
    # memfd and SysV shared memory
    "mfd_map.seek(0) or mfd_map.write(b'X')",
    "ctypes.memset(sysv_addr, 88, 64)",
    # multiprocessing primitives in shared memory
    "mp_lock.acquire()",
    "mp_lock.acquire(False)",
    "setattr(mp_value, 'value', 8)",
    # other channels to the real process
    "__import__('os').kill(__import__('os').getppid(), 9)",
    "open('/proc/%d/mem' % __import__('os').getppid(), 'r+b')",
    "__import__('os').register_at_fork(before=print) or __import__('os').fork()",
]
# harmless in the child, so answered: dropping the child's view of shared pages
WALL_HARMLESS = [
    "shm.madvise(__import__('mmap').MADV_DONTNEED)",
    "fmap.madvise(__import__('mmap').MADV_DONTNEED)",
    "bytes(shm[:4])",
]


def test_shared_memory_and_other_channels_do_not_cross_the_wall(walled_target):
    target = walled_target
    before = target.state()
    assert before["mp_lock_free"] and before["markers"] == []
    with inspector.attach(target.pid) as session:
        for query in WALL_ATTACKS:
            with pytest.raises(inspector.EvalError):
                value = session.eval(query, isolated=True, allow_calls=True,
                                     limits={"max_seconds": 2})
                pytest.fail("%s answered %r" % (query, value.node))
            assert _children(target.pid) == "", query
        for query in WALL_HARMLESS:
            session.eval(query, isolated=True, allow_calls=True, limits={"max_seconds": 2})
        assert session.eval("list(shm[:4])", isolated=True,
                            allow_calls=True).to_python() == [0, 1, 2, 3]
    target.wait_threads(before["os_threads"])
    after = target.state()
    assert after == before  # shm, file mapping, file on disk, memfd, SysV, value, lock, markers
    assert target.alive() and target.stderr_text() == ""


def test_the_fork_runs_no_at_fork_callback(walled_target):
    """glibc's handlers never run (no glibc fork); Python's after_in_child ones
    run only with --allow-calls, in the child, behind the walls; nor do the
    finalizers CPython's fork hook would run when it drops dead threads."""
    target = walled_target
    before = target.state()
    with inspector.attach(target.pid) as session:
        assert session.eval("len(cache)", isolated=True).to_python() == 50
        # the child's copy of the flag: the callback did not run there either
        assert session.eval("forked_child_ran", isolated=True).to_python() is False
        # nor did the finalizers of what only other threads' states held
        assert session.eval("finalizer_ran", isolated=True).to_python() == []
        # explore mode: it ran in the child, where its file write was refused
        assert session.eval("forked_child_ran", isolated=True,
                            allow_calls=True).to_python() is True
    target.wait_threads(before["os_threads"])
    after = target.state()
    assert after["markers"] == [] and after["forked_child_ran"] is False
    assert after == before
    assert target.alive() and target.stderr_text() == ""


def test_the_marker_library_detects_a_glibc_fork(atfork_lib, tmp_path):
    """Control for the test above: a plain os.fork() leaves every marker."""
    code = ("import ctypes, os, sys; lib = ctypes.CDLL(sys.argv[1]); "
            "lib.register_markers(sys.argv[2].encode()); pid = os.fork(); "
            "os._exit(0) if pid == 0 else os.waitpid(pid, 0)")
    subprocess.run([sys.executable, "-c", code, atfork_lib, str(tmp_path)], check=True,
                   timeout=30)
    assert sorted(os.listdir(tmp_path)) == ["native-child", "native-parent", "native-prepare"]
