"""Render what the injectors put into the target.

Stage 1 is the only text that runs at the injection point. It is one
exception-proof expression statement: it binds no name in ``__main__`` and
prints nothing. The native and gdb injectors run it on a native thread of
their own (see `_inject.stub_x86_64`): there it runs ``go`` itself, for the
agent's whole life, and never touches the target's ``_thread`` module (gevent
replaces it). pyrasite runs it on a target thread: there it starts one thread
with ``_thread`` and returns. ``go`` checks the deadline, reads and deletes
the 0600 boot file and executes it: the boot file is ``payloads/prelude.py``
(which recovers the target's original builtins) followed by a call that runs
``payloads/loader.py`` with them, carrying the token, the socket path and
every payload source.

A stage 1 that fires late (a pending call the client gave up on) finds the
deadline passed, or the boot file gone, and does nothing.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import marshal
import os
from functools import cache
from types import CodeType

import payloads

from . import _bootcache
from ._record import NamedTuple

# Payload modules shipped to the target (payloads/<name>.py). The loader is
# not in this list: it is the boot file's body.
PAYLOAD_MODULES = (
    "errors", "limits", "wire", "policy", "static", "snapshot", "costs", "datasafety",
    "operators", "callables", "query_text", "query_tree", "evaluator", "frames",
    "cmodules", "gcguard",
    "census", "tasks", "greenlets", "isolate", "resident", "agent",
)
ALL_SOURCES = ("prelude", "loader", *PAYLOAD_MODULES)

# No builtin *name* is trusted here: a target may have rebound any of them
# (`builtins.__import__ = hook`, `builtins.compile = ...`). `_g` takes a
# builtin only if it is still CPython's own (a builtin function of the
# builtins module under its own name); imports go through the genuine
# __import__, else importlib's frozen one. A bare `except:` because
# `except BaseException` looks a builtin name up.
_STAGE1 = """\
try:
    B = __builtins__
    T = ().__class__.__class__
    D = B if T(B) is T({{}}) else B.__dict__
    def _g(name):
        v = D.get(name)
        if T(v) is T([].append) and v.__name__ == name and (B is D or v.__self__ is B):
            return v
        return None
    def _imp(name):
        real = _g("__import__")
        if real is not None:
            return real(name)
        for cls in T.__dict__["__subclasses__"](T.__mro__[-1]):
            attrs = T.__dict__["__dict__"].__get__(cls)
            if T.__dict__["__name__"].__get__(cls) == "BuiltinImporter" and \\
                    attrs.get("__module__") == "_frozen_importlib":
                return attrs["find_spec"].__func__.__globals__["__import__"](name)
    def go():
        try:
            posix, time = _imp("posix"), _imp("time")
            if time.monotonic() >= {deadline!r}:
                return
            M = T(posix)
            # CPython's own time.sleep (a builtin of that very module; gevent's
            # is not): a short sleep hands the GIL to a target thread that
            # waits for it, which this thread has held since it started.
            sl = M.__dict__["__dict__"].__get__(time).get("sleep") if T(time) is M else None
            if T(sl) is not T([].append) or sl.__self__ is not time or sl.__name__ != "sleep":
                sl = None
            if sl is not None:
                sl(0.00005)
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
            code, _sep, data = b"".join(chunks).partition({marker!r})
            del chunks  # this frame lives as long as the agent: keep nothing
            if sl is not None:
                sl(0.00005)
            m = _imp("marshal")
            loads = M.__dict__["__dict__"].__get__(m).get("loads") if T(m) is M else None
            if T(loads) is T([].append) and loads.__name__ == "loads":
                given, fixed, want, built = loads(data)
                given["stage1"] = {via!r}  # told in the hello
                if sl is not None:
                    sl(0.00005)
                # The sources stay marshal'ed: only a target that compiles
                # them unmarshals them (0.6-1.2 ms of GIL otherwise).
                data = {{"params": given, "fixed": fixed, "compiled": None}}
                del fixed
                # The code objects, if this interpreter reads that bytecode
                # (the same magic number); else our sources, compiled here.
                ext = _imp("_frozen_importlib_external")
                magic = M.__dict__["__dict__"].__get__(ext).get("MAGIC_NUMBER", 0) \\
                    if T(ext) is M else 0
                if built is not None and T(magic) is T(b"") and magic == want:
                    data["compiled"] = loads(built)
                    code = loads(data["compiled"]["prelude"])
            if T(code) is T(b""):
                comp = _g("compile")  # replaced: exec() compiles the bytes itself, in C
                if comp is not None:
                    code = comp(code, "<inspector-agent>", "exec", 0, True)
            ns = {{"__builtins__": B, "__name__": "_inspector_loader", "_BOOT_DATA": data}}
            del data
            _g("exec")(code, ns)
            ns["run_boot_data"]()
        except:  # noqa: E722
            pass
    {start}
