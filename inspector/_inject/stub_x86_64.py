"""Two tiny x86-64 routines that start the agent without ever blocking.

Both injectors use them: gdb calls ``pthread_create``/``Py_AddPendingCall``
with them; the native injector's borrow routine (`arch_x86_64`) does.

Why machine code: the safe way to run Python in a target is on a thread that
takes the GIL *normally*, waiting as long as it must (memray starts such a
thread from a dlopen'ed library). Calling ``PyGILState_Ensure`` from gdb
instead blocks gdb inside an inferior call while another thread holds the
GIL, and killing gdb then crashes the target. So the injector only starts a
thread on THREAD_ENTRY; it waits for the GIL on its own, runs the stage-1
text, releases the GIL and unmaps the page it lives in.

PENDING_ENTRY is the busy-target path: CPython's main thread calls it at a
bytecode boundary with the GIL held - not inside malloc - so there it may
call ``pthread_create`` on THREAD_ENTRY itself. Either way stage 1 runs on a
native thread of ours, never on a target thread, and never needs the
target's ``_thread`` module (which gevent replaces).

The layout (the native injector maps it read+exec and writes it through
/proc/PID/mem; gdb maps it read+write, writes it and ``mprotect``s page 0)::

    page 0, read+exec
    0x0000  THREAD_ENTRY   void *entry(struct data *d)    (pthread start routine)
    0x0100  PENDING_ENTRY  int   entry(struct data *d)    (Py_AddPendingCall callback)
    page 1..
    0x1000  pthread_t slot (gdb's thread path; the others keep it elsewhere)
    0x1010  struct data    the addresses below, filled in by the client
    0x10c0  "__main__"
    0x1100  stage-1 text   NUL-terminated, run by PyRun_SimpleString
    then    stage-1 code   (optional, 16-aligned) marshal'ed code object of that
                           same text, for an interpreter of the client's own build

Stage 1 as a code object: PyRun_SimpleString compiles the text first, 1.5-2.5
ms with the GIL held (every other thread of the target waits) on the agent's
first step. Given the code object, THREAD_ENTRY does what PyRun_SimpleString
does after compiling - PyEval_EvalCode in __main__'s dict - but on the
unmarshal'ed code (~0.05 ms); errors are cleared, never printed. The client
gives it only for a target that maps the very file of its own interpreter
(native.same_build): bytecode is valid only for the build that wrote it.

Both routines keep the System V stack alignment (rsp % 16 == 0 at each call).
THREAD_ENTRY ends with a tail jump to ``munmap(page, len)``, which returns 0
straight to glibc's thread start, so no instruction of the unmapped page runs
after it; PENDING_ENTRY returns 0 (the thread owns the page now) or, when no
thread could be started, tail-jumps into the same ``munmap``.
"""

from __future__ import annotations

import struct

PAGE_SIZE = 4096
THREAD_ENTRY = 0x000
PENDING_ENTRY = 0x100
CODE_LENGTH = PAGE_SIZE  # the read+exec part
TID_SLOT = 0x1000
DATA = 0x1010
MAIN_NAME = 0x10C0
TEXT = 0x1100

# struct data: offsets of each 8-byte field
_FIELDS = (
    "PyGILState_Ensure",   # +0x00
    "PyRun_SimpleString",  # +0x08
    "PyGILState_Release",  # +0x10
    "text",                # +0x18  address of the stage-1 text
    "munmap",              # +0x20
    "page",                # +0x28
    "length",              # +0x30
    "pthread_self",        # +0x38
    "pthread_detach",      # +0x40
    "pthread_create",      # +0x48  (the pending routine starts the same thread)
    "code",                # +0x50  address of stage 1 as a marshal'ed code object
    "code_length",         # +0x58  0: run the text
    "PyMarshal_ReadObjectFromString",  # +0x60
    "PyImport_AddModule",  # +0x68
    "PyModule_GetDict",    # +0x70
    "PyEval_EvalCode",     # +0x78
    "Py_DecRef",           # +0x80
    "PyErr_Clear",         # +0x88
    "main_name",           # +0x90  address of "__main__"
)
# Only the code-object path calls these; a page without code may leave them 0.
CODE_PATH_SYMBOLS = ("PyMarshal_ReadObjectFromString", "PyImport_AddModule",
                     "PyModule_GetDict", "PyEval_EvalCode", "Py_DecRef", "PyErr_Clear")

