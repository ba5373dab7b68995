"""``fireside bench --quick`` runs end to end on the real model and writes sane reports.

Benchmarks are not tests: nothing here asserts a speed. This proves every section runs
(a real model, a real server on 127.0.0.1, real HTTP clients) and that the JSON and
Markdown outputs hold what the README promises. When llama.cpp's reference tools are not
built (``benchmarks/build_reference.py``), the run measures fireside's side only.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from fireside.bench.suite import SECTIONS, TARGETS


def _bench_command() -> list[str]:
    """``fireside bench``, run as the installed script would run it."""
    return [sys.executable, "-m", "fireside.cli", "bench"]


@pytest.fixture(scope="module")
def quick_run(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("bench")
    cmd = [*_bench_command(), "--quick", "--model", str(model_path), "--threads", "2"]
    cmd += ["--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "bench.json").read_text(encoding="utf-8")), out


def test_every_section_ran(quick_run: tuple[dict, Path]) -> None:
    results, _ = quick_run
    failed = {k: v for k, v in results["skipped"].items() if k != "reference"}
    assert failed == {}, results["notes"]
    assert results["config"]["quick"] is True
    assert results["config"]["threads"] == 2
    assert results["config"]["sections"] == list(SECTIONS)


def test_figures_are_positive_and_finite(quick_run: tuple[dict, Path]) -> None:
    results, _ = quick_run
    figures = results["figures"]
    expected = [
        "ours.import_s",
        "ours.load_s",
        "ours.rss_after_load",
        "ours.decode.pp",
        "ours.decode.tg",
        "ours.generate.greedy",
        "ours.generate.typical",
        "ours.chat.ttft.turn1",
        "ours.chat.ttft.turn3",
        "server.aggregate.c1",
        "server.aggregate.c2",
        "server.wall.c2",
        "server.aggregate.c8",
        "parallel.aggregate.c1",
        "parallel.aggregate.c8",
    ]
    for key in expected:
        fig = figures[key]
        assert fig["n"] >= 1, key
        assert fig["median"] is not None and math.isfinite(fig["median"]), key
        assert fig["median"] > 0, key
        assert fig["min"] <= fig["median"] <= fig["max"], key
    assert figures["model.file_bytes"]["median"] == Path(results["model"]["path"]).stat().st_size
    # RSS holds at least Python itself and never exceeds the machine
    ram = results["machine"]["ram_bytes"]
    assert 10e6 < figures["ours.rss_after_load"]["median"] < ram


def test_reference_side_when_built(quick_run: tuple[dict, Path]) -> None:
    results, _ = quick_run
    figures, ratios = results["figures"], results["ratios"]
    if results["reference_dir"] is None:
        assert "reference" in results["skipped"]
        assert ratios.get("decode.pp") is None
        return
    for key in ("reference.bench.pp", "reference.bench.tg", "reference.completion.greedy"):
        assert figures[key]["median"] > 0, key
    for key in (
        "decode.pp",
        "decode.tg",
        "generate.greedy",
        "generate.typical",
        "server.c2_vs_batched",
        "parallel.c8_vs_batched",
    ):
        assert ratios[key] is not None and 0 < ratios[key] < 100, key
    if (Path(results["reference_dir"]) / "llama-server").is_file():
        assert figures["reference.llama_server.c8"]["median"] > 0
        assert 0 < ratios["server.c8_vs_llama_server"] < 100


def test_targets_and_markdown(quick_run: tuple[dict, Path]) -> None:
    results, out = quick_run
    assert [t["key"] for t in results["targets"]] == [t.key for t in TARGETS]
    by_key = {t["key"]: t for t in results["targets"]}
    for key in ("chat.ttft_last_over_first", "rss.overhead_mb", "import_s"):
        assert by_key[key]["value"] is not None, key
        assert by_key[key]["met"] in (True, False), key
    md = (out / "bench.md").read_text(encoding="utf-8")
    assert md.startswith("# fireside benchmark")
    for heading in ("## Against llama.cpp", "## Targets", "## All figures"):
        assert heading in md
    assert "generate() greedy" in md
    assert results["model"]["name"] in md
    if results["reference_dir"] is None:
        assert results["skipped"]["reference"] in md


def test_plot_written_when_matplotlib_is_installed(quick_run: tuple[dict, Path]) -> None:
    pytest.importorskip("matplotlib")
    _, out = quick_run
    png = out / "concurrency.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sections", "decode,warp"], "unknown section(s) warp"),
        (["--reference-dir", "."], "does not hold llama-bench"),
        (["--model", "/no/such/model.gguf"], "no/such/model.gguf"),
    ],
)
def test_bad_input_is_one_clear_error(args: list[str], message: str, tmp_path: Path) -> None:
    cmd = [*_bench_command(), "--quick", "--out", str(tmp_path), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "bench.json").exists()