except:  # noqa: E722
    pass
"""

# The outer statement: exec() the stage above in a fresh dict (nothing of ours
# is bound in __main__), with the genuine exec only: a replaced one is never
# called, and then nothing happens (the client reports the unread boot file).
_OUTER = ("(lambda B, T=().__class__.__class__: (lambda D: (lambda e: e(%r, {'__builtins__': "
          "B, '__name__': '_inspector_boot'}) if T(e) is T([].append) and e.__name__ == 'exec' "
          "and (B is D or e.__self__ is B) else None)(D.get('exec')))(B if T(B) is T({}) else "
          "B.__dict__))(__builtins__)\n")


class BootParams(NamedTuple):
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
    with open(os.path.join(_PAYLOADS_DIR, name + ".py"), encoding="utf-8") as f:
        return f.read()


def render_stage1(params: BootParams, *, own_thread: bool = False) -> str:
    """The statement run by PyRun_SimpleString in the target's __main__;
    `own_thread`: it runs on a thread the injector started for it."""
    start = "go()" if own_thread else '_imp("_thread").start_new_thread(go, ())'
    inner = _STAGE1.format(deadline=params.deadline, boot_path=params.boot_path, start=start,
                           marker=BOOT_DATA_MARKER, via="text")
    return _OUTER % inner


# Placeholders of the code-object template: constants no stage 1 contains.
_DEADLINE_MARK = -1.0000000000000002e-300
_PATH_MARK = "\0inspector-boot-path\0"
_INNER_MARK = "\0inspector-stage-1\0"


def _with_constants(code: CodeType, values: tuple[tuple[object, object], ...]) -> CodeType:
    """`code` with each constant equal to a key (same type) replaced by its
    value, in nested code objects too."""
    consts = []
    for const in code.co_consts:
        if type(const) is CodeType:
            const = _with_constants(const, values)
        else:
            for key, value in values:
                if type(const) is type(key) and const == key:
                    const = value
                    break
        consts.append(const)
    return code.replace(co_consts=tuple(consts))


def _compile_stage1_template() -> CodeType:
    inner = _STAGE1.format(deadline=_DEADLINE_MARK, boot_path=_PATH_MARK, start="go()",
                           marker=BOOT_DATA_MARKER, via="code")
    # exec() of the text compiles the inner statement under this same name
    inner_code = compile(inner, "<string>", "exec", dont_inherit=True)
    outer = compile(_OUTER % _INNER_MARK, "<string>", "exec", dont_inherit=True)
    return _with_constants(outer, ((_INNER_MARK, inner_code),))


def stage1_code(params: BootParams) -> bytes:
    """Stage 1 for an injector's own thread, as a marshal'ed code object of
    this interpreter: `render_stage1(params, own_thread=True)` with the
    inner statement compiled too. The native injector's routine runs it
    instead of the text - and so spares the target 1.5-2.5 ms of compiling
    with the GIL held - but only in a target of this very build (bytecode
    is valid only there)."""
    values = ((_DEADLINE_MARK, float(params.deadline)), (_PATH_MARK, params.boot_path))
    return marshal.dumps(_with_constants(_fixed_parts()[2], values))


_PAYLOADS_DIR = os.path.dirname(payloads.__file__)  # shipped in the wheel (test_packaging)
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


# Between the boot file's code and its data. The data (loader source,
# parameters, payload sources) is marshal'ed, not Python literals: compiling
# 350 KB of string literals held the target's GIL ~10 ms in one call, the
# largest pause an attach caused; marshal.loads takes well under 1 ms.
BOOT_DATA_MARKER = b"\n#--inspector-boot-data--\n"
MARSHAL_VERSION = 4  # read by every CPython >= 3.4 (plain str/int/float/dict/list)


class Bytecode(NamedTuple):
    """The payloads compiled for one bytecode version (magic number):
    `code` is the marshal'ed {"prelude": bytes, "loader": bytes, "modules":
    {name: bytes}}, each value a marshal'ed code object."""

    magic: bytes
    code: bytes
    compiler: str  # "client": this interpreter; else the interpreter that compiled it


def render_boot_file(params: BootParams, bytecode: Bytecode | None = None, *,
                     with_sources: bool = True) -> bytes:
    """Stage 2: prelude.py's source (original builtins, see there); then,
    after the marker, the marshal'ed (parameters, sources, magic number,
    code): the sources (loader and payloads) and the code are themselves
    marshal'ed, and the target unmarshals the code only if its interpreter's
    magic number is the one given. `bytecode`: the payloads compiled for the
    target's version (default: by this interpreter). Stage 1 runs the
    prelude and its run_boot_data(). `with_sources=False` (a target of the
    client's very build: _build.same_build) leaves out the sources, which
    only a target that cannot run the code needs (~40% of the file, copied
    and unmarshaled with the target's GIL held)."""
    given = {
        "token": params.token,
        "socket_path": params.socket_path,
        "package": params.package,
        "idle_timeout": params.idle_timeout,
        "client_uid": params.client_uid,
        "resident": params.resident,
    }
    fixed_sources, own = fixed_boot_data()
    if bytecode is None:
        bytecode = own
    sources = fixed_sources if with_sources or bytecode is not own or own is None else None
    data = (given, sources, bytecode.magic if bytecode else None,
            bytecode.code if bytecode else None)
    code = payload_source("prelude")
    return code.encode("utf-8") + BOOT_DATA_MARKER + marshal.dumps(data, MARSHAL_VERSION)


