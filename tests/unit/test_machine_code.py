"""Machine code keeps its source next to its bytes, and the signal frame the
native injector builds matches the kernel's own struct layout.

The assembler (binutils' `as`) and a C compiler come with gcc; without them
these tests are visible skips.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from inspector._inject import arch_x86_64 as arch
from inspector._inject import stub_x86_64 as stub


def _assemble(source: str, tmp_path: Path) -> bytes:
    if shutil.which("as") is None or shutil.which("objcopy") is None:
        pytest.skip("binutils (as, objcopy) not installed")
    src, obj, raw = tmp_path / "code.s", tmp_path / "code.o", tmp_path / "code.bin"
    src.write_text(source)
    subprocess.run(["as", "--64", "-o", str(obj), str(src)], check=True)
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text", str(obj), str(raw)], check=True)
    return raw.read_bytes()


def test_borrow_routine_is_its_source(tmp_path: Path) -> None:
    code = _assemble(arch.BORROW_ASM, tmp_path)
    assert code[:len(arch.BORROW_CODE)] == arch.BORROW_CODE
    assert code[len(arch.BORROW_CODE):] == bytes(arch.BORROW_DATA - len(arch.BORROW_CODE))


def test_agent_start_routines_are_their_source(tmp_path: Path) -> None:
    code = _assemble(stub.ROUTINES_ASM, tmp_path)
    assert code[stub.THREAD_ENTRY:stub.THREAD_ENTRY + len(stub._THREAD_CODE)] == stub._THREAD_CODE
    assert code[stub.PENDING_ENTRY:] == stub._PENDING_CODE


def test_borrow_page_layout() -> None:
    values = {name: 0x1000 + i for i, name in enumerate(arch.BORROW_FIELDS)}
    page = arch.build_borrow_page(values)
    assert len(page) == arch.PAGE_SIZE
    fields = struct.unpack_from("<%dQ" % len(arch.BORROW_FIELDS), page, arch.BORROW_DATA)
    assert fields == tuple(values[f] for f in arch.BORROW_FIELDS)
    with pytest.raises(KeyError):
        arch.build_borrow_page({})


_LAYOUT_C = r"""
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
/* The kernel's struct ucontext (asm-generic/ucontext.h) with glibc's copies of
   struct sigcontext and stack_t: the signal frame rt_sigreturn reads. */
