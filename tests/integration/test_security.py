"""The security suite: who can get in, what is written where, what stays hidden.

Each test checks the refusal (or the outcome) and that the target is
unchanged. "Another local user" is a forked child of this test process that
dropped to uid 65534 (nobody); those tests need root and skip visibly
otherwise. The fuzz tests throw random requests and garbage at a real agent
and random source at the evaluator (in-process).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import grp
import json
import logging
import os
import pwd
import select
import shlex
import shutil
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import inspector
from inspector import _resident
from inspector._bundle import BootParams, render_boot_file, render_stage1
from inspector._channel import BOOT_NAME, SOCKET_NAME, Listener
from inspector._inject.native import NativeInjector
from inspector.session import connect_resident
from payloads import wire
from payloads.errors import AgentError
from payloads.evaluator import EvalOptions, Scope, evaluate
from payloads.limits import Limits
from payloads.snapshot import snapshot
from tests import payload_cases
from tests.integration.test_attach import _same_state
from tests.integration.test_cli import run_cli
from tests.targets.process import TargetProcess

pytestmark = [pytest.mark.timeout(180)]
integration = pytest.mark.integration
needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root: plays another local user (uid 65534) and "
                                       "attaches to other users' processes")
NOBODY = 65534
SYSTEM_PYTHON = "/usr/bin/python3"  # pyenv's interpreters live under /root: not for nobody


def as_user(uid: int, probe: Callable[[], Any]) -> Any:
    """Run `probe` in a forked child that dropped to `uid`; return its JSON result."""
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            result = probe()
            os.write(write_fd, json.dumps(result).encode())
        except BaseException as e:
            os.write(write_fd, json.dumps({"probe failed": repr(e)}).encode())
            code = 1
        os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        raw = f.read()
    os.waitpid(child, 0)
    return json.loads(raw)


def _errno_of(action: Callable[[], Any]) -> str:
    try:
        action()
    except OSError as e:
        return errno.errorcode.get(e.errno or 0, str(e))
    return "allowed"


def _connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(5)
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    return sock


def _answer_after(sock: socket.socket, payload: bytes) -> str:
    """Send `payload`; 'closed' if the peer hangs up without a word, else what came."""
    try:
        sock.sendall(payload)
        data = sock.recv(65536)
    except (BrokenPipeError, ConnectionResetError):
        return "closed"  # hung up before (or while) we spoke
    except OSError as e:
        return errno.errorcode.get(e.errno or 0, str(e))
    finally:
        sock.close()
    return "closed" if not data else "answered: %r" % data[:80]


def _frame(message: dict) -> bytes:
    return wire.encode_frame(message)


# -- another local user ---------------------------------------------------------


@integration
@needs_root
def test_other_user_cannot_reach_the_resident_agent(edge_python, spawn):
    # Given a root-owned target with a resident agent
    target = spawn(edge_python, "idle", control=True)
    before = target.state()
    baseline = target.os_thread_count()
    assert run_cli("attach", str(target.pid), "--keep", "--idle-timeout", "60").returncode == 0
    spec = _resident.find(target.pid, 0)
    assert spec is not None
    key = Path(spec.host_key).read_text().strip()
    directory = os.path.dirname(spec.host_socket)
    try:
        # When another local user tries the socket, the key file and the directory
        def probe() -> dict[str, str]:
            return {"connect": _errno_of(lambda: _connect(spec.host_socket).close()),
                    "read key": _errno_of(lambda: open(spec.host_key).read()),
                    "list dir": _errno_of(lambda: os.listdir(directory))}

        # Then the private directory stops every one of them
        assert as_user(NOBODY, probe) == {"connect": "EACCES", "read key": "EACCES",
                                          "list dir": "EACCES"}
        # And even with the directory opened up (a mistake, or a hostile admin
        # script), the agent checks SO_PEERCRED: the right key from the wrong
        # user gets the connection closed without a word
        os.chmod(directory, 0o711)
        os.chmod(spec.host_socket, 0o777)
        try:
            hello = _frame({"kind": "hello", "proto": wire.PROTOCOL_VERSION, "key": key})
            assert as_user(NOBODY, lambda: _answer_after(_connect(spec.host_socket),
                                                         hello)) == "closed"
        finally:
            os.chmod(directory, 0o700)
            os.chmod(spec.host_socket, 0o755)
        # And the operator still gets in
        with connect_resident(target.pid) as session:
            assert session.eval("len(orders)").to_python() == 10
    finally:
        assert run_cli("detach", str(target.pid)).returncode == 0
    assert target.wait_threads(baseline) == baseline
    assert not os.path.exists(spec.host_socket) and not os.path.exists(spec.host_key)
    _same_state(before, target.state())
    assert target.stderr_text() == ""


@integration
@needs_root
def test_one_shot_channel_is_private_and_rejects_an_impostor(edge_python, spawn, monkeypatch,
                                                             caplog):
    # Given a target, and a look at the channel while the injection happens
    target = spawn(edge_python, "sleep", control=True)
    before = target.state()
    baseline = target.os_thread_count()
    real_inject = NativeInjector.inject
    seen: dict[str, Any] = {}

    def inject(self, tgt, stage1, files, deadline, **kw):
        boot = os.path.join(files.host_dir, BOOT_NAME)
        sock_path = os.path.join(files.host_dir, SOCKET_NAME)
        seen["dir"] = os.lstat(files.host_dir)
        seen["boot"] = os.lstat(boot)
        seen["paths"] = (files.host_dir, sock_path)
        seen["nobody"] = as_user(NOBODY, lambda: {
            "connect": _errno_of(lambda: _connect(sock_path).close()),
            "read boot": _errno_of(lambda: open(boot, "rb").read()),
            "list dir": _errno_of(lambda: os.listdir(files.host_dir))})
        # An impostor: root like the target (so the uid check passes), with the
        # right token, connecting first - but it is not the target process
        hello = _frame({"kind": "hello", "proto": wire.PROTOCOL_VERSION,
                        "token": files.token, "pid": tgt.pid})
        read_fd, write_fd = os.pipe()
        impostor = os.fork()
        if impostor == 0:  # pragma: no cover - runs in the child
            # Keep none of our descriptors (the listener, the attach lock): the client must
            # see EOF when we let it go
            os.closerange(3, write_fd)
            os.closerange(write_fd + 1, 1 << 16)
            os.write(write_fd, _answer_after(_connect(sock_path), hello).encode())
            os._exit(0)
        os.close(write_fd)
        seen["impostor"] = (impostor, read_fd)
        time.sleep(0.2)  # its connection waits in the backlog, ahead of the agent's
        return real_inject(self, tgt, stage1, files, deadline, **kw)

    monkeypatch.setattr(NativeInjector, "inject", inject)
    caplog.set_level(logging.WARNING, logger="inspector._channel")
    # When we attach
    with inspector.attach(target.pid, reuse=False) as session:
        # Then the real agent got through, after the impostor was turned away
        assert session.agent.pid == target.pid
        assert session.eval("len(orders)").to_python() == 10
        impostor, read_fd = seen["impostor"]
        with os.fdopen(read_fd) as f:
            assert f.read() == "closed"
        os.waitpid(impostor, 0)
        assert "peer pid %d is not the target %d" % (impostor, target.pid) in caplog.text
        # And the channel is gone: the token cannot be presented again
        host_dir, sock_path = seen["paths"]
        assert not os.path.exists(host_dir)
        assert _errno_of(lambda: _connect(sock_path)) == "ENOENT"
    # And while it existed it was private: 0700 directory, 0600 boot file, root's
    assert stat.S_IMODE(seen["dir"].st_mode) == 0o700 and seen["dir"].st_uid == 0
    assert stat.S_IMODE(seen["boot"].st_mode) == 0o600 and seen["boot"].st_uid == 0
    assert seen["nobody"] == {"connect": "EACCES", "read boot": "EACCES",
                              "list dir": "EACCES"}
    assert target.wait_threads(baseline) == baseline
    _same_state(before, target.state())
    assert target.stderr_text() == ""


_EXEC_LINES = """\
import sys
sys.stdout.write("ready\\n"); sys.stdout.flush()
for line in sys.stdin:
    exec(line, globals())
