"""The ``parallel`` bench section (threads on one ``Model(n_parallel=8)``) and the server
section's ``llama-server`` side: the section runs on the real model with quick settings and
yields its figures, ratios and targets; llama-server gets the threads it is given."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from fireside.bench.clients import ClientError
from fireside.bench.llama_server import LlamaServerBench
from fireside.bench.parallel import STREAMS, ParallelBench
from fireside.bench.report import markdown
from fireside.bench.serving import ServerBench
from fireside.bench.suite import SECTIONS, TARGETS, BenchConfig, Suite


def test_parallel_is_measured_by_default_with_its_targets() -> None:
    assert "parallel" in SECTIONS
    keys = {t.key for t in TARGETS}
    assert {"parallel.c8_vs_c1", "parallel.c8_vs_batched"} <= keys
    assert {"server.c8_vs_llama_server", "generate.typical"} <= keys


def test_threads_generate_exactly_the_tokens_asked(model_path: Path) -> None:
    bench = ParallelBench(model_path, threads=1, parallel=STREAMS, prompt_tokens=8, max_tokens=6)
    try:
        assert bench.model.n_parallel == STREAMS
        for n in (1, STREAMS):
            got = bench.round(n)
            assert got.n == n and got.tokens == [6] * n
            assert got.steady_tokens_per_second > 0 and got.wall_tokens_per_second > 0
        with pytest.raises(ValueError, match="n_parallel=8"):
            bench.round(STREAMS + 1)
    finally:
        bench.close()
    with pytest.raises(ClientError, match="failed"):  # a closed model: every thread fails
        bench.round(2)


def test_the_section_runs_quick_and_yields_its_figures(model_path: Path, tmp_path: Path) -> None:
    config = BenchConfig.quick_config(
        model_path,
        1,
        tmp_path,
        sections=("parallel",),
        server_prompt_tokens=8,
        server_tokens=6,
    )
    suite = Suite(config)
    results = suite.run()
    assert results["skipped"].get("parallel") is None, results["notes"]
    for key in ("parallel.aggregate.c1", "parallel.aggregate.c8", "parallel.wall.c8"):
        fig = suite.figures[key]
        assert fig.n == 1 and fig.median is not None and math.isfinite(fig.median), key
        assert fig.median > 0, key
    assert results["ratios"]["parallel.c8_vs_c1"] is not None
    targets = {t["key"]: t for t in results["targets"]}
    assert targets["parallel.c8_vs_c1"]["met"] in (True, False)
    rows = {row["ratio"]: row for row in results["comparisons"]}
    assert rows["parallel.c8_vs_batched"]["ours"] == "parallel.aggregate.c8"
    if suite.ref is not None:  # llama.cpp's tools are built: the batched-bench side ran
        assert (suite.figures["reference.batched_parallel.s_tg.c8"].median or 0) > 0
        assert targets["parallel.c8_vs_batched"]["met"] in (True, False)
        assert rows["parallel.c8_vs_batched"]["reference"] is not None
    else:
        assert targets["parallel.c8_vs_batched"]["met"] is None
    md = markdown(results, suite.figures)
    assert "8 threads on one Model(n_parallel=8)" in md


def test_llama_server_gets_the_threads_it_is_given(tmp_path: Path) -> None:
    options = {"parallel": 8, "n_ctx": 8 * 256, "prompt_tokens": 8, "max_tokens": 8}
    fixed = LlamaServerBench(tmp_path, tmp_path / "m.gguf", threads=3, **options).command()
    assert fixed[fixed.index("-t") + 1] == "3"
    assert fixed[fixed.index("-np") + 1] == "8" and fixed[fixed.index("-c") + 1] == "2048"
    assert "-t" not in LlamaServerBench(tmp_path, tmp_path / "m.gguf", **options).command()


def test_the_server_section_flips_its_order_each_round(
    model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each round runs batched-bench, llama-server, fireside; the next one the other way
    round (a place in the order must favour neither side)."""
    from fireside.bench import reference
    from fireside.bench.serving import ServerBench

    calls: list[str] = []
    server_round, batched = ServerBench.round, reference.run_batched_bench

    def round_(self: ServerBench, n: int) -> Any:
        calls.append(type(self).__name__)
        return server_round(self, n)

    def batched_bench(*args: Any, **kwargs: Any) -> Any:
        calls.append("batched")
        return batched(*args, **kwargs)

    monkeypatch.setattr(ServerBench, "round", round_)
    monkeypatch.setattr(reference, "run_batched_bench", batched_bench)
    config = BenchConfig.quick_config(
        model_path, 1, tmp_path, sections=("server",), concurrency=[8], runs=2,
        server_prompt_tokens=8, server_tokens=6,
    )  # fmt: skip
    suite = Suite(config)
    results = suite.run()
    assert results["skipped"].get("server") is None, results["notes"]
    if suite.ref is None or not (suite.ref / "llama-server").is_file():
        assert calls == ["ServerBench"] * 3  # fireside's side only
        return
    forth = ["batched", "LlamaServerBench", "ServerBench"]
    assert calls == [*forth, *reversed(forth), *forth]  # a warm-up round, then two
    assert suite.figures["reference.llama_server.c8"].n == 2


def test_the_fireside_server_is_measured_without_speculation(tmp_path: Path) -> None:
    """The references never draft; a lone stream of fireside's would (prompt lookup), which
    would make the 1-stream figure, and so the 8-vs-1 ratio, measure speculation instead."""
    options = {"parallel": 16, "n_ctx": 16 * 256, "prompt_tokens": 8, "max_tokens": 8}
    command = ServerBench(tmp_path / "m.gguf", threads=2, **options).command()
    assert "--no-speculative" in command and "--speculative" not in command
