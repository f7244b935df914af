"""Finding, starting and reaching resident agents (``attach --keep``).

Where the state lives (never the client's TMPDIR, so every client agrees):

- root, target in our mount namespace: ``/run/inspector/`` (root's, 0711)
  holding ``uid-<target uid>/`` (0700, the target's user: its agent binds its
  socket there). Nobody but root can create, swap or squat anything on the
  way;
- anyone else, same namespace: ``/run/user/<uid>/inspector/`` when that
  runtime directory exists and is private, else ``/tmp/inspector-<uid>/``;
- a target in another mount namespace (a container, PrivateTmp): its own
  ``/tmp/inspector-<uid>/``, reached with openat2(RESOLVE_IN_ROOT |
  RESOLVE_NO_SYMLINKS) under ``/proc/PID/root``.

Root also *reads* (finds, connects to, stops) agents in the target user's own
location. Every step is relative to a directory fd opened with O_NOFOLLOW and
checked (a directory owned by the expected uid, mode 0700); files are opened
O_NOFOLLOW | O_NONBLOCK and must be regular, small and owned right, so a
symlink, a FIFO or a squatted directory made by someone else is refused
rather than followed, read or waited on.

Per target process, in that directory: ``agent-<pid>-<start>.key`` (0600, the
key a client must present) and ``agent-<pid>-<start>.sock`` (the agent listens
there). ``<start>`` is the process start time, so a recycled pid never
matches. Claiming residency is atomic: the key file is created O_EXCL and
flock()ed until the agent listens; a second client finds the key and either
reaches the live agent, or waits its turn, and never removes the winner's
files.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import socket
import stat
import time

from payloads import wire

from . import _fs
from ._channel import Connection, open_temp_base, peer_credentials, read_frame
from ._diagnose import process_start
from ._record import NamedTuple, mutable_record
from .errors import AttachError, TargetLost

RUN_BASE = "/run/inspector"
RESIDENT_THREAD_NAME = "inspector-resid"  # payloads/resident.py names its thread so
KEY_BYTES = 256


class Location(NamedTuple):
    """A state directory: how to open its parent, its name, who owns it."""

    base: str  # the parent as we reach it ("" for the target's /tmp in its namespace)
    dirname: str
    owner: int  # the uid that must own the directory
    inner: str  # the directory as the target sees it
    shown: str  # the directory as we show (and, same namespace, reach) it

    def open_base(self, pid: int, create: bool) -> int:
        if not self.base:
            tmp = open_temp_base(pid)
            return tmp.fd
        made = False
        if self.base == RUN_BASE and create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(RUN_BASE, 0o711)
                made = True
        fd = _fs.open_dir(self.base)
        if self.base == RUN_BASE:
            st = os.fstat(fd)
            if st.st_uid != 0 or st.st_mode & 0o022:
                os.close(fd)
                raise _fs.UnsafePath(errno.EPERM, "not root's or writable by others", RUN_BASE)
            if made:
                os.fchmod(fd, 0o711)  # whatever the umask: agents must reach uid-N/
        return fd

    def open(self, pid: int, create: bool = False) -> int:
        """The state directory's fd, checked; OSError if absent or unsafe."""
        base = self.open_base(pid, create)
        try:
            made = False
            if create:
                try:
                    os.mkdir(self.dirname, 0o700, dir_fd=base)
                    made = True
                except FileExistsError:
                    pass
            fd = os.open(self.dirname, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                         | os.O_CLOEXEC, dir_fd=base)
        finally:
            os.close(base)
        try:
            st = os.fstat(fd)
            if made and st.st_uid == os.geteuid() != self.owner and os.geteuid() == 0:
                os.fchown(fd, self.owner, -1)
            _fs.check_private_dir(fd, self.owner, self.shown)
        except OSError:
            os.close(fd)
            raise
        return fd


class ResidentSpec(NamedTuple):
    pid: int
    location: Location
    name: str  # agent-<pid>-<start>

    @property
    def sock_name(self) -> str:
        return self.name + ".sock"

    @property
    def key_name(self) -> str:
        return self.name + ".key"

    @property
    def host_socket(self) -> str:  # for messages (and, same namespace, the real path)
        return os.path.join(self.location.shown, self.sock_name)

    @property
    def host_key(self) -> str:
        return os.path.join(self.location.shown, self.key_name)

    @property
    def target_socket(self) -> str:  # as the target sees it
        return os.path.join(self.location.inner, self.sock_name)

    @property
    def target_key(self) -> str:
        return os.path.join(self.location.inner, self.key_name)


def _start_ticks(pid: int) -> int:
    ticks = process_start(pid)
    if ticks is None:
        raise TargetLost("process %d is gone" % pid)
    return ticks


