"""What the client ships to the target: stage 1, the boot file, module chunks."""

from __future__ import annotations

import ast
import importlib.util
import marshal
from types import CodeType

import pytest

from inspector._bundle import (
    BOOT_DATA_MARKER,
    CHUNK_LINES,
    FUTURE_ANNOTATIONS,
    PAYLOAD_MODULES,
    BootParams,
    compiled_payloads,
    payload_chunks,
    payload_source,
    render_boot_file,
    render_stage1,
    stage1_code,
)


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
    assert sep
    tree = ast.parse(code)
    assert any(isinstance(node, ast.FunctionDef) and node.name == "run_boot_data"
               for node in tree.body)  # stage 1 calls it after running this code
    given, fixed, magic, built = marshal.loads(data)
    doc = marshal.loads(fixed)
    ast.parse(doc["loader"])
    assert given["token"] == "t" * 64
    assert set(doc["sources"]) == set(PAYLOAD_MODULES)
    assert magic == importlib.util.MAGIC_NUMBER  # by default, this interpreter's code
    assert set(marshal.loads(built)["modules"]) == set(PAYLOAD_MODULES)
    # The code part is small: compiling it is the target's only long GIL hold
    assert len(code) < 32 * 1024


@pytest.mark.parametrize("name", ("prelude", "loader", *PAYLOAD_MODULES))
def test_compiled_code_is_the_source_compiled(name):
    """The code objects shipped to a same-version target are exactly what
    the target would compile from the sources it also gets: same bytecode,
    constants and names in every function, under the agent's file name."""
    compiled = compiled_payloads()
    assert compiled is not None
    blob = compiled[name] if name in ("prelude", "loader") else compiled["modules"][name]
    shipped = marshal.loads(blob)
    if name in ("prelude", "loader"):
        expected = compile(payload_source(name), "<inspector-agent>", "exec", 0, True)
    else:
        expected = compile(payload_source(name), "<inspector-agent:%s>" % name, "exec",
                           FUTURE_ANNOTATIONS, dont_inherit=True)
    assert _code_tree(shipped) == _code_tree(expected)


def _code_tree(code: CodeType) -> list[object]:
    out: list[object] = []
    todo = [code]
    while todo:
        c = todo.pop()
        assert c.co_filename.startswith("<inspector-agent")
        consts = [k for k in c.co_consts if type(k) is not CodeType]
        out.append((c.co_name, c.co_filename, c.co_code, consts, c.co_names, c.co_varnames,
                    c.co_firstlineno, c.co_flags))
        todo.extend(k for k in c.co_consts if type(k) is CodeType)
    return out


def test_stage1_code_is_the_stage1_text_compiled():
    """The code object the native injector's routine runs in place of the
    stage-1 text: the same statement (the inner one compiled too), with this
    attach's deadline and boot path, saying "code" where the text says "text"."""
    params = BootParams(token="t" * 64, socket_path="/s", boot_path="/tmp/inspector-1.2.x/boot",
                        deadline=12345.678, package="_inspector_agent_x", idle_timeout=5,
                        client_uid=0)
    shipped = marshal.loads(stage1_code(params))
    text = render_stage1(params, own_thread=True)
    outer = compile(text, "<string>", "exec", dont_inherit=True)
    inner_text = next(k for k in _all_consts(outer) if type(k) is str and "def go()" in k)
    inner = compile(inner_text.replace(repr("text"), repr("code")), "<string>", "exec",
                    dont_inherit=True)
    inner_shipped = [k for k in _all_consts(shipped) if type(k) is CodeType and
                     k.co_name == "<module>"]
    assert len(inner_shipped) == 1
    assert _stage1_tree(inner_shipped[0]) == _stage1_tree(inner)
    shipped_rest = [k for k in shipped.co_consts if type(k) is not CodeType]
    outer_rest = [k for k in outer.co_consts if type(k) is not CodeType]
    assert shipped_rest == outer_rest
    # this attach's values, not the template's placeholders
    consts = _all_consts(shipped)
    assert 12345.678 in consts and "/tmp/inspector-1.2.x/boot" in consts
    assert not any(type(k) is str and "\0inspector-" in k for k in consts)


def _all_consts(code: CodeType) -> list[object]:
    out: list[object] = []
    todo = [code]
    while todo:
        c = todo.pop()
        out.extend(c.co_consts)
        todo.extend(k for k in c.co_consts if type(k) is CodeType)
    return out


def _stage1_tree(code: CodeType) -> list[object]:
    out: list[object] = []
    todo = [code]
    while todo:
        c = todo.pop()
        consts = [k for k in c.co_consts if type(k) is not CodeType]
        out.append((c.co_name, c.co_code, consts, c.co_names, c.co_varnames, c.co_flags))
        todo.extend(k for k in c.co_consts if type(k) is CodeType)
    return out
