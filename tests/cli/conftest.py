"""Running the ``fireside`` command as a person would: a subprocess with an isolated,
offline model cache (the test model is passed by path)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "fireside.cli"]


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        FIRESIDE_CACHE_DIR=str(tmp_path / "cache"),
        HF_HOME=str(tmp_path / "hf-home"),
        HF_HUB_OFFLINE="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        PYTHONIOENCODING="utf-8",
        NO_COLOR="1",
        COLUMNS="200",
    )
    env.pop("FIRESIDE_API_KEY", None)
    return env


def fireside(
    env: dict[str, str], *args: str, input: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``fireside ARGS`` and return the finished process (stdout, stderr as text)."""
    return subprocess.run(
        [*CLI, *args],
        input=input,
        check=False,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=timeout,
    )