def _user_location(uid: int) -> Location:
    """A user's own place: its private runtime directory, else /tmp."""
    run = "/run/user/%d" % uid
    try:
        st = os.lstat(run)
        if stat.S_ISDIR(st.st_mode) and st.st_uid == uid and not st.st_mode & 0o077:
            return Location(run, "inspector", uid, run + "/inspector", run + "/inspector")
    except OSError:
        pass
    name = "inspector-%d" % uid
    return Location("/tmp", name, uid, "/tmp/" + name, "/tmp/" + name)


def locations(pid: int, target_uid: int) -> list[Location]:
    """Where a resident agent of `pid` may be: the first is where this client
    makes one; root also looks in the target user's own place."""
    if not _fs.same_mount_namespace(pid):
        name = "inspector-%d" % target_uid
        return [Location("", name, target_uid, "/tmp/" + name,
                         "/proc/%d/root/tmp/%s" % (pid, name))]
    if os.geteuid() == 0:
        name = "uid-%d" % target_uid
        return [Location(RUN_BASE, name, target_uid, RUN_BASE + "/" + name,
                         RUN_BASE + "/" + name), _user_location(target_uid)]
    return [_user_location(target_uid)]


def spec_for(pid: int, target_uid: int) -> ResidentSpec:
    return ResidentSpec(pid, locations(pid, target_uid)[0],
                        "agent-%d-%d" % (pid, _start_ticks(pid)))


def _is_socket(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def find(pid: int, target_uid: int) -> ResidentSpec | None:
    """The spec of a resident agent whose socket exists, in a safe place."""
    try:
        name = "agent-%d-%d" % (pid, _start_ticks(pid))
        places = locations(pid, target_uid)
    except (TargetLost, AttachError):
        return None
    for location in places:
        try:
            fd = location.open(pid)
        except OSError:
            continue
        try:
            if _is_socket(fd, name + ".sock"):
                return ResidentSpec(pid, location, name)
        finally:
            os.close(fd)
    return None


def live_resident(pid: int) -> bool:
    """Does `pid` run a resident agent (its serving thread, by name)?
    Seen from /proc, whoever started it and wherever its files are."""
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return False
    for tid in tasks:
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid), "rb") as f:
                if f.read(32).strip() == RESIDENT_THREAD_NAME.encode():
                    return True
        except OSError:
            continue
    return False