"""

_REPLAY = ("import socket as _s; _c = _s.socket(_s.AF_UNIX); _c.settimeout(10); "
           "_c.connect(%r); _c.sendall(%r); _d = _c.recv(100); "
           "sys.stdout.write(('closed' if not _d else 'answered') + '\\n'); sys.stdout.flush()\n")


@integration
def test_a_replayed_hello_from_the_target_itself_is_rejected(edge_python):
    """The token is one-time: a hello replayed by the right process (right pid
    and uid) to a later channel is refused, and that channel still accepts the
    genuine agent."""
    child = subprocess.Popen([edge_python, "-I", "-c", _EXEC_LINES], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdin and child.stdout and child.stderr
    assert child.stdout.readline() == "ready\n"

    def inject(listener: Listener) -> None:
        params = BootParams(token=listener.token, socket_path=listener.socket_path,
                            boot_path=listener.boot_path, deadline=time.monotonic() + 10,
                            package="_inspector_agent_sec", idle_timeout=30,
                            client_uid=os.geteuid())
        listener.write_file(BOOT_NAME, render_boot_file(params))
        child.stdin.write(render_stage1(params))
        child.stdin.flush()

    try:
        # Given a first, genuine handshake whose hello we keep
        first = Listener(child.pid, os.geteuid())
        try:
            inject(first)
            conn = first.accept(time.monotonic() + 10)
        finally:
            first.close()
        old_hello = conn.hello
        conn.close()
        # When the target process itself replays that hello to a new channel
        second = Listener(child.pid, os.geteuid())
        try:
            child.stdin.write(_REPLAY % (second.socket_path, _frame(old_hello)))
            child.stdin.flush()
            # Then the channel refuses it (a bad token) and keeps waiting
            with pytest.raises(TimeoutError):
                second.accept(time.monotonic() + 2)
            assert child.stdout.readline() == "closed\n"
            # And the genuine agent for this channel still gets through
            inject(second)
            conn = second.accept(time.monotonic() + 10)
            assert conn.hello["token"] == second.token != old_hello["token"]
            conn.close()
        finally:
            second.close()
    finally:
        child.stdin.close()
        child.wait(10)
        assert child.stderr.read() == ""
        child.stdout.close()
        child.stderr.close()


@integration
@needs_root
def test_root_attaches_to_an_unprivileged_users_process(spawn, monkeypatch):
    if not os.path.exists(SYSTEM_PYTHON):
        pytest.skip("%s is not installed: the target must run an interpreter nobody can "
                    "read" % SYSTEM_PYTHON)
    # Given a target running as nobody
    target = spawn(SYSTEM_PYTHON, "sleep", control=True, user=NOBODY)
    before = target.state()
    baseline = target.os_thread_count()
    with open("/proc/%d/status" % target.pid) as f:
        assert "Uid:\t%d" % NOBODY in f.read()
    # When root attaches one-shot (looking at the channel during the injection)
    real_inject = NativeInjector.inject
    seen: dict[str, os.stat_result] = {}

    def inject(self, tgt, stage1, files, deadline, **kw):
        seen["dir"] = os.lstat(files.host_dir)
        seen["boot"] = os.lstat(os.path.join(files.host_dir, BOOT_NAME))
        seen["socket"] = os.lstat(os.path.join(files.host_dir, SOCKET_NAME))
        return real_inject(self, tgt, stage1, files, deadline, **kw)

    monkeypatch.setattr(NativeInjector, "inject", inject)
    with inspector.attach(target.pid, reuse=False) as session:
        assert session.eval("len(orders)").to_python() == 10
    # Then it worked, through files handed to the target's user and nobody else
    assert (seen["dir"].st_uid, stat.S_IMODE(seen["dir"].st_mode)) == (NOBODY, 0o700)
    assert (seen["boot"].st_uid, stat.S_IMODE(seen["boot"].st_mode)) == (NOBODY, 0o600)
    assert seen["socket"].st_uid == NOBODY
    # And a resident agent lives in /run/inspector/uid-65534 (0700, nobody's), key 0600
    assert run_cli("attach", str(target.pid), "--keep", "--idle-timeout", "60").returncode == 0
    try:
        spec = _resident.find(target.pid, NOBODY)
        assert spec is not None
        directory = os.path.dirname(spec.host_socket)
        assert directory == "/run/inspector/uid-%d" % NOBODY
        st_dir, st_key = os.lstat(directory), os.lstat(spec.host_key)
        assert stat.S_ISDIR(st_dir.st_mode) and st_dir.st_uid == NOBODY
        assert stat.S_IMODE(st_dir.st_mode) == 0o700
        assert st_key.st_uid == NOBODY and stat.S_IMODE(st_key.st_mode) == 0o600
        assert os.lstat(spec.host_socket).st_uid == NOBODY
        out = run_cli("eval", str(target.pid), "len(orders)")
        assert out.returncode == 0 and out.stdout.strip() == "10", out.stderr
    finally:
        assert run_cli("detach", str(target.pid)).returncode == 0
    assert target.wait_threads(baseline) == baseline  # the agent removes its files, then ends
    assert not os.path.exists(spec.host_socket) and not os.path.exists(spec.host_key)
    _same_state(before, target.state())
    assert target.stderr_text() == ""


# -- the audit log ----------------------------------------------------------------


@integration
def test_every_query_lands_in_the_audit_log(edge_python, spawn, tmp_path):
    # Given an audit log that already holds a line (and was left readable by others)
    target = spawn(edge_python, "sleep", control=True)
    before = target.state()
    log = tmp_path / "audit.jsonl"
    old_line = '{"ts": "2000-01-01T00:00:00+00:00", "previous": true}\n'
    log.write_text(old_line)
    log.chmod(0o644)
    fresh = tmp_path / "new" / "dir" / "audit.jsonl"
    env = {"INSPECTOR_AUDIT_LOG": str(log)}
    pid = str(target.pid)
    cases = [  # (CLI arguments, exit code, op, expr, outcome, redact)
        (["eval", pid, "len(orders)"], 0, "eval", "len(orders)", "ok", True),
        (["eval", pid, "open('/etc/passwd')"], 3, "eval", "open('/etc/passwd')", "denied", True),
        (["eval", pid, "orders[99]"], 1, "eval", "orders[99]", "eval", True),
        (["eval", pid, "'a' * 10**10"], 4, "eval", "'a' * 10**10", "budget", True),
        (["stack", pid, "--locals"], 0, "stack", None, "ok", True),
        (["eval", pid, "config.api_key", "--no-redact"], 0, "eval", "config.api_key", "ok",
         False),
    ]
    started = datetime.datetime.now(datetime.timezone.utc)
    # When an operator asks these questions
    for args, code, *_ in cases:
        out = run_cli(*args, env=env)
        assert out.returncode == code, (args, out.stderr)
    assert run_cli("eval", pid, "1", env={"INSPECTOR_AUDIT_LOG": str(fresh)}).returncode == 0
    ended = datetime.datetime.now(datetime.timezone.utc)
    # Then every one of them is one appended JSON line, the old line untouched
    lines = log.read_text().splitlines(keepends=True)
    assert lines[0] == old_line and len(lines) == 1 + len(cases)
    for line, (_args, _code, op, expr, outcome, redact) in zip(lines[1:], cases, strict=True):
        record = json.loads(line)
        assert started <= datetime.datetime.fromisoformat(record["ts"]) <= ended
        assert record["operator_uid"] == os.getuid() and record["operator"]
        assert record["target_pid"] == target.pid
        assert "target.py sleep" in record["target_command"]
        assert record["op"] == op and record["outcome"] == outcome
        assert record["query"].get("expr") == expr
        assert record["query"]["redact"] is redact
        assert bool(record.get("message")) is (outcome != "ok")
    # And the log is private (0600; one a foreign umask made readable is tightened),
    # in a directory created 0700
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    assert stat.S_IMODE(fresh.parent.stat().st_mode) == 0o700
    assert json.loads(fresh.read_text())["query"]["expr"] == "1"
    target.wait_threads(before["os_threads"])
    _same_state(before, target.state())


# -- redaction ----------------------------------------------------------------------

SECRETS = {"SECRET_TOKEN": "tok-9f2c1e-VALUE", "API_KEY": "key-77ab3d-VALUE",
           "TARGET_PASSWORD": "pw-5e1d0a-VALUE"}
# The target's own secrets: config.api_key and canary.password (tests/targets/target.py)
ALL_SECRET_VALUES = (*SECRETS.values(), "sk-test-secret", "hunter2-canary")


@integration
def test_secrets_are_redacted_by_default_and_no_redact_is_logged(edge_python, spawn,
                                                                 tmp_path, monkeypatch):
    # Given a target with secrets in its environment, its objects and a frame local
    target = spawn(edge_python, "secrets", control=True, env=SECRETS)
    before = target.state()
    baseline = target.os_thread_count()
    log = tmp_path / "audit.jsonl"
    monkeypatch.setenv("INSPECTOR_AUDIT_LOG", str(log))
    pid = str(target.pid)
    # (a resident agent keeps the many questions fast; redaction is the agent's job)
    assert run_cli("attach", pid, "--keep", "--idle-timeout", "60").returncode == 0
    try:
        # When an operator looks everywhere, by default: on the command line ...
        commands = [
            ["eval", pid, "os.environ"],
            ["eval", pid, "os.environ._data", "--json"],
            ["eval", pid, "password", "--thread", "MainThread"],
            ["stack", pid, "--locals"],
        ]
        for args in commands:
            out = run_cli(*args)
            # Then no secret value shows, in any form
            assert out.returncode == 0, (args, out.stderr)
            shown = out.stdout + out.stderr
            assert not [s for s in ALL_SECRET_VALUES if s in shown], (args, shown[:2000])
            assert "redacted" in shown, args
        # ... and through the API
        queries = ["list(os.environ._data.values())",
                   "{k: v for k, v in os.environ._data.items()}",
                   "[os.environ._data[k] for k in os.environ._data]",
                   "sys.modules['posix'].environ", "vars(config)", "canary"]
        with inspector.attach(target.pid) as session:
            nodes = [session.eval(q).node for q in queries]
            nodes.append(session.locals("MainThread", 0).node)
            nodes.append(session.globals().node)
        for query, node in zip(queries + ["locals", "globals"], nodes, strict=True):
            shown = json.dumps(node)
            assert not [s for s in ALL_SECRET_VALUES if s in shown], (query, shown[:2000])
            assert '"redacted"' in shown, query
        # And asking for them explicitly (--no-redact) shows them ...
        plain = run_cli("eval", pid, "os.environ._data[b'SECRET_TOKEN']", "--no-redact")
        assert plain.returncode == 0 and SECRETS["SECRET_TOKEN"] in plain.stdout
        local = run_cli("stack", pid, "--locals", "--no-redact")
        assert local.returncode == 0 and SECRETS["TARGET_PASSWORD"] in local.stdout
        # ... and is logged as such
        records = [json.loads(line) for line in log.read_text().splitlines()]
        assert [r["query"]["redact"] for r in records] == \
            [True] * (len(commands) + len(nodes)) + [False] * 2
    finally:
        assert run_cli("detach", pid).returncode == 0
    assert target.wait_threads(baseline) == baseline
    _same_state(before, target.state())
    assert target.stderr_text() == ""


# -- fuzzing -------------------------------------------------------------------------

_OPS = ("ping", "threads", "stack", "locals", "globals", "modules", "eval", "inspect",
        "census", "tasks", "memory", "detach")
_json_scalars = (st.none() | st.booleans() | st.integers(-2**63, 2**63)
                 | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30))
_json = st.recursive(_json_scalars,
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                     max_leaves=12)
_ARGS = {
    "expr": st.text(max_size=60) | st.sampled_from(["len(orders)", "cache", "canary",
                                                      "config.api_key", "orders[0]"]),
    "thread": st.sampled_from(["MainThread", "control", 0, -1]) | _json,
    "frame": st.integers(-3, 300) | _json,
    "module": st.sampled_from(["__main__", "sys", "os", "nope"]) | _json,
    "path": st.lists(st.lists(st.sampled_from(["attr", "item", "x"]) | _json, max_size=3),
                     max_size=3) | _json,
    "offset": st.integers(-5, 10**6) | _json,
    "locals": _json, "redact": _json, "allow_properties": _json,
    "top": st.integers(-1, 50) | _json, "sort": st.sampled_from(["count", "size"]) | _json,
    "tracemalloc_top": st.integers(-1, 20) | _json,
    # Lowering a budget is always safe; raising one is an operator's decision.
    "limits": st.dictionaries(st.sampled_from(sorted(Limits.__slots__) + ["bogus"]),
                              st.integers(1, 1000), max_size=3) | _json,
}
_requests = st.fixed_dictionaries(
    {"id": _json, "op": st.sampled_from(_OPS) | st.text(max_size=12) | _json},
    optional={name: strategy for name, strategy in _ARGS.items()})
_garbage = (st.binary(max_size=300)
            | st.builds(lambda n, body: n.to_bytes(4, "big") + body,
                        st.integers(0, 2**32 - 1), st.binary(max_size=64))
            | _json.map(lambda v: (lambda b: len(b).to_bytes(4, "big") + b)(
                wire.dumps(v) if not isinstance(v, dict) else wire.dumps([v]))))
_REPLY_DEADLINE = 15.0  # seconds; every request's own budgets end far sooner


class _Resident:
    """A resident agent to fuzz, and one authenticated connection to it."""

    def __init__(self, target: TargetProcess) -> None:
        self.target = target
        self.sock: socket.socket | None = None
        self.sessions = 0

    def connection(self) -> socket.socket:
        if self.sock is None:
            spec = _resident.find(self.target.pid, os.geteuid())
            assert spec is not None, "the resident agent went away"
            conn = _resident.connect(spec)
            self.sock = conn.sock
            self.sessions += 1
        return self.sock

    def drop(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def exchange(self, payload: bytes, *, end_input: bool = False) -> dict | None:
        """Send bytes; return the reply frame, or None if the agent ended the session."""
        sock = self.connection()
        sock.settimeout(_REPLY_DEADLINE)
        started = time.monotonic()
        try:
            sock.sendall(payload)
            if end_input:
                sock.shutdown(socket.SHUT_WR)
            header = wire.recv_exact(sock, wire.HEADER_SIZE)
            body = wire.recv_exact(sock, wire.frame_length(header))
        except (EOFError, ConnectionError):
            self.drop()
            return None
        except TimeoutError:
            raise AssertionError("the agent neither answered nor hung up within %.0f s"
                                 % _REPLY_DEADLINE) from None
        finally:
            assert time.monotonic() - started < _REPLY_DEADLINE
        reply = wire.decode_body(body)
        if end_input:
            self.drop()
        return reply


@pytest.fixture
def fuzz_target(edge_python, spawn):
    target = spawn(edge_python, "sleep", control=True)
    before = target.state()
    baseline = target.os_thread_count()
    out = run_cli("attach", str(target.pid), "--keep", "--idle-timeout", "120")
    assert out.returncode == 0, out.stderr
    resident = _Resident(target)
    yield resident
    resident.drop()
    # After the storm: the agent still serves, then leaves cleanly; nothing changed
    assert run_cli("eval", str(target.pid), "len(orders)").stdout.strip() == "10"
    assert run_cli("detach", str(target.pid)).returncode == 0
    assert target.wait_threads(baseline, timeout=10) == baseline
    _same_state(before, target.state())
    assert target.stderr_text() == ""


@integration
def test_fuzz_agent_with_random_requests(fuzz_target):
    kinds_seen: set[str] = set()

    @given(request=_requests)
    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def one(request: dict) -> None:
        reply = fuzz_target.exchange(_frame(request))
        if reply is None:
            # Only a detach ends a session on a well-formed frame
            assert request["op"] == "detach", request
            return
        assert reply.get("id") == request["id"]
        if request["op"] == "detach":
            assert reply["ok"] is True
            fuzz_target.drop()
            return
        assert reply["ok"] in (True, False), reply
        if not reply["ok"]:
            kind = reply["error"]["kind"]
            # "internal" would mean an exception the agent did not expect
            assert kind in ("denied", "budget", "eval", "usage", "protocol"), (request, reply)
            assert isinstance(reply["error"]["message"], str)
            kinds_seen.add(kind)

    one()
    assert {"protocol", "eval"} <= kinds_seen  # the fuzzer did reach the refusals


@integration
def test_fuzz_agent_with_garbage_frames(fuzz_target):
    @given(garbage=_garbage, authenticated=st.booleans())
    @settings(max_examples=120, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def one(garbage: bytes, authenticated: bool) -> None:
        if authenticated:
            # After the handshake: the session ends (or a valid-by-chance frame
            # is answered); then the next connection is served as usual
            reply = fuzz_target.exchange(garbage, end_input=True)
            assert reply is None or reply.get("ok") in (True, False)
        else:
            # Instead of the hello: refused without an answer
            spec = _resident.find(fuzz_target.target.pid, os.geteuid())
            assert spec is not None
            sock = _connect(spec.host_socket)
            try:
                sock.sendall(garbage)
                sock.shutdown(socket.SHUT_WR)
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused before we finished speaking
            ready, _, _ = select.select([sock], [], [], _REPLY_DEADLINE)
            assert ready, "the agent neither answered nor hung up"
            try:
                assert sock.recv(100) == b""
            except ConnectionResetError:
                pass  # it hung up with our unread bytes still queued: same refusal
            finally:
                sock.close()
        ping = fuzz_target.exchange(_frame({"id": 1, "op": "ping"}))
        assert ping is not None and ping["ok"] is True

    one()
    assert fuzz_target.sessions > 10


# A small grammar of Python tokens: names from the hostile scope
# (tests/payload_cases.py), literals, operators, dunders and dangerous builtins.
_TOKENS = (
    "canary", "config", "cache", "orders", "registry", "settings", "deep", "big", "gen",
    "fn", "tb", "sys", "codecs", "operator", "Canary", "canary_keys", "defaults",
    "0", "1", "-1", "2**64", "10**10", "'a'", "b'x'", "None", "True", "[]", "{}", "()",
    "+", "-", "*", "**", "/", "//", "%", "<<", "==", "<", "in", "not", "and", "or", "is",
    "if", "else", "for", "lambda", "x", ":", ",", ".", "(", ")", "[", "]", "{", "}",
    ".__class__", ".__dict__", ".__globals__", ".__subclasses__()", ".__mro__",
    ".__init__", ".__getattribute__", ".format", ".password", ".items()", ".get",
    "len", "sorted", "getattr", "type", "vars", "dir", "open", "__import__", "eval",
    "exec", "iter", "next", "min", "max", "sum", "str", "repr", "hash", "id", "isinstance",
    "f'{canary}'", "*", "**", ":=", "...",
)
_sources = (st.text(max_size=120)
            | st.lists(st.sampled_from(_TOKENS), max_size=25).map(" ".join)
            | st.lists(st.sampled_from(_TOKENS), max_size=25).map("".join))
_EVAL_TIME_LIMIT = 5.0  # seconds: the 2 s wall budget, parsing and the snapshot


def test_fuzz_evaluator_with_random_source():
    """In-process: only the documented errors, bounded time, nothing changed."""
    scope_globals = payload_cases.build_scope()
    before = payload_cases.fingerprint()
    keys = sorted(scope_globals)
    outcomes: set[str] = set()

    @given(source=_sources, redact=st.booleans())
    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def one(source: str, redact: bool) -> None:
        started = time.monotonic()
        try:
            value = evaluate(source, Scope(scope_globals), EvalOptions(redact=redact))
            snapshot(value, redact=redact)
            outcomes.add("ok")
        except AgentError as e:  # DeniedError, BudgetError, QueryError
            assert e.kind in ("denied", "budget", "eval", "usage"), e
            outcomes.add(e.kind)
        assert time.monotonic() - started < _EVAL_TIME_LIMIT, source
        assert payload_cases.CANARY == [], (source, payload_cases.CANARY)

    one()
    assert sorted(scope_globals) == keys
    assert payload_cases.fingerprint() == before
    assert {"ok", "denied", "eval"} <= outcomes


# -- a hostile target or local user (issue 14) ----------------------------------------
#
# Real users, created here (groupadd/useradd) and removed after; targets run as
# them, in their own mount namespace where it matters. Each test shows the
# attack closed: nothing read, created, chowned or hung outside the design.


@pytest.fixture
def make_user():
    """make_user() -> uid of a fresh system user (its gid is the same number)."""
    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("needs root and useradd: creates real users")
    created: list[str] = []

    def _make() -> int:
        for uid in range(61000 + os.getpid() % 500, 62000):
            try:
                pwd.getpwuid(uid)
                continue
            except KeyError:
                pass
            try:
                grp.getgrgid(uid)
                continue
            except KeyError:
                pass
            name = "insp%d" % uid
            subprocess.run(["groupadd", "-g", str(uid), name], check=True)
            subprocess.run(["useradd", "-u", str(uid), "-g", str(uid), "-M", "-N", "-s",
                            "/usr/sbin/nologin", name], check=True)
            created.append(name)
            return uid
        raise RuntimeError("no free uid")

    yield _make
    for name in created:
        subprocess.run(["pkill", "-KILL", "-u", name], check=False)
        subprocess.run(["userdel", name], check=False)
        subprocess.run(["groupdel", name], check=False)
        # root's resident state directory for that uid goes with it (rmtree
        # works through fds and never follows the symlinks a test planted)
        shutil.rmtree("/run/inspector/uid-%s" % name[len("insp"):], ignore_errors=True)


def _system_python() -> str:
    if not os.path.exists(SYSTEM_PYTHON):
        pytest.skip("%s is not installed: targets run as fresh users" % SYSTEM_PYTHON)
    return SYSTEM_PYTHON


_PARK_FILES = """\
import os, sys, threading, time
def park(name):
    code = compile("def f():\\n    while True: time.sleep(0.05)\\n", name, "exec")
    ns = {"time": time}
    exec(code, ns)
    threading.Thread(target=ns["f"], daemon=True).start()
