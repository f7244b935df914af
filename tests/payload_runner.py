"""Run every evaluator case under the interpreter running this script.

Usage: ``python3.X -I -S tests/payload_runner.py`` (standard library only; the
repository root is put on sys.path here, since -I ignores the environment).
Prints one JSON document: the interpreter's version, each case's outcome, and
the target-state fingerprint taken before and after all the cases.
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from payloads.evaluator import EvalOptions, Scope, evaluate  # noqa: E402
from payloads.snapshot import snapshot  # noqa: E402
from tests import payload_cases  # noqa: E402


def main():
    scope = payload_cases.build_scope()
    before = payload_cases.fingerprint()
    outcomes = []
    for case in payload_cases.CASES:
        outcome = payload_cases.run_case(evaluate, Scope, EvalOptions, snapshot, scope, case)
        outcome["matches"] = payload_cases.matches(case, outcome, snapshot)
        outcomes.append(outcome)
    after = payload_cases.fingerprint()
    json.dump({"python": list(sys.version_info[:3]), "outcomes": outcomes,
               "fingerprint_before": before, "fingerprint_after": after},
              sys.stdout, default=repr)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
