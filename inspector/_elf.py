"""Resolve symbol addresses in another process without stopping it.

gdb freezes the target while it loads symbols, so we resolve every address we
need *before* attaching: find the mapped ELF files in ``/proc/PID/maps``, read
their dynamic symbol table (``.dynsym`` - present even in stripped binaries,
Debian's ``/usr/bin/python3.11`` exports the C API there) and add the load
base. gdb then calls through casted addresses and loads no symbols at all.

Only what we need of ELF64 little-endian (x86_64, aarch64) is implemented.
"""

from __future__ import annotations

import array
import contextlib
import mmap
import os
import re
import stat
import struct
import sys
from collections.abc import Iterable

from ._record import NamedTuple

_ELF_MAGIC = b"\x7fELF"
_SHT_DYNSYM = 11
_ET_EXEC = 2
_PT_LOAD = 1
_STT_FUNC = 2
_STT_GNU_IFUNC = 10
_SYM_SIZE = 24  # sizeof(Elf64_Sym)
_PF_X = 1


class ElfError(Exception):
    """The file is not an ELF we can read."""


class Mapping(NamedTuple):
    start: int
    end: int
    perms: str
    offset: int
    path: str
    dev: str  # "major:minor", as the kernel prints it
    inode: int


def read_maps(pid: int) -> list[Mapping]:
    """Parse /proc/PID/maps (only file-backed mappings are returned)."""
    out = []
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) < 6 or not parts[5].startswith("/"):
                continue
            lo, hi = parts[0].split("-")
            path = parts[5].rstrip("\n")
            if path.endswith(" (deleted)"):
                path = path[: -len(" (deleted)")]
            out.append(Mapping(int(lo, 16), int(hi, 16), parts[1], int(parts[2], 16), path,
                               parts[3], int(parts[4])))
    return out


def _open_mapped(pid: int, path: str, maps: list[Mapping] | None = None) -> mmap.mmap:
    """Map a file the target has mapped. Mapped, not read: we touch only the
    headers, .dynsym and a text segment of a libpython of several MB."""
    fd = _open_mapped_fd(pid, path, maps)
    try:
        return mmap.mmap(fd, 0, prot=mmap.PROT_READ)
    except (OSError, ValueError):
        raise ElfError("cannot read %s" % path) from None
    finally:
        os.close(fd)