for name in sys.argv[1:]:
    park(name)
sys.stdout.write("ready\\n"); sys.stdout.flush()
while True:
    time.sleep(0.1)
"""


@integration
def test_source_lines_only_from_files_the_target_itself_can_read(make_user, tmp_path, needs_gdb):
    # Given a target (a fresh user) whose frames name: root's /etc/shadow, a
    # FIFO, /dev/zero, a symlink to /etc/shadow, a `..` escape, and its own file
    python = _system_python()
    uid = make_user()
    home = tmp_path / "home"
    home.mkdir()
    os.chmod(tmp_path, 0o755)
    fifo = home / "fifo"
    os.mkfifo(fifo)
    own = home / "own.py"
    own.write_text("def f():\n    pass  # OWN-LINE-VISIBLE\n")
    link = home / "link"
    link.symlink_to("/etc/shadow")
    for path in (home, fifo, own):
        os.lchown(path, uid, uid)
    os.lchown(link, uid, uid)
    names = ["/etc/shadow", str(fifo), "/dev/zero", str(link), "../../../../etc/shadow",
             str(own)]
    target = TargetProcess(python, ["-c", _PARK_FILES, *names], user=uid, cwd=str(home))
    # A writer waits for the FIFO to be opened for reading: it must never be
    writer_done: list[bool] = []
    writer = threading.Thread(target=lambda: (os.close(os.open(fifo, os.O_WRONLY)),
                                              writer_done.append(True)), daemon=True)
    writer.start()
    try:
        # When root asks for the stacks (text and JSON)
        start = time.monotonic()
        out = run_cli("stack", str(target.pid), timeout=60)
        doc = run_cli("stack", str(target.pid), "--json", timeout=60)
        took = time.monotonic() - start
        # Then it did not hang, and shows the target's own file only
        assert out.returncode == 0 and doc.returncode == 0, out.stderr + doc.stderr
        assert took < 40
        assert "OWN-LINE-VISIBLE" in out.stdout and "OWN-LINE-VISIBLE" in doc.stdout
        with open("/etc/shadow") as f:
            shadow = f.read().splitlines()[0]
        for text in (out.stdout, doc.stdout):
            assert shadow not in text and "root:" not in text
        assert doc.stdout.isascii()
        # And the FIFO was never opened for reading
        time.sleep(0.2)
        assert writer_done == []
        assert target.alive() and target.stderr_text() == ""
    finally:
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        writer.join(5)
        target.kill()


def _chroot_with_tmp_symlink(root: Path, victim: Path) -> None:
    """A tiny root file system whose /tmp is a symlink to a host directory."""
    for name in ("usr", "proc", "etc"):
        (root / name).mkdir(parents=True)
    for name in ("lib", "lib64", "bin", "sbin"):
        (root / name).symlink_to("usr/" + name)
    (root / "tmp").symlink_to(str(victim))


@integration
def test_a_container_tmp_symlink_cannot_make_root_write_outside(make_user, tmp_path,
                                                                 needs_gdb):
    # Given a target in its own mount namespace and root directory, run by a
    # fresh user, whose /tmp is a symlink to a host directory
    python = _system_python()
    uid = make_user()
    os.chmod(tmp_path, 0o755)
    victim = tmp_path / "victim"
    victim.mkdir()
    root = tmp_path / "rootfs"
    _chroot_with_tmp_symlink(root, victim)
    script = ("import sys, time; sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
              "while True: time.sleep(0.1)\n")
    shell = ("mount --bind /usr %s/usr && exec chroot --userspec=%d:%d %s %s -c %s"
             % (root, uid, uid, root, python, shlex.quote(script)))
    target = TargetProcess("/usr/bin/unshare", ["-m", "--propagation", "private", "sh", "-c",
                                                shell])
    try:
        with open("/proc/%d/status" % target.pid) as f:
            assert "Uid:\t%d" % uid in f.read()
        assert os.stat("/proc/self/ns/mnt").st_ino != os.stat(
            "/proc/%d/ns/mnt" % target.pid).st_ino
        before = os.stat(victim)
        # When root inspects it, one-shot and resident
        for args in (["stack", str(target.pid)], ["attach", str(target.pid), "--keep"]):
            out = run_cli(*args)
            # Then it is refused, naming the symlink, in one line
            assert out.returncode == 5, out.stdout + out.stderr
            assert "/tmp of process %d" % target.pid in out.stderr
            assert "symlink" in out.stderr and len(out.stderr.strip().splitlines()) == 1
        # And nothing was created or chowned in the host directory
        assert os.listdir(victim) == []
        after = os.stat(victim)
        assert (after.st_uid, after.st_mode, after.st_mtime) == (before.st_uid, before.st_mode,
                                                                 before.st_mtime)
        assert target.alive() and target.stderr_text() == ""
    finally:
        target.kill()


def _host_tmp_entries_of(uid: int) -> list[str]:
    out = []
    for name in os.listdir("/tmp"):
        with contextlib.suppress(OSError):
            if os.lstat(os.path.join("/tmp", name)).st_uid == uid:
                out.append(name)
    return out


@integration
def test_a_target_with_a_private_tmp_is_inspected_there(make_user, needs_gdb):
    # Given a target (a fresh user) in its own mount namespace with its own
    # /tmp (as systemd PrivateTmp= or `unshare -m` + tmpfs make it)
    python = _system_python()
    uid = make_user()
    script = ("import sys, time\norders = list(range(10))\n"
              "sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
              "while True: time.sleep(0.1)\n")
    shell = ("mount -t tmpfs -o mode=1777 tmpfs /tmp && exec setpriv --reuid %d --regid %d "
             "--clear-groups %s -c %s" % (uid, uid, python, shlex.quote(script)))
    target = TargetProcess("/usr/bin/unshare", ["-m", "--propagation", "private", "sh", "-c",
                                                shell])
    inner_tmp = "/proc/%d/root/tmp" % target.pid
    try:
        baseline = len(os.listdir("/proc/%d/task" % target.pid))
        # When root asks one-shot, then leaves a resident agent and uses it
        out = run_cli("eval", str(target.pid), "len(orders)")
        assert out.returncode == 0 and out.stdout.strip() == "10", out.stderr
        assert os.listdir(inner_tmp) == []  # the one-shot left nothing in its /tmp
        out = run_cli("attach", str(target.pid), "--keep", "--idle-timeout", "60")
        assert out.returncode == 0, out.stderr
        assert "/tmp/inspector-%d/" % uid in out.stdout
        out = run_cli("eval", str(target.pid), "orders[3]")
        assert out.returncode == 0 and out.stdout.strip() == "3", out.stderr
        assert run_cli("detach", str(target.pid)).returncode == 0
        # Then its state lived in the target's /tmp: 0700, the target's user
        state = os.lstat(os.path.join(inner_tmp, "inspector-%d" % uid))
        assert (state.st_uid, stat.S_IMODE(state.st_mode)) == (uid, 0o700)
        deadline = time.monotonic() + 10
        while os.listdir(os.path.join(inner_tmp, "inspector-%d" % uid)) and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.listdir(os.path.join(inner_tmp, "inspector-%d" % uid)) == []
        # And nothing of it appeared in the host's /tmp
        assert _host_tmp_entries_of(uid) == []
        deadline = time.monotonic() + 10
        while len(os.listdir("/proc/%d/task" % target.pid)) != baseline and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(os.listdir("/proc/%d/task" % target.pid)) == baseline
        assert target.alive() and target.stderr_text() == ""
    finally:
        target.kill()


@integration
def test_an_unread_boot_file_is_named_at_the_timeout(make_user, tmp_path, needs_gdb):
    # Given a target in its own mount namespace that cannot reach the client's
    # TMPDIR... simulated: TMPDIR is a directory the target's user cannot enter
    python = _system_python()
    uid = make_user()
    private = tmp_path / "closed"
    private.mkdir(mode=0o700)
    target = TargetProcess(python, ["-c", "import sys, time; sys.stdout.write('ready\\n'); "
                                          "sys.stdout.flush()\nwhile True: time.sleep(0.1)"],
                           user=uid)
    try:
        out = run_cli("stack", str(target.pid), "--timeout", "3",
                      env={"TMPDIR": str(private)})
        assert out.returncode == 5
        assert "boot file" in out.stderr and "still unread" in out.stderr
        assert os.listdir(private) == []  # and it was removed
        assert target.alive() and target.stderr_text() == ""
    finally:
        target.kill()


_SLEEPER = ("import sys, time\norders = list(range(10))\nsys.stdout.write('ready\\n'); "
            "sys.stdout.flush()\nwhile True: time.sleep(0.1)\n")


def _resident_dir(uid: int) -> str:
    return "/run/inspector/uid-%d" % uid


@integration
def test_the_targets_owner_cannot_redirect_roots_resident_files(make_user, tmp_path,
                                                                needs_gdb):
    # Given a target run by a fresh user, and root's resident state for it
    python = _system_python()
    uid = make_user()
    os.chmod(tmp_path, 0o755)
    victim_dir = tmp_path / "victim"
    victim_dir.mkdir()
    victim = tmp_path / "victim-file"
    victim.write_text("untouched\n")
    target = TargetProcess(python, ["-c", _SLEEPER], user=uid)
    try:
        assert run_cli("attach", str(target.pid), "--keep", "--idle-timeout", "60").returncode \
            == 0
        assert run_cli("detach", str(target.pid)).returncode == 0
        state = _resident_dir(uid)
        parent = os.lstat("/run/inspector")
        assert parent.st_uid == 0 and not parent.st_mode & 0o022
        # When the target's owner plants symlinks for the key and socket names
        # (to a file and a directory of root's), over and over
        with open("/proc/%d/stat" % target.pid) as f:
            start = f.read().rsplit(")", 1)[1].split()[19]
        base = "agent-%d-%s" % (target.pid, start)

        def plant() -> dict:
            end = time.monotonic() + 6
            n = 0
            while time.monotonic() < end:
                for name, dest in ((base + ".key", str(victim)),
                                   (base + ".sock", str(victim_dir / "x"))):
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(state, name))
                    with contextlib.suppress(OSError):
                        os.symlink(dest, os.path.join(state, name))
                        n += 1
            return {"planted": n}

        results: list[Any] = []
        attacker = threading.Thread(target=lambda: results.append(as_user(uid, plant)))
        attacker.start()
        outcomes = []
        while attacker.is_alive():
            out = run_cli("attach", str(target.pid), "--keep", "--idle-timeout", "60")
            outcomes.append((out.returncode, out.stderr.strip()))
            run_cli("detach", str(target.pid))
        attacker.join()
        assert results and results[0]["planted"] > 0
        # Then root never followed them: the file and directory are untouched
        assert victim.read_text() == "untouched\n" and os.stat(victim).st_uid == 0
        assert os.listdir(victim_dir) == []
        # And every attempt either worked or was refused in one line (no traceback)
        for code, err in outcomes:
            assert code in (0, 5), err
            assert "Traceback" not in err and len(err.splitlines()) <= 1
        assert target.alive() and target.stderr_text() == ""
    finally:
        target.kill()


@integration
def test_a_bystander_cannot_hang_or_block_root(make_user, needs_gdb):
    # Given another user's target, and a bystander who squats its legacy
    # /tmp/inspector-<uid> with an empty ".sock" and a FIFO ".key"
    python = _system_python()
    uid, bystander = make_user(), make_user()
    target = TargetProcess(python, ["-c", _SLEEPER], user=uid)
    with open("/proc/%d/stat" % target.pid) as f:
        start = f.read().rsplit(")", 1)[1].split()[19]
    base = "agent-%d-%s" % (target.pid, start)
    squat = "/tmp/inspector-%d" % uid

    def squat_it() -> dict:
        os.mkdir(squat, 0o711)
        os.chmod(squat, 0o711)
        open(os.path.join(squat, base + ".sock"), "w").close()
        os.mkfifo(os.path.join(squat, base + ".key"), 0o600)
        return {"ok": True}

    try:
        assert as_user(bystander, squat_it) == {"ok": True}
        # When root inspects the target, one-shot and resident
        out = run_cli("stack", str(target.pid), timeout=60)
        assert out.returncode == 0, out.stderr
        keep = run_cli("attach", str(target.pid), "--keep", "--idle-timeout", "60", timeout=60)
        assert keep.returncode == 0, keep.stderr
        assert _resident_dir(uid) in keep.stdout
        out = run_cli("eval", str(target.pid), "len(orders)", timeout=60)
        assert out.returncode == 0 and out.stdout.strip() == "10", out.stderr
        assert run_cli("detach", str(target.pid), timeout=60).returncode == 0
        # Then nothing hung, and the bystander's files are as they were
        assert stat.S_ISFIFO(os.lstat(os.path.join(squat, base + ".key")).st_mode)
        assert os.lstat(squat).st_uid == bystander
        assert target.alive() and target.stderr_text() == ""
    finally:
        target.kill()
        shutil.rmtree(squat, ignore_errors=True)


@integration
def test_where_a_resident_agent_lives_does_not_depend_on_tmpdir(edge_python, spawn, tmp_path):
    # Given a resident agent started with some TMPDIR
    target = spawn(edge_python, "sleep")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    baseline = len(os.listdir("/proc/%d/task" % target.pid))
    out = run_cli("attach", str(target.pid), "--keep", "--idle-timeout", "60",
                  env={"TMPDIR": str(elsewhere)})
    assert out.returncode == 0, out.stderr
    try:
        # When plain commands run with another TMPDIR
        again = run_cli("attach", str(target.pid), "--keep")
        # Then they find it: reused, not a second agent
        assert again.returncode == 0 and "reused the resident agent" in again.stdout
        assert len(os.listdir("/proc/%d/task" % target.pid)) == baseline + 1
    finally:
        assert run_cli("detach", str(target.pid)).returncode == 0
    assert os.listdir(elsewhere) == []


@integration
@needs_root
def test_a_second_resident_agent_is_never_injected(make_user, needs_gdb):
    # Given root's resident agent in a fresh user's target
    python = _system_python()
    uid = make_user()
    target = TargetProcess(python, ["-c", _SLEEPER], user=uid)
    try:
        assert run_cli("attach", str(target.pid), "--keep", "--idle-timeout", "60").returncode \
            == 0
        threads = len(os.listdir("/proc/%d/task" % target.pid))

        # When the target's own user asks for a resident agent too
        def keep_as_user() -> dict:
            try:
                inspector.attach(target.pid, keep=True).detach()
            except inspector.AttachError as e:
                return {"refused": e.message}
            return {"refused": None}

        got = as_user(uid, keep_as_user)
        # Then it is refused, saying why, and no agent was added
        assert got["refused"] and "already has a resident agent" in got["refused"]
        assert len(os.listdir("/proc/%d/task" % target.pid)) == threads
    finally:
        run_cli("detach", str(target.pid))
        target.kill()


# -- replies: one deadline, one size cap (issue 14 item 6) ---------------------------


def test_a_slow_drip_is_cut_off_at_the_deadline():
    from inspector._channel import Connection
    from inspector.errors import ProtocolError, TargetLost

    ours, theirs = socket.socketpair()
    stop = threading.Event()

    def drip() -> None:
        theirs.recv(65536)  # the request
        frame = wire.encode_frame({"id": 1, "ok": True, "value": "x" * 100})
        for byte in frame:
            if stop.wait(0.2):
                return
            with contextlib.suppress(OSError):
                theirs.send(bytes([byte]))

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    conn = Connection(ours, {})
    start = time.monotonic()
    with pytest.raises(TargetLost, match="did not answer within 1.0 s"):
        conn.call("ping", timeout=1.0)
    assert time.monotonic() - start < 1.8  # one deadline, not 1 s per byte
    stop.set()
    dripper.join(5)
    theirs.close()
    # And a reply announced above 32 MB is refused before it is read
    ours, theirs = socket.socketpair()
    theirs.sendall((33 * 1024 * 1024).to_bytes(4, "big"))
    conn = Connection(ours, {})
    with pytest.raises(ProtocolError, match="exceeds"):
        conn.call("ping", timeout=5.0)
    theirs.close()


# -- text from the target on the operator's terminal (issue 14 item 5) -----------------

_ESCAPES_TARGET = """\
# x\u2028y\x85z
import sys, threading, time
EVIL = "\\x1b]0;pwned\\x07\\x1b[2J\\x1b[Hfake\\x9b31m\\x85\\u2028\\u202eevil"
threading.Thread(target=lambda: time.sleep(3600), name=EVIL, daemon=True).start()
data = {EVIL: EVIL}
exec(compile("def g():\\n    time.sleep(3600)  # \\x1b[2J" + "\\n", "evil.py", "exec"))
sys.stdout.write("ready\\n"); sys.stdout.flush()
while True:
    time.sleep(0.1)
