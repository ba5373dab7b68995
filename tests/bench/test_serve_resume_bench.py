"""The ``serve-resume`` benchmark section is asked for by name only, with its target."""

from __future__ import annotations

import os
import time
from pathlib import Path

from fireside.bench.suite import ALL_SECTIONS, SECTIONS, SERVE_RESUME_TARGETS, BenchConfig, Suite


def test_serve_resume_is_opt_in_with_its_target(tmp_path: Path) -> None:
    assert "serve-resume" not in SECTIONS and "serve-resume" in ALL_SECTIONS
    keys = {t.key for t in SERVE_RESUME_TARGETS}
    plain = BenchConfig(model=Path(os.devnull), threads=1, out=tmp_path)
    assert not keys & {t["key"] for t in Suite(plain).results({}, {}, time.time())["targets"]}
    asked = BenchConfig(model=Path(os.devnull), threads=1, out=tmp_path, sections=("serve-resume",))
    assert keys <= {t["key"] for t in Suite(asked).results({}, {}, time.time())["targets"]}
