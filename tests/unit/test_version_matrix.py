"""The version matrix cannot shrink quietly (issue 11, "Done when").

Every CPython 3.8-3.13 the machine has (pyenv's versions, python3.X on PATH)
and Debian's /usr/bin/python3 must be in the matrix the suite runs on. A
discovery that loses one (a moved pyenv root, a renamed binary, an
INSPECTOR_TEST_PYTHONS that leaves one out) fails here, and the conftest
hook fails the session if any test was skipped for an interpreter the
machine has.
"""
from __future__ import annotations

import subprocess

from tests.pythons import interpreters, machine_interpreters, matrix_gaps


def test_no_interpreter_the_machine_has_is_left_out():
    gaps = matrix_gaps()
    assert gaps == [], ("the machine has %s but the test matrix would skip them: fix "
                        "tests/pythons.py discovery or INSPECTOR_TEST_PYTHONS"
                        % ", ".join("%s (%s)" % (g, machine_interpreters()[g]) for g in gaps))


def test_every_interpreter_in_the_matrix_runs():
    for interp in interpreters():
        if interp.path is None:
            continue
        out = subprocess.run([interp.path, "-I", "-S", "-c",
                              "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, (interp, out.stderr)
        if interp.label != "system":
            assert out.stdout.strip() == interp.label, (interp, out.stdout)


def test_the_system_python_is_in_the_matrix_when_present():
    if "system" in machine_interpreters():
        assert any(i.label == "system" and i.path for i in interpreters()) or \
            "system" not in matrix_gaps()
