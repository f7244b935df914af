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
    0x0080  PENDING_ENTRY  int   entry(struct data *d)    (Py_AddPendingCall callback)
    page 1..
    0x1000  pthread_t slot (gdb's thread path; the others keep it elsewhere)
    0x1010  struct data    the addresses below, filled in by the client
    0x1100  stage-1 text   NUL-terminated, run by PyRun_SimpleString

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
PENDING_ENTRY = 0x080
CODE_LENGTH = PAGE_SIZE  # the read+exec part
TID_SLOT = 0x1000
DATA = 0x1010
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
)

# The source of the bytes below (GNU as, Intel syntax); tests/unit/
# test_machine_code.py assembles it and compares.
ROUTINES_ASM = """\
    .intel_syntax noprefix
    .text
thread_entry:                    # void *thread_entry(struct data *d)
    push  rbx
    mov   rbx, rdi
    call  [rbx + 0x38]           # pthread_self()
    mov   rdi, rax
    call  [rbx + 0x40]           # pthread_detach(self)
    call  [rbx]                  # state = PyGILState_Ensure()
    push  rax
    sub   rsp, 8
    mov   rdi, [rbx + 0x18]
    call  [rbx + 0x08]           # PyRun_SimpleString(text)
    add   rsp, 8
    pop   rdi
    call  [rbx + 0x10]           # PyGILState_Release(state)
    mov   rdi, [rbx + 0x28]
    mov   rsi, [rbx + 0x30]
    mov   rax, [rbx + 0x20]
    pop   rbx
    jmp   rax                    # munmap(page, length)
    .org 0x80
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

# void *thread_entry(struct data *d)
_THREAD_CODE = bytes.fromhex(
    "53"            # push rbx                ; callee-saved; rsp is now 16-aligned
    "4889fb"        # mov  rbx, rdi           ; rbx = d
    "ff5338"        # call [rbx+0x38]         ; pthread_self()
    "4889c7"        # mov  rdi, rax
    "ff5340"        # call [rbx+0x40]         ; pthread_detach(self): no join needed, no leak
    "ff13"          # call [rbx]              ; state = PyGILState_Ensure()  (may wait: fine)
    "50"            # push rax                ; keep state
    "4883ec08"      # sub  rsp, 8             ; realign
    "488b7b18"      # mov  rdi, [rbx+0x18]
    "ff5308"        # call [rbx+0x08]         ; PyRun_SimpleString(text)
    "4883c408"      # add  rsp, 8
    "5f"            # pop  rdi                ; state
    "ff5310"        # call [rbx+0x10]         ; PyGILState_Release(state)
    "488b7b28"      # mov  rdi, [rbx+0x28]    ; page
    "488b7330"      # mov  rsi, [rbx+0x30]    ; length
    "488b4320"      # mov  rax, [rbx+0x20]    ; munmap
    "5b"            # pop  rbx
    "ffe0"          # jmp  rax                ; munmap(page, length) returns to our caller
)

# int pending_entry(struct data *d)   -- called by the main thread at a bytecode
# boundary, GIL held: not inside malloc, so it may start the thread itself.
_PENDING_CODE = bytes.fromhex(
    "534889fb4883ec104889e731f6488d156cffffff4889d9ff53484883c41085c075025bc3"
    "488b7b28488b7330488b43205bffe0")

def page_length(text: bytes) -> int:
    size = TEXT + len(text) + 1
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


def build_page(page: int, addresses: dict[str, int], text: bytes) -> bytes:
    """The page's contents, for a page mapped at address `page`."""
    if b"\0" in text:
        raise ValueError("stage-1 text must not contain NUL bytes")
    length = page_length(text)
    values = dict(addresses, text=page + TEXT, page=page, length=length)
    missing = [f for f in _FIELDS if f not in values]
    if missing:
        raise KeyError("missing addresses: %s" % ", ".join(missing))
    blob = bytearray(length)
    blob[THREAD_ENTRY:THREAD_ENTRY + len(_THREAD_CODE)] = _THREAD_CODE
    blob[PENDING_ENTRY:PENDING_ENTRY + len(_PENDING_CODE)] = _PENDING_CODE
    blob[DATA:DATA + 8 * len(_FIELDS)] = struct.pack("<%dQ" % len(_FIELDS),
                                                     *(values[f] for f in _FIELDS))
    blob[TEXT:TEXT + len(text)] = text
    return bytes(blob)
