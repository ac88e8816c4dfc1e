"""Run Python source in a fresh interpreter and read what it prints: for
process-wide settings (the garbage collector, the nice value) that a test
must not change in its own process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def output_of(source: str) -> str:
    """What ``python -c source`` prints, stripped (run from the checkout)."""
    done = subprocess.run(
        [sys.executable, "-c", source],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=ROOT,
    )
    return done.stdout.strip()
