"""Finding, starting and reaching resident agents (``attach --keep``).

Per target user, one private directory ``<tmp>/inspector-<uid>/`` (0700,
owned by that user; created by us, refused if it exists with another owner,
other permissions, or as a symlink). Per target process, in it:
``agent-<pid>-<start>.sock`` (the agent listens there) and
``agent-<pid>-<start>.key`` (0600, the key a client must present). ``<start>``
is the process start time from /proc, so a recycled pid never matches.
"""

from __future__ import annotations

import contextlib
import glob
import os
import socket
import stat
from dataclasses import dataclass

from payloads import wire

from ._channel import Connection, _tmp_dirs, peer_credentials, read_frame
from .errors import AttachError, TargetLost


@dataclass(frozen=True)
class ResidentSpec:
    pid: int
    host_socket: str  # as we reach it
    host_key: str
    target_socket: str  # as the target sees it
    target_key: str


def _start_ticks(pid: int) -> int:
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        raise TargetLost("process %d is gone" % pid) from None


def spec_for(pid: int, target_uid: int) -> ResidentSpec:
    host_base, target_base = _tmp_dirs(pid)
    dirname = "inspector-%d" % target_uid
    name = "agent-%d-%d" % (pid, _start_ticks(pid))
    host_dir = os.path.join(host_base, dirname)
    target_dir = os.path.join(target_base, dirname)
    return ResidentSpec(pid, os.path.join(host_dir, name + ".sock"),
                        os.path.join(host_dir, name + ".key"),
                        os.path.join(target_dir, name + ".sock"),
                        os.path.join(target_dir, name + ".key"))


def _ensure_private_dir(path: str, uid: int) -> None:
    try:
        os.mkdir(path, 0o700)
        if os.geteuid() == 0 and uid != 0:
            os.lchown(path, uid, -1)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o077:
        raise AttachError("refusing to use %s: it must be a directory owned by uid %d with mode "
                          "0700 (someone else may have created it); remove it and retry"
                          % (path, uid))


def prepare(pid: int, target_uid: int) -> tuple[ResidentSpec, str]:
    """Create the directory and a fresh key file; return the spec and the key."""
    spec = spec_for(pid, target_uid)
    _ensure_private_dir(os.path.dirname(spec.host_socket), target_uid)
    for stale in (spec.host_socket, spec.host_key):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(stale)
    key = os.urandom(32).hex()  # what secrets.token_hex does, minus its imports
    fd = os.open(spec.host_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    try:
        os.write(fd, key.encode())
    finally:
        os.close(fd)
    if os.geteuid() == 0 and target_uid != 0:
        os.lchown(spec.host_key, target_uid, -1)
    return spec, key


def boot_spec(spec: ResidentSpec, key: str) -> dict[str, str]:
    """What the agent gets in its boot file."""
    return {"path": spec.target_socket, "key_path": spec.target_key, "key": key}


def find(pid: int, target_uid: int) -> ResidentSpec | None:
    try:
        spec = spec_for(pid, target_uid)
    except TargetLost:
        return None
    return spec if os.path.exists(spec.host_socket) else None


def _read_key(spec: ResidentSpec) -> str:
    try:
        fd = os.open(spec.host_key, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except PermissionError:
        raise AttachError("cannot read the resident agent's key %s: run as the target's user "
                          "or root" % spec.host_key) from None
    try:
        st = os.fstat(fd)
        if st.st_mode & 0o077:
            raise AttachError("the resident agent's key file %s is readable by others; "
                              "refusing it" % spec.host_key)
        return os.read(fd, 256).decode("ascii", "replace").strip()
    finally:
        os.close(fd)


def connect(spec: ResidentSpec, timeout: float = 5.0) -> Connection:
    """Reach a resident agent and authenticate both ways; raise if it is not there."""
    key = _read_key(spec)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(spec.host_socket)
        cred = peer_credentials(sock)
        if cred.pid != spec.pid:
            raise AttachError("the socket %s is not served by process %d (peer pid %d); "
                              "remove it" % (spec.host_socket, spec.pid, cred.pid))
        sock.sendall(wire.encode_frame({"kind": "hello", "proto": wire.PROTOCOL_VERSION,
                                        "key": key}))
        hello = read_frame(sock, limit=64 * 1024)
    except (ConnectionRefusedError, FileNotFoundError):
        sock.close()
        remove_stale(spec)
        raise AttachError("no resident agent answers in process %d (stale socket removed)"
                          % spec.pid) from None
    except (OSError, EOFError, wire.ProtocolError) as e:
        sock.close()
        raise AttachError("the resident agent of process %d did not accept us: %s"
                          % (spec.pid, e or "connection closed")) from None
    if hello.get("kind") != "hello" or hello.get("proto") != wire.PROTOCOL_VERSION:
        sock.close()
        raise AttachError("the resident agent of process %d speaks another protocol" % spec.pid)
    return Connection(sock, hello)


def remove_stale(spec: ResidentSpec) -> None:
    for path in (spec.host_socket, spec.host_key):
        with contextlib.suppress(OSError):
            os.unlink(path)


def resident_pids() -> set[int]:
    """Pids that have a live-looking resident agent socket (for `inspector ps`)."""
    out = set()
    for path in glob.glob("/tmp/inspector-*/agent-*-*.sock"):
        name = os.path.basename(path)[len("agent-"):-len(".sock")]
        try:
            pid_text, start_text = name.split("-")
            pid, start = int(pid_text), int(start_text)
            if _start_ticks(pid) == start:
                out.add(pid)
        except (ValueError, TargetLost, OSError):
            continue
    return out
