"""The payload runs unchanged on every CPython 3.8-3.13 (and imports only what it may).

Each interpreter found by tests/pythons.py runs tests/payload_runner.py under
``-I -S``: every case of tests/payload_cases.py must give the expected outcome
and leave the target-state fingerprint (canary, containers, sys.modules,
builtins) unchanged. A missing interpreter is a visible skip.
"""
from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pythons import interpreters

ROOT = Path(__file__).resolve().parents[2]
PAYLOADS = ROOT / "payloads"
MY_MODULES = ("evaluator.py", "policy.py", "static.py", "snapshot.py", "limits.py", "errors.py",
              "costs.py", "datasafety.py", "operators.py", "callables.py", "query_text.py",
              "query_tree.py")

# Modules a payload may import at runtime. Deliberately short: importing a
# module the target had not imported changes the target (and `collections`,
# `itertools`, `types` are NOT loaded at startup by a bare interpreter).
ALLOWED_IMPORTS = {"sys", "time", "builtins", "__future__", "_thread", "_socket", "os",
                   "errno", "select", "gc", "types", "collections", "itertools", "math",
                   "operator", "struct", "codecs", "signal", "_signal", "_io", "io",
                   "_weakref", "weakref", "marshal", "binascii", "hmac", "hashlib", "_json",
                   "traceback", "linecache", "_collections", "_imp", "posix", "stat"}
FORBIDDEN_IMPORTS = {"inspect", "reprlib", "threading", "socket", "json", "logging",
                     "dataclasses", "typing", "ast", "unicodedata", "pickle", "ctypes"}
# the evaluator's own modules are held to the strictest list
EVALUATOR_IMPORTS = {"sys", "time", "builtins", "__future__"}
# One documented exception: --isolated runs its fork routine and PyOS_AfterFork_Child
# (README "Limits": ctypes is loaded into the target on first isolated query).
EXCEPTIONS = {("isolate.py", "ctypes")}


@pytest.fixture(scope="module")
def runner_outputs():
    """Start the runner under every interpreter at once (they are independent)."""
    procs = {}
    for interp in interpreters():
        if interp.path is not None:
            procs[interp.label] = subprocess.Popen(
                [interp.path, "-I", "-S", str(ROOT / "tests" / "payload_runner.py")],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(ROOT))
    outputs = {}
    for label, proc in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        outputs[label] = (proc.returncode, stdout, stderr)
    return outputs


@pytest.mark.parametrize("interp", interpreters(), ids=lambda i: i.label)
def test_payload_cases_on_interpreter(interp, runner_outputs):
    """Given CPython 3.X, when every case runs, then all outcomes match and nothing changed."""
    if interp.path is None:
        pytest.skip(interp.missing_reason)
    returncode, stdout, stderr = runner_outputs[interp.label]
    assert returncode == 0, stderr[-3000:]
    out = subprocess.CompletedProcess([], returncode, stdout, stderr)
    report = json.loads(out.stdout)
    wrong = [o for o in report["outcomes"] if not o["matches"]]
    assert wrong == [], f"{interp.label}: {len(wrong)} cases differ: {wrong[:5]}"
    assert report["fingerprint_after"] == report["fingerprint_before"]
    assert report["fingerprint_after"]["canary"] == []
    assert out.stderr == ""             # the payload never prints, parsing never warns


def _imports(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, 0
        elif isinstance(node, ast.ImportFrom):
            yield (node.module or ""), node.level


@pytest.mark.parametrize("path", sorted(PAYLOADS.glob("*.py")), ids=lambda p: p.name)
def test_payload_imports_only_stdlib_and_relative(path):
    """Every import in payloads/ is relative or an allowed stdlib module."""
    for module, level in _imports(path):
        if level > 0:
            continue
        top = module.split(".")[0]
        if (path.name, top) in EXCEPTIONS:
            continue
        assert top not in FORBIDDEN_IMPORTS, f"{path.name} imports {module}"
        assert top in ALLOWED_IMPORTS or top in sys.stdlib_module_names, \
            f"{path.name} imports non-stdlib {module}"
        if path.name in MY_MODULES:
            assert top in EVALUATOR_IMPORTS, f"{path.name} imports {module}"


def test_vermin_targets_3_8():
    """vermin finds no construct newer than 3.8 in payloads/."""
    vermin = shutil.which("vermin") or str(Path(sys.executable).parent / "vermin")
    if not Path(vermin).exists():
        pytest.skip("vermin is not installed (pip install vermin)")
    out = subprocess.run([vermin, "--no-tips", "--violations", "-t=3.8-", str(PAYLOADS)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_evaluator_import_leaves_sys_modules_alone():
    """Importing and using the evaluator in a bare interpreter imports no new stdlib module."""
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "before = set(sys.modules)\n"
        "from payloads import evaluator, snapshot\n"
        "evaluator.evaluate('[x * 2 for x in range(3)]', evaluator.Scope({}))\n"
        "snapshot.snapshot({'a': [1, 2]})\n"
        "new = set(sys.modules) - before\n"
        "print(sorted(m for m in new if not m.startswith('payloads')))\n")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    # `from __future__ import annotations` (required by STYLE for 3.8) executes
    # `import __future__` at run time: that one module is known and reported
    # (the loader may serve it without sys.modules); nothing else may appear.
    assert out.stdout.strip() in ("[]", "['__future__']"), out.stdout
