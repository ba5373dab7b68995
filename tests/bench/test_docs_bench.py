"""``fireside bench --quick --sections docs.index,docs.search,docs.update`` runs end to end.

Real files (manual pages, Debian docs, Python's library), the real all-MiniLM-L6-v2
embedder (converted here), a real collection; nothing asserts a speed. When
``llama-embedding`` is built (``benchmarks/build_reference.py``) the indexing figure has
its reference side too.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fireside.bench.docs import DOCS_SECTIONS, parse_llama_embedding
from fireside.bench.reference import ReferenceError

from tests.conftest import obtain_minilm


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fireside.hub.convert import convert_model

    out = tmp_path_factory.mktemp("minilm") / "all-MiniLM-L6-v2-F16.gguf"
    return convert_model(obtain_minilm(), out, out_type="f16")


@pytest.fixture(scope="module")
def docs_run(model_path: Path, embedder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("docs-bench")
    cmd = [sys.executable, "-m", "fireside.cli", "bench", "--quick", "--threads", "2"]
    cmd += ["--model", str(model_path), "--embedder", str(embedder), "--out", str(out)]
    cmd += ["--sections", ",".join(DOCS_SECTIONS)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "bench.json").read_text(encoding="utf-8"))


def test_every_docs_section_ran_with_positive_figures(docs_run: dict) -> None:
    failed = {k: v for k, v in docs_run["skipped"].items() if k.startswith("docs.")}
    assert failed == {} or set(failed) == {"docs.index.reference"}, docs_run["notes"]
    figures = docs_run["figures"]
    for key in (
        "ours.docs.index.chunks_per_s",
        "ours.docs.index.tokens_per_s",
        "ours.docs.embed.chunks_per_s",
        "ours.docs.search.hybrid.1.5k.p50",
        "ours.docs.search.hybrid.1.5k.p95",
        "ours.docs.search.keyword.1.5k.p50",
        "ours.docs.search.vector.1.5k.p50",
        "ours.docs.update.one_changed_s",
        "ours.docs.update.none_changed_s",
    ):
        fig = figures[key]
        assert fig["n"] >= 1 and math.isfinite(fig["median"]) and fig["median"] > 0, key
    assert figures["docs.search.chunks"]["median"] >= 1500
    assert figures["docs.update.files"]["median"] == 60
    # update() found exactly the one changed file (else a note says what it found)
    assert not [n for n in docs_run["notes"] if "expected 1 updated" in n]
    by_key = {t["key"]: t for t in docs_run["targets"]}
    for key in ("docs.search.hybrid_p50_ms", "docs.update_s"):
        assert by_key[key]["met"] in (True, False), key


def test_reference_side_when_built(docs_run: dict) -> None:
    figures, ratios = docs_run["figures"], docs_run["ratios"]
    if "reference.embedding.chunks_per_s" not in figures:
        assert docs_run["reference_dir"] is None or "docs.index.reference" in docs_run["skipped"]
        return
    assert figures["reference.embedding.chunks_per_s"]["median"] > 0
    # llama-embedding embedded the same texts: about as many tokens as fireside counted
    # (its prompt file splitting trims a few characters at chunk edges)
    tokens = figures["reference.embedding.tokens"]["median"]
    note = next(n for n in docs_run["notes"] if n.startswith("docs.index:"))
    ours = int(re.search(r"(\d+) tokens;", note).group(1))  # type: ignore[union-attr]
    assert abs(tokens - ours) <= 0.01 * ours, note
    assert 0 < ratios["docs.index"] < 100


def test_llama_embedding_output_is_parsed_or_refused() -> None:
    line = (
        "0.00.127.368 I llama_perf_context_print: prompt eval time =       5.72 ms /     9 "
        "tokens (    0.64 ms per token,  1572.33 tokens per second)\n"
    )
    assert parse_llama_embedding(line) == (5.72, 9)
    with pytest.raises(ReferenceError, match="prompt eval time"):
        parse_llama_embedding("no counters here")


def test_unknown_docs_section_is_one_clear_error(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "fireside.cli", "bench", "--quick", "--out", str(tmp_path)]
    cmd += ["--sections", "docs.nope"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0
    assert "unknown section(s) docs.nope" in done.stderr
    assert "Traceback" not in done.stderr
