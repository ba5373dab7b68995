"""The ``speculative`` bench section's parts: llama-lookup's output is read, the section
is opt-in and its targets appear only when it ran (the section itself is smoke-run with
``fireside bench --quick --sections speculative``)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from fireside.bench.reference import ReferenceError, parse_llama_lookup
from fireside.bench.speculative import GROUNDED, TASKS
from fireside.bench.suite import (
    ALL_SECTIONS,
    RESUME_TARGETS,
    SECTIONS,
    SPECULATIVE_TARGETS,
    BenchConfig,
    Suite,
)

LOOKUP_OUTPUT = """
encoded   97 tokens in    0.210 seconds, speed:  461.905 t/s
decoded  129 tokens in    0.512 seconds, speed:  251.953 t/s

n_draft      = 16
n_predict    = 129
n_drafted    = 84
n_accept     = 61
accept       = 72.619%
"""


def test_llama_lookup_speed_is_read() -> None:
    assert parse_llama_lookup(LOOKUP_OUTPUT) == pytest.approx(251.953)
    with pytest.raises(ReferenceError, match="decoded"):
        parse_llama_lookup("main: error: something else")


def test_the_section_is_opt_in_with_its_targets(tmp_path: Path) -> None:
    assert "speculative" not in SECTIONS and "speculative" in ALL_SECTIONS
    assert set(GROUNDED) < set(TASKS) and "free" in TASKS
    keys = {t.key for t in SPECULATIVE_TARGETS}
    plain = BenchConfig(model=Path(os.devnull), threads=1, out=tmp_path)
    assert not keys & {t["key"] for t in Suite(plain).results({}, {}, time.time())["targets"]}
    asked = BenchConfig(model=Path(os.devnull), threads=1, out=tmp_path, sections=("speculative",))
    assert keys <= {t["key"] for t in Suite(asked).results({}, {}, time.time())["targets"]}


def test_resume_is_opt_in_with_its_target(tmp_path: Path) -> None:
    assert "resume" not in SECTIONS and "resume" in ALL_SECTIONS
    asked = BenchConfig(model=Path(os.devnull), threads=1, out=tmp_path, sections=("resume",))
    keys = {t["key"] for t in Suite(asked).results({}, {}, time.time())["targets"]}
    assert {t.key for t in RESUME_TARGETS} <= keys