"""

_UNSAFE_TEXT = ("\x1b", "\x07", "\x9b", "\x85", "\u2028", "\u202e")


@integration
def test_target_text_reaches_the_terminal_escaped(edge_python, needs_gdb, tmp_path):
    # Given a target whose thread name, dict keys and values carry terminal
    # control sequences, started with a command line that holds line breaks
    target = TargetProcess(edge_python, ["-c", _ESCAPES_TARGET])
    audit = tmp_path / "audit.jsonl"
    env = {"INSPECTOR_AUDIT_LOG": str(audit)}
    try:
        # When root looks at stacks, threads and the value (text and --json)
        outs = [run_cli("stack", str(target.pid), env=env),
                run_cli("eval", str(target.pid), "data", env=env),
                run_cli("eval", str(target.pid), "data", "--json", env=env),
                run_cli("stack", str(target.pid), "--json", env=env)]
        for out in outs:
            assert out.returncode == 0, out.stderr
            # Then no control character reached the terminal
            for bad in _UNSAFE_TEXT:
                assert bad not in out.stdout and bad not in out.stderr
        assert "\\x1b]0;pwned" in outs[0].stdout and "\\x1b]0;pwned" in outs[1].stdout
        assert outs[2].stdout.isascii() and outs[3].stdout.isascii()
        # And the audit log has exactly one line per record, ASCII only
        text = audit.read_text("utf-8")
        assert text.isascii()
        records = [json.loads(line) for line in text.splitlines()]
        assert len(records) == len(outs)  # one record per command, one line each
        assert all("# x\u2028y\x85z\nimport" in r["target_command"] for r in records)
        assert target.alive() and target.stderr_text() == ""
    finally:
        target.kill()