# The source of the bytes below (GNU as, Intel syntax); tests/unit/
# test_machine_code.py assembles it and compares.
ROUTINES_ASM = """\
    .intel_syntax noprefix
    .text
thread_entry:                    # void *thread_entry(struct data *d)
    push  rbx
    push  r12
    push  r13                    # rsp % 16 == 0 at every call below
    mov   rbx, rdi
    call  [rbx + 0x38]           # pthread_self()
    mov   rdi, rax
    call  [rbx + 0x40]           # pthread_detach(self)
    call  [rbx]                  # state = PyGILState_Ensure()
    mov   r12, rax
    mov   rsi, [rbx + 0x58]      # code_length
    test  rsi, rsi
    jz    3f                     # no code object: the text
    mov   rdi, [rbx + 0x50]
    call  [rbx + 0x60]           # co = PyMarshal_ReadObjectFromString(code, code_length)
    test  rax, rax
    jz    2f                     # unreadable: the text
    mov   r13, rax
    mov   rdi, [rbx + 0x90]
    call  [rbx + 0x68]           # m = PyImport_AddModule("__main__")   (borrowed)
    test  rax, rax
    jz    1f
    mov   rdi, rax
    call  [rbx + 0x70]           # d = PyModule_GetDict(m)   (borrowed)
    test  rax, rax
    jz    1f
    mov   rdi, r13
    mov   rsi, rax
    mov   rdx, rax
    call  [rbx + 0x78]           # r = PyEval_EvalCode(co, d, d): what PyRun_SimpleString runs
    mov   rdi, rax
    call  [rbx + 0x80]           # Py_DecRef(r)   (NULL is fine)
1:
    mov   rdi, r13
    call  [rbx + 0x80]           # Py_DecRef(co)
    call  [rbx + 0x88]           # PyErr_Clear(): nothing is printed, nothing escapes
    jmp   4f
2:
    call  [rbx + 0x88]           # PyErr_Clear()
3:
    mov   rdi, [rbx + 0x18]
    call  [rbx + 0x08]           # PyRun_SimpleString(text)
4:
    mov   rdi, r12
    call  [rbx + 0x10]           # PyGILState_Release(state)
    mov   rdi, [rbx + 0x28]
    mov   rsi, [rbx + 0x30]
    mov   rax, [rbx + 0x20]
    pop   r13
    pop   r12
    pop   rbx
    jmp   rax                    # munmap(page, length)
    .org 0x100
pending_entry:                   # int pending_entry(struct data *d), main thread, GIL held
    push  rbx
    mov   rbx, rdi
    sub   rsp, 16
    mov   rdi, rsp               # pthread_t on our stack: the thread detaches itself
    xor   esi, esi
    lea   rdx, [rip + thread_entry]
    mov   rcx, rbx
    call  [rbx + 0x48]           # pthread_create(&tid, NULL, thread_entry, d)
    add   rsp, 16
    test  eax, eax
    jnz   1f
    pop   rbx
    ret                          # 0: the new thread runs stage 1 and unmaps the page
1:
    mov   rdi, [rbx + 0x28]
    mov   rsi, [rbx + 0x30]
    mov   rax, [rbx + 0x20]
    pop   rbx
    jmp   rax                    # no thread: munmap(page, length) == 0
"""

# void *thread_entry(struct data *d): detach itself, take the GIL, run stage 1
# (the code object if one was given and it unmarshals, else the text), give
# the GIL back, tail-jump into munmap(page, length).
_THREAD_CODE = bytes.fromhex(
    "53415441554889fbff53384889c7ff5340ff134989c4488b73584885f67455488b7b50ff"
    "53604885c074434989c5488bbb90000000ff53684885c074204889c7ff53704885c07415"
    "4c89ef4889c64889c2ff53784889c7ff93800000004c89efff9380000000ff9388000000"
    "eb0dff9388000000488b7b18ff53084c89e7ff5310488b7b28488b7330488b4320415d41"
    "5c5bffe0")

# int pending_entry(struct data *d)   -- called by the main thread at a bytecode
# boundary, GIL held: not inside malloc, so it may start the thread itself.
_PENDING_CODE = bytes.fromhex(
    "534889fb4883ec104889e731f6488d15ecfeffff4889d9ff53484883c41085c075025bc3"
    "488b7b28488b7330488b43205bffe0")


def _code_offset(text: bytes) -> int:
    return (TEXT + len(text) + 1 + 15) // 16 * 16


def page_length(text: bytes, code: bytes = b"") -> int:
    size = _code_offset(text) + len(code) if code else TEXT + len(text) + 1
    return (size + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE


def nonzero_spans(blob: bytes, gap: int = 64) -> list[tuple[int, bytes]]:
    """(offset, bytes) runs worth writing: the mapping starts zero-filled, and
    every byte gdb writes costs time while the target is stopped."""
    spans: list[tuple[int, bytes]] = []
    i, n = 0, len(blob)
    while i < n:
        if blob[i] == 0:
            i += 1
            continue
        start, zeros = i, 0
        while i < n and zeros < gap:
            zeros = zeros + 1 if blob[i] == 0 else 0
            i += 1
        spans.append((start, blob[start:i - zeros]))
    return spans


def build_page(page: int, addresses: dict[str, int], text: bytes, code: bytes = b"") -> bytes:
    """The page's contents, for a page mapped at address `page`. `code`:
    stage 1 as a marshal'ed code object (the CODE_PATH_SYMBOLS are needed
    then); without it the routine runs the text."""
    if b"\0" in text:
        raise ValueError("stage-1 text must not contain NUL bytes")
    length = page_length(text, code)
    values = dict(addresses, text=page + TEXT, page=page, length=length,
                  main_name=page + MAIN_NAME, code_length=len(code),
                  code=page + _code_offset(text) if code else 0)
    if not code:
        for name in CODE_PATH_SYMBOLS:
            values.setdefault(name, 0)
    missing = [f for f in _FIELDS if f not in values]
    if missing:
        raise KeyError("missing addresses: %s" % ", ".join(missing))
    blob = bytearray(length)
    blob[THREAD_ENTRY:THREAD_ENTRY + len(_THREAD_CODE)] = _THREAD_CODE
    blob[PENDING_ENTRY:PENDING_ENTRY + len(_PENDING_CODE)] = _PENDING_CODE
    blob[DATA:DATA + 8 * len(_FIELDS)] = struct.pack("<%dQ" % len(_FIELDS),
                                                     *(values[f] for f in _FIELDS))
    blob[MAIN_NAME:MAIN_NAME + 9] = b"__main__\0"
    blob[TEXT:TEXT + len(text)] = text
    if code:
        offset = _code_offset(text)
        blob[offset:offset + len(code)] = code
    return bytes(blob)
