"""The injection page layout: code fits its read+exec page, data and text follow."""

from __future__ import annotations

import struct

import pytest

from inspector._inject import stub_x86_64 as stub

ADDRESSES = {name: 0x1000 * (i + 1) for i, name in enumerate(
    ("PyGILState_Ensure", "PyRun_SimpleString", "PyGILState_Release", "munmap",
     "pthread_self", "pthread_detach", "pthread_create"))}


def test_layout():
    text = b"print(1)"
    page = 0x7F0000000000
    blob = stub.build_page(page, ADDRESSES, text)
    assert len(blob) == stub.page_length(text) and len(blob) % stub.PAGE_SIZE == 0
    assert stub.PENDING_ENTRY + len(stub._PENDING_CODE) <= stub.CODE_LENGTH
    assert stub.THREAD_ENTRY + len(stub._THREAD_CODE) <= stub.PENDING_ENTRY
    fields = struct.unpack_from("<10Q", blob, stub.DATA)
    assert fields[0] == ADDRESSES["PyGILState_Ensure"]
    assert fields[3] == page + stub.TEXT  # the text pointer
    assert fields[5] == page and fields[6] == len(blob)  # what munmap gets
    assert blob[stub.TEXT:stub.TEXT + len(text) + 1] == text + b"\0"
    # both routines end in `jmp rax` (tail call into munmap)
    assert stub._THREAD_CODE.endswith(b"\xff\xe0")
    assert stub._PENDING_CODE.endswith(b"\xff\xe0")
    assert fields[9] == ADDRESSES["pthread_create"]


def test_refuses_nul_and_missing_addresses():
    with pytest.raises(ValueError):
        stub.build_page(0x1000, ADDRESSES, b"a\0b")
    with pytest.raises(KeyError):
        stub.build_page(0x1000, {}, b"x")


def test_nonzero_spans_rebuild_the_page():
    blob = stub.build_page(0x7F0000000000, ADDRESSES, b"x = 1")
    rebuilt = bytearray(len(blob))
    for offset, chunk in stub.nonzero_spans(blob):
        rebuilt[offset:offset + len(chunk)] = chunk
    assert bytes(rebuilt) == blob
    assert sum(len(c) for _, c in stub.nonzero_spans(blob)) < 1024


def test_code_object_follows_the_text():
    """With stage 1 as a code object, struct data points at it (16-aligned,
    after the NUL-terminated text) and at "__main__"; without it the code
    path's fields are 0 and the routine runs the text."""
    text, code = b"x = 1", b"\xe3" + bytes(range(256)) * 20
    page = 0x7F0000000000
    with pytest.raises(KeyError):  # the code path needs its C functions
        stub.build_page(page, ADDRESSES, text, code)
    addresses = dict(ADDRESSES, **{name: 0x9000 + i for i, name in
                                   enumerate(stub.CODE_PATH_SYMBOLS)})
    blob = stub.build_page(page, addresses, text, code)
    fields = dict(zip(stub._FIELDS, struct.unpack_from("<%dQ" % len(stub._FIELDS), blob,
                                                      stub.DATA), strict=True))
    offset = fields["code"] - page
    assert offset % 16 == 0 and offset > stub.TEXT + len(text)
    assert fields["code_length"] == len(code) and blob[offset:offset + len(code)] == code
    assert fields["length"] == len(blob) == stub.page_length(text, code)
    assert blob[fields["main_name"] - page:].startswith(b"__main__\0")
    assert fields["PyEval_EvalCode"] == addresses["PyEval_EvalCode"]
    plain = dict(zip(stub._FIELDS, struct.unpack_from(
        "<%dQ" % len(stub._FIELDS), stub.build_page(page, ADDRESSES, text), stub.DATA),
        strict=True))
    assert plain["code"] == plain["code_length"] == plain["PyEval_EvalCode"] == 0