def fixed_boot_data() -> tuple[bytes, Bytecode | None]:
    """What is the same for every attach: the marshal'ed sources (loader and
    payloads, in chunks) and this interpreter's code for them, from the file
    cache beside our .pyc files (see _bootcache)."""
    sources, code, _stage1 = _fixed_parts()
    own = Bytecode(importlib.util.MAGIC_NUMBER, code, "client") if code is not None else None
    return sources, own


@cache
def _fixed_parts() -> tuple[bytes, bytes | None, CodeType]:
    """(sources, code, stage-1 template), from the file cache; compiling the
    stage-1 template costs a cold command ~4 ms (its first compile() also
    builds the _ast types), reading it back ~0.05."""
    key = sources_stamp() + b"chunk %d\n" % CHUNK_LINES + (_OUTER % _STAGE1).encode() + b"\n"
    blob = _bootcache.load_or_build(_bootcache.cache_path(_PAYLOADS_DIR), key,
                                    _build_fixed_boot_data)
    sources, code, stage1 = marshal.loads(blob)  # our own file (see _bootcache._read)
    return sources, code, stage1


@cache
def sources_stamp() -> bytes:
    """What every cache of code built from our sources depends on (see
    _bootcache.stamp): the boot file's fixed part, other versions' code."""
    return _bootcache.stamp([os.path.join(_PAYLOADS_DIR, name + ".py")
                             for name in ALL_SOURCES])


def _build_fixed_boot_data() -> bytes:
    sources = {
        "loader": payload_source("loader"),
        "sources": {name: payload_chunks(name) for name in PAYLOAD_MODULES},
    }
    code = compiled_payloads()
    return marshal.dumps((marshal.dumps(sources, MARSHAL_VERSION),
                          marshal.dumps(code) if code is not None else None,
                          _compile_stage1_template()))


def payload_texts() -> dict[str, tuple[str, int, str]]:
    """{name: (file name in the target, compile flags, source)}: what a
    compiler of another version needs to build the same code (_bytecode)."""
    out = {name: (AGENT_FILENAME, 0, payload_source(name)) for name in ("prelude", "loader")}
    for name in PAYLOAD_MODULES:
        out[name] = (agent_filename(name), FUTURE_ANNOTATIONS, payload_source(name))
    return out


FUTURE_ANNOTATIONS = 0x1000000  # CO_FUTURE_ANNOTATIONS, the same on 3.7-3.13


def agent_filename(name: str) -> str:
    return "<inspector-agent:%s>" % name


# Code objects for a target that runs bytecode of our magic number. Compiling
# the agent is the largest GIL hold of an attach (prelude, loader and a
# `stack` request's modules: about 10 ms of compile() in the target, in
# pieces up to 3 ms); marshal.loads of the same code takes about 0.3 ms. The
# code objects are the ones Python itself caches for our package (its .pyc
# files, written if the interpreter may), with the file name each has in the
# target. Nested as bytes: a target of another version never unmarshals them.
AGENT_FILENAME = "<inspector-agent>"


@cache
def compiled_payloads() -> dict[str, object] | None:
    """{"prelude": bytes, "loader": bytes, "modules": {name: bytes}} of
    marshal'ed code objects, or None if they cannot be had."""
    try:
        modules = {name: _marshaled_code(name, agent_filename(name)) for name in PAYLOAD_MODULES}
        return {"prelude": _marshaled_code("prelude", AGENT_FILENAME),
                "loader": _marshaled_code("loader", AGENT_FILENAME),
                "modules": modules}
    except (OSError, ImportError, SyntaxError, ValueError):
        return None


def _marshaled_code(name: str, filename: str) -> bytes:
    path = os.path.join(_PAYLOADS_DIR, name + ".py")
    code = importlib.machinery.SourceFileLoader(name, path).get_code(name)
    if code is None:
        raise ImportError("no code for payload %s" % name)
    return marshal.dumps(_renamed(code, filename))


def _renamed(code: CodeType, filename: str) -> CodeType:
    """`code` and every code object nested in it, with `filename`."""
    consts = tuple(_renamed(c, filename) if type(c) is CodeType else c for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)
