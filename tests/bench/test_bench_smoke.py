"""``fireside bench --quick`` runs end to end on the real model and writes sane reports.

Benchmarks are not tests: nothing here asserts a speed. This proves every section runs
(a real model, a real server on 127.0.0.1, real HTTP clients) and that the JSON and
Markdown outputs hold what the README promises. When llama.cpp's reference tools are not
built (``benchmarks/build_reference.py``), the run measures fireside's side only.
"""

from __future__ import annotations

import copy
import json
import math
import statistics
import subprocess
import sys
from collections.abc import Callable
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


# -- pooling runs ------------------------------------------------------------------------


def _pool(files: list[Path], out: Path) -> subprocess.CompletedProcess[str]:
    cmd = [*_bench_command(), "--out", str(out)]
    for f in files:
        cmd += ["--pool", str(f)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def _variant(results: dict, tmp_path: Path, name: str, change: Callable[[dict], None]) -> Path:
    data = copy.deepcopy(results)
    change(data)
    path = tmp_path / name / "bench.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_pooled_runs_concatenate_rounds_and_judge_the_pooled_ratios(
    quick_run: tuple[dict, Path], tmp_path: Path
) -> None:
    results, out = quick_run
    last, first = (
        results["ratio_inputs"]["chat.ttft_last_over_first"][side] for side in ("ours", "reference")
    )

    def slower_last_turns(data: dict) -> None:  # a second run whose last turns took 3x
        data["figures"][last]["samples"] = [3 * t for t in data["figures"][last]["samples"]]

    second = _variant(results, tmp_path, "second", slower_last_turns)
    done = _pool([out / "bench.json", second], tmp_path / "pooled")
    assert done.returncode == 0, done.stderr
    pooled = json.loads((tmp_path / "pooled" / "bench.json").read_text(encoding="utf-8"))
    figures = pooled["figures"]
    n = results["figures"][first]["n"]
    assert figures[first]["n"] == figures[last]["n"] == 2 * n
    assert pooled["config"]["runs"] == 2 * results["config"]["runs"]
    # the median of the per-round ratios of both runs, rounds paired within each run
    a, b = results["figures"][last]["samples"], results["figures"][first]["samples"]
    expected = statistics.median([x / y for x, y in zip(a, b)] + [3 * x / y for x, y in zip(a, b)])
    assert pooled["ratios"]["chat.ttft_last_over_first"] == pytest.approx(expected)
    target = next(t for t in pooled["targets"] if t["key"] == "chat.ttft_last_over_first")
    assert target["value"] == pytest.approx(expected)
    assert target["met"] is (expected <= target["threshold"])
    assert "pooled from 2 runs" in (tmp_path / "pooled" / "bench.md").read_text(encoding="utf-8")


def test_runs_that_do_not_pool_are_one_clear_error(
    quick_run: tuple[dict, Path], tmp_path: Path
) -> None:
    results, out = quick_run
    other = _variant(results, tmp_path, "threads", lambda d: d["config"].update(threads=7))
    done = _pool([out / "bench.json", other], tmp_path / "pooled")
    assert done.returncode == 2 and "measured with threads 7" in done.stderr
    junk = tmp_path / "junk.json"
    junk.write_text("{}", encoding="utf-8")
    done = _pool([out / "bench.json", junk], tmp_path / "pooled")
    assert done.returncode == 2 and "junk.json: not a fireside benchmark result" in done.stderr
    for name, spoil in (
        ("cut", lambda d: d.pop("targets")),
        ("bad-samples", lambda d: d["figures"][next(iter(d["figures"]))].update(samples="x")),
    ):
        spoilt = _variant(results, tmp_path, name, spoil)
        done = _pool([out / "bench.json", spoilt], tmp_path / "pooled")
        assert done.returncode == 2 and f"{name}/bench.json: a" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    done = _pool([out / "bench.json"], tmp_path / "pooled")
    assert done.returncode == 2 and "at least two" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "pooled" / "bench.json").exists()


def test_a_run_without_ratio_inputs_pools_its_comparison_table(
    quick_run: tuple[dict, Path], tmp_path: Path
) -> None:
    results, out = quick_run
    older = _variant(results, tmp_path, "older", lambda d: d.pop("ratio_inputs"))
    done = _pool([out / "bench.json", older], tmp_path / "pooled")
    assert done.returncode == 0, done.stderr
    pooled = json.loads((tmp_path / "pooled" / "bench.json").read_text(encoding="utf-8"))
    assert "chat.ttft_last_over_first" not in pooled["ratios"]
    assert any("not pooled" in note and "chat.ttft" in note for note in pooled["notes"])
    for row in results["comparisons"]:  # what the table divides still pools
        if row["reference"] and results["ratios"].get(row["ratio"]) is not None:
            assert pooled["ratios"][row["ratio"]] is not None