@mutable_record
class Claim:
    """The right to make `spec.pid` resident: its key file, created O_EXCL
    and flock()ed for as long as the attach runs."""

    spec: ResidentSpec
    key: str
    lock_fd: int

    def boot_spec(self) -> dict[str, str]:
        """What the agent gets in its boot file."""
        return {"path": self.spec.target_socket, "key_path": self.spec.target_key,
                "key": self.key}

    def release(self) -> None:
        """The agent listens: its files are its own now; let others in."""
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1

    def abort(self) -> None:
        """The attach failed: remove our key (only if it is still ours)."""
        if self.lock_fd < 0:
            return
        try:
            fd = self.spec.location.open(self.spec.pid)
        except OSError:
            fd = -1
        try:
            if fd >= 0:
                mine = os.fstat(self.lock_fd)
                with contextlib.suppress(OSError):
                    now = os.stat(self.spec.key_name, dir_fd=fd, follow_symlinks=False)
                    if (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
                        _fs.unlink_in(fd, self.spec.key_name)
                        _fs.unlink_in(fd, self.spec.sock_name)
        finally:
            if fd >= 0:
                os.close(fd)
            self.release()


class ResidentBusy(AttachError):
    """Another client is making the process resident right now."""


def claim(pid: int, target_uid: int) -> Claim | Connection:
    """Claim residency of `pid`, or connect to the agent another client made.

    Atomic: the key file is created with O_EXCL. If it exists, either its
    agent answers (we use it), or the client that made it still holds its
    flock (ResidentBusy: it is attaching), or it is stale (its client died
    before the agent listened) and we take it over once."""
    spec = spec_for(pid, target_uid)
    for _ in range(2):
        try:
            fd = spec.location.open(pid, create=True)
        except OSError as e:
            raise AttachError("refusing to keep an agent's files in %s: %s; remove it (it must "
                              "be a directory owned by uid %d with mode 0700) and retry"
                              % (spec.location.shown, e.strerror or e, spec.location.owner)) \
                from None
        try:
            _sweep_dead(fd)
            made = _create_key(fd, spec)
            if made is not None:
                return made
            try:
                return connect(spec, timeout=2.0)
            except AttachError:
                pass
            if _key_locked(fd, spec):
                raise ResidentBusy("another client is making process %d resident right now; "
                                   "retry in a moment" % pid)
            if live_resident(pid):
                raise AttachError("process %d already has a resident agent but it does not "
                                  "answer at %s; stop it with `inspector detach %d` as the user "
                                  "who started it, or wait for its idle timeout"
                                  % (pid, spec.host_socket, pid))
            _fs.unlink_in(fd, spec.key_name)  # stale: its client died before the agent listened
            _fs.unlink_in(fd, spec.sock_name)
        finally:
            os.close(fd)
    raise ResidentBusy("another client is making process %d resident right now; retry in a "
                       "moment" % pid)


_AGENT_FILE = re.compile(r"^agent-(\d+)-(\d+)\.(sock|key)$")


def _sweep_dead(dir_fd: int) -> None:
    """Remove the files of agents whose process is gone (a target killed while
    resident leaves them). Only our names, unlinked relative to the fd."""
    try:
        names = os.listdir(dir_fd)
    except OSError:
        return
    for name in names:
        match = _AGENT_FILE.match(name)
        if match is None:
            continue
        try:
            alive = _start_ticks(int(match.group(1))) == int(match.group(2))
        except TargetLost:
            alive = False
        if not alive:
            with contextlib.suppress(OSError):
                _fs.unlink_in(dir_fd, name)


def _create_key(dir_fd: int, spec: ResidentSpec) -> Claim | None:
    key = os.urandom(32).hex()  # what secrets.token_hex does, minus its imports
    try:
        fd = os.open(spec.key_name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    except FileExistsError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fresh file: nobody else has it
        os.write(fd, key.encode())
        if os.geteuid() == 0 and spec.location.owner != 0:
            os.fchown(fd, spec.location.owner, -1)
        _fs.unlink_in(dir_fd, spec.sock_name)  # a stale socket of a dead agent
    except BaseException:
        os.close(fd)
        _fs.unlink_in(dir_fd, spec.key_name)
        raise
    return Claim(spec, key, fd)


def _key_locked(dir_fd: int, spec: ResidentSpec) -> bool:
    """Does a client hold the key file's lock (it is attaching right now)?"""
    try:
        fd = os.open(spec.key_name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=dir_fd)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def _read_key(dir_fd: int, spec: ResidentSpec) -> str:
    owners = (spec.location.owner, 0)
    try:
        data = _fs.read_small_file(dir_fd, spec.key_name, KEY_BYTES, owners)
    except PermissionError:
        raise AttachError("cannot read the resident agent's key %s: run as the target's user "
                          "or root" % spec.host_key) from None
    except OSError as e:
        raise AttachError("refusing the resident agent's key file %s: %s"
                          % (spec.host_key, e.strerror or e)) from None
    return data.decode("ascii", "replace").strip()


def connect(spec: ResidentSpec, timeout: float = 5.0) -> Connection:
    """Reach a resident agent and authenticate both ways; raise if it is not there."""
    try:
        dir_fd = spec.location.open(spec.pid)
    except OSError as e:
        raise AttachError("refusing the resident agent directory %s: %s"
                          % (spec.location.shown, e.strerror or e)) from None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if not _is_socket(dir_fd, spec.sock_name):
            raise FileNotFoundError
        key = _read_key(dir_fd, spec)
        sock.settimeout(timeout)
        sock.connect(_fs.fd_path(dir_fd, spec.sock_name))
        cred = peer_credentials(sock)
        if cred.pid != spec.pid:
            raise AttachError("the socket %s is not served by process %d (peer pid %d); "
                              "remove it" % (spec.host_socket, spec.pid, cred.pid))
        sock.sendall(wire.encode_frame({"kind": "hello", "proto": wire.PROTOCOL_VERSION,
                                        "key": key}))
        hello = read_frame(sock, time.monotonic() + timeout, limit=64 * 1024)
    except (ConnectionRefusedError, FileNotFoundError):
        sock.close()
        raise AttachError("no resident agent answers in process %d" % spec.pid) from None
    except AttachError:
        sock.close()
        raise
    except (OSError, EOFError, wire.ProtocolError) as e:
        sock.close()
        raise AttachError("the resident agent of process %d did not accept us: %s"
                          % (spec.pid, str(e) or "it closed the connection")) from None
    finally:
        os.close(dir_fd)
    if hello.get("kind") != "hello" or hello.get("proto") != wire.PROTOCOL_VERSION:
        sock.close()
        raise AttachError("the resident agent of process %d speaks another protocol" % spec.pid)
    return Connection(sock, hello)


def resident_pids() -> set[int]:
    """Pids that run a resident agent (for `inspector ps`)."""
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and live_resident(int(entry)):
            out.add(int(entry))
    return out
