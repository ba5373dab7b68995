"""The hand-written stub ``_core.pyi`` matches the compiled module (mypy's stubtest)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ALLOWLIST = Path(__file__).with_name("stubtest-allowlist.txt")


def test_stubtest_accepts_the_stub() -> None:
    cmd = [sys.executable, "-m", "mypy.stubtest", "fireside._core", "--allowlist", str(ALLOWLIST)]
    result = subprocess.run(
        cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout
