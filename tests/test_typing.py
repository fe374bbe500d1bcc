"""mypy --strict holds on the core and the sync engine (STYLE habit 9)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_strict_on_core_and_sync() -> None:
    packages = [p for p in ("keyworker_app", "sync") if (ROOT / p).is_dir()]
    result = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-error-summary",
                             *[arg for p in packages for arg in ("-p", p)]],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
