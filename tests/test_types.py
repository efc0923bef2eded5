"""The core's types are checked: ``mypy --strict src/compatgate`` finds nothing (its settings are
in pyproject.toml). Part of the test command, so CI runs the type checker too."""

from __future__ import annotations

import subprocess
import sys

from support import ROOT


def test_the_core_passes_mypy_strict():
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "src/compatgate"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
