"""What one bench run uses: interpreter, repetitions, quick or full."""

from __future__ import annotations

import random
import subprocess
from dataclasses import dataclass, field


@dataclass
class Config:
    python: str  # the interpreter the targets run on
    quick: bool = False
    seed: int = 1
    other_pythons: list[str] = field(default_factory=list)  # for the per-version freeze table
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def reps(self, full: int, quick: int) -> int:
        return quick if self.quick else full


def python_version(python: str) -> str:
    out = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"],
                         capture_output=True, text=True, timeout=30)
    return out.stdout.strip() or "?"
