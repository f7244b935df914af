"""What the client ships to the target: stage 1, the boot file, module chunks."""

from __future__ import annotations

import ast
import marshal

import pytest

from inspector._bundle import (
    BOOT_DATA_MARKER,
    CHUNK_LINES,
    PAYLOAD_MODULES,
    BootParams,
    payload_chunks,
    payload_source,
    render_boot_file,
)

FUTURE_ANNOTATIONS = 0x1000000


@pytest.mark.parametrize("name", PAYLOAD_MODULES)
def test_chunks_rebuild_the_module_and_compile_alone(name):
    chunks = payload_chunks(name)
    assert "".join(text for _, text in chunks) == payload_source(name)
    line = 1
    for first_line, text in chunks:
        assert first_line == line
        line += text.count("\n")
        # each chunk is whole statements: it compiles by itself, as the loader does it
        compile("\n" * (first_line - 1) + text, name, "exec", FUTURE_ANNOTATIONS,
                dont_inherit=True)
    # compile() holds the target's GIL for a whole chunk: keep every chunk small
    # (the biggest single statement is the Agent class, ~270 lines)
    assert max(t.count("\n") for _, t in chunks) <= 400
    if payload_source(name).count("\n") > 4 * CHUNK_LINES:
        assert len(chunks) >= 3


def test_boot_file_is_valid_python_with_every_module():
    params = BootParams(token="t" * 64, socket_path="/s", boot_path="/b", deadline=1.0,
                        package="_inspector_agent_x", idle_timeout=5, client_uid=0)
    boot = render_boot_file(params)
    code, sep, data = boot.partition(BOOT_DATA_MARKER)
    assert sep and BOOT_DATA_MARKER not in data[:0]
    tree = ast.parse(code)
    call = tree.body[-1].value
    assert call.func.id == "run_boot_data"  # prelude.run_boot_data() reads _BOOT_DATA
    loader, given, sources = marshal.loads(data)  # (LOADER, PARAMS, SOURCES)
    ast.parse(loader)
    assert given["token"] == "t" * 64
    assert set(sources) == set(PAYLOAD_MODULES)
    # The code part is small: compiling it is the target's only long GIL hold
    assert len(code) < 32 * 1024
