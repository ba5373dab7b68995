"""``fireside bench --quick --sections models`` runs end to end: a real ``fireside serve``
loading the real test models on demand, against a bare load in the benchmark's process.
Nothing asserts a speed: the figures exist, are positive, and the targets are checked."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path


def test_the_models_section_runs(model_path: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "fireside.cli", "bench", "--quick", "--threads", "1"]
    cmd += ["--model", str(model_path), "--out", str(tmp_path), "--no-reference"]
    cmd += ["--sections", "models"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "bench.json").read_text())
    assert "models" not in results["skipped"], results["skipped"]
    for key in ("models.cold_ttft_vs_bare", "models.two_vs_alone"):
        value = results["ratios"][key]
        assert value is not None and math.isfinite(value) and value > 0, (key, value)
        (target,) = [t for t in results["targets"] if t["key"] == key]
        assert target["met"] is not None
    assert (tmp_path / "bench.md").read_text().count("models") >= 2