def _open_mapped_fd(pid: int, path: str, maps: list[Mapping] | None = None) -> int:
    """An fd of a file the target has mapped (a regular file).

    First through /proc/PID/map_files/START-END: that is the very file the
    process mapped, whatever mount namespace, chroot or bind mount it came
    from, even deleted since - and no path the target controls is followed.
    Then, where map_files is closed to us (it needs CAP_SYS_ADMIN on older
    kernels), the path inside the target's root, then as seen from here."""
    candidates = ["/proc/%d/map_files/%x-%x" % (pid, m.start, m.end)
                  for m in (maps or []) if m.path == path][:1]
    candidates += ["/proc/%d/root%s" % (pid, path), path]
    for candidate in candidates:
        try:
            fd = os.open(candidate, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                return fd  # never a FIFO or a device a target named
        except OSError:
            pass
        os.close(fd)
    raise ElfError("cannot read %s" % path)


def dynamic_symbols(data: bytes | mmap.mmap, wanted: Iterable[str]) -> dict[str, int]:
    """Return {name: st_value} for the wanted defined symbols of .dynsym
    (the first one in table order, if a name is defined twice)."""
    want = {name.encode("ascii") for name in wanted}
    if data[:4] != _ELF_MAGIC or data[4] != 2 or data[5] != 1:
        raise ElfError("not a 64-bit little-endian ELF file")
    (e_shoff,) = struct.unpack_from("<Q", data, 0x28)
    e_shentsize, e_shnum = struct.unpack_from("<HH", data, 0x3A)
    found: dict[str, int] = {}
    for i in range(e_shnum):
        sh = e_shoff + i * e_shentsize
        sh_type, = struct.unpack_from("<I", data, sh + 4)
        if sh_type != _SHT_DYNSYM:
            continue
        sh_offset, sh_size = struct.unpack_from("<QQ", data, sh + 0x18)
        sh_link, = struct.unpack_from("<I", data, sh + 0x28)
        sh_entsize, = struct.unpack_from("<Q", data, sh + 0x38)
        strtab = e_shoff + sh_link * e_shentsize
        str_off, str_size = struct.unpack_from("<QQ", data, strtab + 0x18)
        if sh_entsize < _SYM_SIZE:
            raise ElfError("malformed .dynsym (entry size %d)" % sh_entsize)
        table = _SymbolTable(data, sh_offset, sh_size // sh_entsize, sh_entsize, str_off,
                             str_size)
        for _index, name, value in table.lookup(want):
            found.setdefault(name.decode("ascii"), value)
    return found


class _SymbolTable:
    """One .dynsym section and its string table."""

    def __init__(self, data: bytes | mmap.mmap, offset: int, count: int, entsize: int,
                 str_off: int, str_size: int) -> None:
        self.data = data
        self.offset = offset
        self.count = count
        self.entsize = entsize
        self.str_off = str_off
        self.str_end = str_off + str_size

    def lookup(self, want: set[bytes]) -> list[tuple[int, bytes, int]]:
        """(index, name, st_value) of each defined symbol named in `want`,
        in table order. Finds the names in the string table first and then
        only the entries that point at them: libpython has about 10,000
        symbols, and decoding every one took 5 ms of each attach."""
        if self.entsize != _SYM_SIZE or sys.byteorder != "little":
            return self.scan(want)
        names = array.array("I")
        names.frombytes(self.data[self.offset:self.offset + self.count * _SYM_SIZE])
        st_names = names[0::_SYM_SIZE // 4]  # the first field of each entry
        hits = []
        for name in want:
            for st_name in self._string_offsets(name):
                index = -1
                while True:
                    try:
                        index = st_names.index(st_name, index + 1)
                    except ValueError:
                        break
                    value = self._defined_value(index)
                    if value is not None:
                        hits.append((index, name, value))
        return sorted(hits)

    def scan(self, want: set[bytes]) -> list[tuple[int, bytes, int]]:
        """lookup(), by decoding every entry (any entry size)."""
        hits = []
        for index in range(self.count):
            st_name, = struct.unpack_from("<I", self.data, self.offset + index * self.entsize)
            start = self.str_off + st_name
            name = self.data[start:self.data.find(b"\0", start)]
            if name in want:
                value = self._defined_value(index)
                if value is not None:
                    hits.append((index, name, value))
        return hits

    def _string_offsets(self, name: bytes) -> list[int]:
        """Every st_name that reads as `name`: the linker may share one string
        as the tail of another ("foo" inside "barfoo")."""
        out = []
        needle = name + b"\0"
        pos = self.data.find(needle, self.str_off, self.str_end)
        while pos >= 0:
            out.append(pos - self.str_off)
            pos = self.data.find(needle, pos + 1, self.str_end)
        return out

    def _defined_value(self, index: int) -> int | None:
        """st_value of entry `index` if it defines a function or object.
        glibc versions default symbols as name@@VER; .dynsym holds the bare
        name. An IFUNC's address is its resolver, not the function: calling
        it would run the resolver, so such a symbol counts as missing."""
        _name, st_info, _other, st_shndx, st_value = struct.unpack_from(
            "<IBBHQ", self.data, self.offset + index * self.entsize)
        if st_shndx == 0 or st_value == 0:
            return None  # undefined (imported) symbol
        if (st_info & 0xF) not in (_STT_FUNC, 0, 1):
            return None
        return int(st_value)


def _is_exec_type(data: bytes | mmap.mmap) -> bool:
    (e_type,) = struct.unpack_from("<H", data, 0x10)
    return bool(e_type == _ET_EXEC)


def _first_load_vaddr(data: bytes | mmap.mmap) -> int:
    (e_phoff,) = struct.unpack_from("<Q", data, 0x20)
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(e_phnum):
        ph = e_phoff + i * e_phentsize
        (p_type,) = struct.unpack_from("<I", data, ph)
        if p_type == _PT_LOAD:
            p_offset, p_vaddr = struct.unpack_from("<QQ", data, ph + 8)
            return int(p_vaddr - p_offset)
    return 0


def load_base(maps: list[Mapping], path: str, data: bytes | mmap.mmap) -> int:
    """Where the file's vaddr 0 landed in the process."""
    return _base(maps, path, _is_exec_type(data), _first_load_vaddr(data))


def _base(maps: list[Mapping], path: str, is_exec: bool, first_load_vaddr: int) -> int:
    if is_exec:
        return 0
    starts = [m.start - m.offset for m in maps if m.path == path]
    if not starts:
        raise ElfError("%s is not mapped" % path)
    return min(starts) - first_load_vaddr


def resolve(pid: int, path: str, names: Iterable[str], maps: list[Mapping]) -> dict[str, int]:
    """Absolute addresses of `names` defined in the mapped file `path`."""
    with _open_mapped(pid, path, maps) as data:
        base = load_base(maps, path, data)
        return {name: base + value for name, value in dynamic_symbols(data, names).items()}


# -- the facts of one file, cached by its identity --------------------------

FACTS_FORMAT = b"inspector-elf-facts 1\n"


def resolve_file(pid: int, path: str, names: Iterable[str], patterns: Iterable[bytes],
                 maps: list[Mapping], cache_dir: str | None = None
                 ) -> tuple[dict[str, int], dict[bytes, int | None]]:
    """resolve(), and the first place of each byte pattern in the file's
    executable segments (None when absent), for the mapped file `path`.

    What depends only on the file (its symbols' values, where each pattern
    sits in its text, its header) is kept in `cache_dir` (the client's
    private cache) under the file's identity: device, inode, size and
    mtime of the very file the target mapped, opened as _open_mapped_fd
    does. Finding them costs 2-3 ms of every attach (libpython and libc
    mapped, their string tables searched); reading them back ~0.1 ms."""
    names, patterns = tuple(names), tuple(patterns)
    fd = _open_mapped_fd(pid, path, maps)
    try:
        st = os.fstat(fd)
        key = FACTS_FORMAT + b"%d %d %d %d\n%s\n%s\n\n" % (
            st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
            ",".join(names).encode("ascii"), b",".join(p.hex().encode() for p in patterns))

        def build() -> bytes:
            try:
                data = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
            except (OSError, ValueError):
                raise ElfError("cannot read %s" % path) from None
            with data:
                return _facts_text(data, names, patterns)

        text = where = None
        if cache_dir is not None:
            from . import _bootcache

            where = os.path.join(cache_dir, "elf-%d-%d-%08x" % (st.st_dev, st.st_ino,
                                                               _fnv1a(key)))
            text = _bootcache.load_or_build(where, key, build, store="always")
        facts = _parse_facts(text, names, patterns) if text is not None else None
        if facts is None:
            if where is not None and text is not None:
                with contextlib.suppress(OSError):
                    os.unlink(where)  # unreadable: the next attach writes it anew
            facts = _parse_facts(build(), names, patterns)
        assert facts is not None
    finally:
        os.close(fd)
    is_exec, vaddr, values, offsets = facts
    base = _base(maps, path, is_exec, vaddr)
    return ({name: base + value for name, value in values.items()},
            {p: None if at is None else base + at for p, at in offsets.items()})


def _facts_text(data: mmap.mmap, names: tuple[str, ...], patterns: tuple[bytes, ...]) -> bytes:
    if data[:4] != _ELF_MAGIC:
        raise ElfError("not an ELF file")
    lines = [b"exec %d" % _is_exec_type(data), b"vaddr %d" % _first_load_vaddr(data)]
    for name, value in dynamic_symbols(data, names).items():
        lines.append(b"sym %s %d" % (name.encode("ascii"), value))
    for pattern, at in _text_vaddrs(data, patterns).items():
        lines.append(b"pat %s %s" % (pattern.hex().encode(), b"-" if at is None else b"%d" % at))
    return b"\n".join(lines) + b"\n"


def _text_vaddrs(data: mmap.mmap, patterns: tuple[bytes, ...]) -> dict[bytes, int | None]:
    """The vaddr of the first occurrence of each byte pattern in the file's
    executable segments (None when absent)."""
    segments = _exec_segments(data) if patterns else []
    found: dict[bytes, int | None] = {}
    for pattern in patterns:
        found[pattern] = None
        for offset, size, vaddr in segments:
            at = data.find(pattern, offset, offset + size)
            if at >= 0:
                found[pattern] = vaddr + (at - offset)
                break
    return found


def _parse_facts(text: bytes, names: tuple[str, ...], patterns: tuple[bytes, ...]
                 ) -> tuple[bool, int, dict[str, int], dict[bytes, int | None]] | None:
    """The facts as _facts_text wrote them, or None if they do not read so."""
    is_exec, vaddr = None, None
    values: dict[str, int] = {}
    offsets: dict[bytes, int | None] = {}
    wanted, hexes = set(names), {p.hex(): p for p in patterns}
    try:
        for line in text.decode("ascii").splitlines():
            word, *rest = line.split(" ")
            if word == "exec" and rest in (["0"], ["1"]):
                is_exec = rest == ["1"]
            elif word == "vaddr" and len(rest) == 1:
                vaddr = int(rest[0])
            elif word == "sym" and len(rest) == 2 and rest[0] in wanted:
                values[rest[0]] = int(rest[1])
            elif word == "pat" and len(rest) == 2 and rest[0] in hexes:
                offsets[hexes[rest[0]]] = None if rest[1] == "-" else int(rest[1])
            else:
                return None
    except (UnicodeDecodeError, ValueError):
        return None
    if is_exec is None or vaddr is None or set(offsets) != set(patterns) or \
            any(v < 0 for v in values.values()):
        return None
    return is_exec, vaddr, values, offsets


def _fnv1a(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


_LIBC_RE = re.compile(r"/libc(\.so\.6|-\d+\.\d+\.so)$")
_LIBPYTHON_RE = re.compile(r"/libpython(\d)\.(\d+)[a-z]*\.so")
_EXE_VERSION_RE = re.compile(r"python(\d)\.(\d+)")


def find_libc(maps: list[Mapping]) -> str | None:
    for m in maps:
        if _LIBC_RE.search(m.path):
            return m.path
    return None


def find_libpython(maps: list[Mapping]) -> str | None:
    for m in maps:
        if _LIBPYTHON_RE.search(m.path):
            return m.path
    return None


def exe_path(pid: int) -> str:
    return os.readlink("/proc/%d/exe" % pid)


def _exec_segments(data: bytes | mmap.mmap) -> list[tuple[int, int, int]]:
    """(file offset, size, vaddr) of each executable PT_LOAD segment."""
    (e_phoff,) = struct.unpack_from("<Q", data, 0x20)
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 0x36)
    out = []
    for i in range(e_phnum):
        ph = e_phoff + i * e_phentsize
        p_type, p_flags = struct.unpack_from("<II", data, ph)
        if p_type == _PT_LOAD and p_flags & _PF_X:
            p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from("<QQQQ", data, ph + 8)
            out.append((p_offset, p_filesz, p_vaddr))
    return out


