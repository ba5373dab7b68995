"""The ``speculative`` bench section's parts: llama-lookup's output is read, the section
is opt-in and its targets appear only when it ran, once each, with issue #17's thresholds
(the section itself is smoke-run with ``python -m fireside.bench --quick --sections
speculative``)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from fireside.bench.reference import ReferenceError, parse_llama_lookup
from fireside.bench.speculative import GROUNDED, TASKS, comparisons
from fireside.bench.suite import (
    ALL_SECTIONS,
    RESUME_TARGETS,
    SECTIONS,
    SPECULATIVE_TARGETS,
    BenchConfig,
    Suite,
)

PROMPT = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n<|im_start|>user\nQuote: the field may be no or binary-targets.<|im_end|>\n"
    "<|im_start|>assistant\n"
)
GENERATED = "The field may be no or binary-targets. The field may be\n"
# what llama-lookup (vendor/llama.cpp/examples/lookup/lookup.cpp) writes: stdout is a blank
# line, the prompt's pieces (special tokens written out), the generated pieces, a blank line
# twice; stderr is its log (recorded from a real run, prompt shortened)
LOOKUP_STDOUT = f"\n\n{PROMPT}{GENERATED}\n\n\n\n"
LOOKUP_STDERR = """0.00.363.047 I cmn          init: llama threadpool init, n_threads = 2
0.09.217.925 I encoded  143 tokens in    2.457 seconds, speed:   76.104 t/s
0.09.217.944 I decoded   44 tokens in    2.596 seconds, speed:   16.952 t/s
0.09.217.958 I 
0.09.217.971 I n_draft      = 16
0.09.217.984 I n_predict    = 44
0.09.217.998 I n_drafted    = 32
0.09.218.012 I t_draft_flat = 0.12 ms
0.09.218.026 I t_draft      = 0.33 ms, 10.34 us per token, 96676.74 tokens per second
0.09.218.040 I n_accept     = 22
0.09.218.053 I accept       = 68.750%
0.09.218.066 I 
target:

0.09.218.080 I common_perf_print:    sampling time =      23.39 ms
0.09.218.138 I common_perf_print:        eval time =    1317.78 ms /    19 runs   (   69.36 ms per token,    14.42 tokens per second)
"""


def test_llama_lookup_output_is_read() -> None:
    run = parse_llama_lookup(LOOKUP_STDERR, LOOKUP_STDOUT, PROMPT)
    assert run.tokens_per_second == pytest.approx(16.952)
    assert (run.n_predict, run.n_drafted, run.n_accepted) == (44, 32, 22)
    assert run.text == GENERATED
    # without the prompt (or with one it did not echo) there is no text to compare
    assert parse_llama_lookup(LOOKUP_STDERR, LOOKUP_STDOUT).text is None
    assert parse_llama_lookup(LOOKUP_STDERR, LOOKUP_STDOUT, "another prompt").text is None
    with pytest.raises(ReferenceError, match="decoded"):
        parse_llama_lookup("main: error: something else")


def test_every_ratio_gets_a_report_row_once_measured() -> None:
    figures = {f"speculative.answer.{side}": object() for side in ("spec", "plain", "completion")}
    rows = {row["ratio"]: row for row in comparisons(figures)}
    assert rows["speculative.answer.vs_completion"]["reference"] == (
        "speculative.answer.completion"
    )
    assert rows["speculative.answer.vs_lookup"]["reference"] is None  # not built: a "-" cell
    assert not any(key.startswith("speculative.free.") for key in rows)
    assert "speculative.answer.always_vs_plain" not in rows  # "always" was not measured


def test_the_section_is_opt_in_with_its_targets(tmp_path: Path) -> None:
    assert "speculative" not in SECTIONS and "speculative" in ALL_SECTIONS
    assert set(GROUNDED) < set(TASKS) and "free" in TASKS
    keys = {t.key for t in SPECULATIVE_TARGETS}
    plain = BenchConfig(model=Path(os.devnull), threads=1, out=tmp_path)
    assert not keys & {t["key"] for t in Suite(plain).results({}, {}, time.time())["targets"]}
    asked = BenchConfig(model=Path(os.devnull), threads=1, out=tmp_path, sections=("speculative",))
    listed = [t["key"] for t in Suite(asked).results({}, {}, time.time())["targets"]]
    assert keys <= set(listed) and len(listed) == len(set(listed))  # each target once
    by_key = {t.key: t for t in SPECULATIVE_TARGETS}
    for task in GROUNDED:
        assert (
            by_key[f"speculative.{task}.vs_completion"].op,
            by_key[f"speculative.{task}.vs_completion"].threshold,
        ) == (">=", 1.5)
    assert (
        by_key["speculative.free.vs_plain"].op,
        by_key["speculative.free.vs_plain"].threshold,
    ) == (">=", 0.97)
    assert by_key["speculative.identical"].threshold == 1.0


def test_resume_is_opt_in_with_its_target(tmp_path: Path) -> None:
    assert "resume" not in SECTIONS and "resume" in ALL_SECTIONS
    asked = BenchConfig(model=Path(os.devnull), threads=1, out=tmp_path, sections=("resume",))
    keys = {t["key"] for t in Suite(asked).results({}, {}, time.time())["targets"]}
    assert {t.key for t in RESUME_TARGETS} <= keys
    assert [(t.op, t.threshold) for t in RESUME_TARGETS] == [("<=", 0.2)]
    assert BenchConfig(model=Path(os.devnull), threads=1, out=tmp_path).resume_tokens == 8000


def test_the_section_runs_and_its_checks_hold(model_path: Path, tmp_path: Path) -> None:
    """The real section, tiny: 8 tokens a task, one round, llama.cpp's tools when built."""
    from fireside.bench.reference import find_reference_dir
    from fireside.bench.speculative import run_speculative

    config = BenchConfig(
        model=model_path,
        threads=1,
        out=tmp_path,
        runs=1,
        warmup=0,
        retries=0,
        speculative_tokens=8,
        sections=("speculative",),
    )
    suite = Suite(config)
    suite.ref = find_reference_dir()
    run_speculative(suite)
    figures = suite.figures
    for task in TASKS:
        for side in ("spec", "always", "plain"):
            assert (figures[f"speculative.{task}.{side}"].median or 0.0) > 0
        assert figures[f"speculative.{task}.identical"].median == 1.0
        assert suite.ratios[f"speculative.{task}.vs_plain"] is not None
        if suite.ref is not None:
            assert figures[f"speculative.{task}.same_as_completion"].median == 1.0
            assert suite.ratios[f"speculative.{task}.vs_completion"] is not None
            if (suite.ref / "llama-lookup").is_file():
                assert figures[f"speculative.{task}.same_as_lookup"].median == 1.0
                assert suite.ratios[f"speculative.{task}.vs_lookup"] is not None
    assert suite.ratios["speculative.identical"] == 1.0
    assert not suite.notes, suite.notes