struct kernel_ucontext {
    unsigned long uc_flags;
    struct kernel_ucontext *uc_link;
    stack_t uc_stack;
    struct sigcontext uc_mcontext;
    unsigned long uc_sigmask;
};
int main(void) {
    printf("%zu %zu %zu %zu %zu %zu %zu %zu %zu\n",
           offsetof(struct kernel_ucontext, uc_flags), offsetof(struct kernel_ucontext, uc_stack),
           offsetof(struct kernel_ucontext, uc_mcontext),
           offsetof(struct kernel_ucontext, uc_sigmask),
           offsetof(struct sigcontext, r8), offsetof(struct sigcontext, rip),
           offsetof(struct sigcontext, cs), offsetof(struct sigcontext, fpstate),
           sizeof(struct sigcontext));
    printf("%zu %zu %zu\n", offsetof(struct _fpstate, __glibc_reserved1) + 12 * 4,
           sizeof(siginfo_t), offsetof(stack_t, ss_flags));
    return 0;
}
"""


def test_frame_layout_matches_the_kernel_headers(tmp_path: Path) -> None:
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    (tmp_path / "layout.c").write_text(_LAYOUT_C)
    build = subprocess.run([cc, "-o", str(tmp_path / "layout"), str(tmp_path / "layout.c")],
                           capture_output=True, text=True)
    if build.returncode != 0:
        pytest.skip("kernel headers missing: " + build.stderr.strip()[-200:])
    out = subprocess.run([str(tmp_path / "layout")], capture_output=True, text=True, check=True)
    first, second = out.stdout.splitlines()
    flags, stack, mcontext, sigmask, r8, rip, cs, fpstate, sc_size = map(int, first.split())
    sw_reserved, siginfo, ss_flags = map(int, second.split())
    assert ss_flags == 8
    assert (flags, stack, mcontext) == (0, 16, 40)
    assert sigmask == 40 + 256 and sc_size == 256
    assert (r8, rip, cs, fpstate) == (0, 16 * 8, 18 * 8, 144 + 8 + 32)
    assert sw_reserved == arch._SW_RESERVED
    assert arch._RT_SIGFRAME_SIZE == 8 + sigmask + 8 + siginfo


def _regs(**values: int) -> list[int]:
    regs = [0] * arch.NREGS
    for name, value in values.items():
        regs[arch.REG_NAMES.index(name)] = value & 0xFFFFFFFFFFFFFFFF
    return regs


def _xstate(size: int = 2696, xcr0: int = 0x207, in_use: int = 0x3) -> bytes:
    image = bytearray(size)
    struct.pack_into("<Q", image, arch._SW_RESERVED, xcr0)
    struct.pack_into("<Q", image, 512, in_use)
    return bytes(image)


@pytest.mark.parametrize("code, restart", [(-512, True), (-513, True), (-514, True),
                                           (-516, False), (-4, False), (0, False)])
def test_resumed_registers_restart_like_the_kernel(code: int, restart: bool) -> None:
    regs = _regs(rip=0x401002, rax=code, orig_rax=202, rdi=7)
    out = arch.resumed_registers(regs)
    assert arch.signed(out[arch.SYSNO]) == -1
    if restart:
        assert out[arch.IP] == 0x401000 and out[arch.RET] == 202
    else:
        assert out[arch.IP] == 0x401002
        assert arch.signed(out[arch.RET]) == (-4 if code == -516 else code)


def test_not_in_a_system_call_resumes_unchanged() -> None:
    regs = _regs(rip=0x401234, rax=-512, orig_rax=-1)
    assert arch.resumed_registers(regs)[arch.IP] == 0x401234
    assert arch.signed(arch.resumed_registers(regs)[arch.RET]) == -512


def test_restore_frame_holds_registers_mask_and_fpu_state() -> None:
    sp = 0x7FFF_0000_1238
    regs = _regs(rip=0x401002, rax=-512, orig_rax=202, rsp=sp, rbx=0x1111, cs=0x33, ss=0x2B)
    frame = arch.build_restore_frame(regs, _xstate(), sigmask=0x4001)
    assert frame.address == frame.frame and (frame.frame + 8) % 16 == 0
    assert frame.address + len(frame.data) == sp - arch.RED_ZONE  # the red zone is untouched
    data = frame.data
    sc = 8 + 40
    rbx, = struct.unpack_from("<Q", data, sc + 11 * 8)
    rax, rsp, rip = struct.unpack_from("<QQQ", data, sc + 13 * 8)[0], *struct.unpack_from(
        "<QQ", data, sc + 15 * 8)
    assert (rbx, rax, rsp, rip) == (0x1111, 202, sp, 0x401000)
    cs, _gs, _fs, ss = struct.unpack_from("<HHHH", data, sc + 144)
    assert (cs, ss) == (0x33, 0x2B)
    fpstate, = struct.unpack_from("<Q", data, sc + 184)
    assert fpstate % 64 == 0
    fp = fpstate - frame.address
    magic1, extended, features, size = struct.unpack_from("<IIQI", data, fp + arch._SW_RESERVED)
    assert (magic1, features, size, extended) == (arch.FP_XSTATE_MAGIC1, 0x207, 2696, 2700)
    assert struct.unpack_from("<I", data, fp + size)[0] == arch.FP_XSTATE_MAGIC2
    assert struct.unpack_from("<Q", data, 8 + 40 + 256)[0] == 0x4001
    ss_flags, = struct.unpack_from("<i", data, 8 + 16 + 8)
    assert ss_flags == arch.SS_INVALID  # rt_sigreturn must leave the altstack alone


def test_unused_amx_tile_data_is_left_out_of_the_frame() -> None:
    amx = _xstate(size=11008, xcr0=0x602E7, in_use=0x207)
    image = arch.signal_fpstate(amx)
    _m1, _ext, features, size = struct.unpack_from("<IIQI", image, arch._SW_RESERVED)
    assert size == 11008 - arch.XTILEDATA_SIZE and not features & arch.XFEATURE_XTILEDATA
    in_use = _xstate(size=11008, xcr0=0x602E7, in_use=0x40207)
    _m1, _ext, features, size = struct.unpack_from("<IIQI", arch.signal_fpstate(in_use),
                                                   arch._SW_RESERVED)
    assert size == 11008 and features & arch.XFEATURE_XTILEDATA


def test_routine_constants_match_the_frame_layout() -> None:
    # BORROW_ASM writes [frame + 0x138] (mark) and [frame + 0x140] (result)
    assert "[rax + 0x138]" in arch.BORROW_ASM and "[rax + 0x140]" in arch.BORROW_ASM
    assert arch.FRAME_SCRATCH == 0x138
    assert arch.PTHREAD_T_SLOT + 8 <= arch._RT_SIGFRAME_SIZE  # inside the siginfo room
