"""Embeddings: shapes, normalisation, batching into few decodes, long texts, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fireside.embeddings import Embedder
from fireside.errors import ClosedError
from fireside.model import Model


@pytest.fixture(scope="module")
def model(model_path: Path) -> Iterator[Model]:
    with Model(model_path, n_ctx=256, n_threads=1, embedding=True) as m:
        yield m


@pytest.fixture(scope="module")
def embedder(model: Model) -> Iterator[Embedder]:
    with Embedder(model, batch_tokens=128, max_batch_texts=8) as e:
        yield e


def test_shapes_and_normalisation(model: Model) -> None:
    one = model.embed("The cat sat on the mat.")
    assert one.shape == (model.core.n_embd,)
    assert one.dtype == np.float32
    assert np.linalg.norm(one) == pytest.approx(1.0, abs=1e-5)
    many = model.embed(["a", "b", "c"])
    assert many.shape == (3, model.core.n_embd)
    assert np.allclose(np.linalg.norm(many, axis=1), 1.0, atol=1e-5)
    raw = model.embed(["a", "b"], normalize=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    assert model.embed([]).shape == (0, model.core.n_embd)


def test_batched_equals_one_by_one(embedder: Embedder) -> None:
    texts = [
        f"Sentence number {i} is about {topic}."
        for i, topic in enumerate(
            [
                "cats",
                "dogs",
                "rain",
                "music",
                "trains",
                "bread",
                "stars",
                "maths",
                "chess",
                "tea",
                "boats",
                "snow",
            ]
        )
    ]
    before = embedder.n_decodes
    together = embedder.embed(texts)
    decodes = embedder.n_decodes - before
    assert decodes == 2  # 12 short texts, at most 8 per decode
    alone = np.stack([embedder.embed(t) for t in texts])
    # Batch composition changes the quantized kernels' rounding, nothing more: each batched
    # vector is nearest to its own text's, and within rounding noise of it (1 - cosine of
    # 1e-4..4e-4 between evaluations equal in exact arithmetic, on the development machine),
    # while mean-pooled vectors of these similar sentences lie 3e-3 or more apart.
    cosines = together @ alone.T
    assert (cosines.argmax(axis=1) == np.arange(len(texts))).all()
    assert (np.diag(cosines) > 0.998).all()


def test_similar_texts_are_closer(model: Model) -> None:
    a, b, c = model.embed(
        [
            "The weather is sunny and warm today.",
            "Today it is warm and the sun is shining.",
            "The stock market fell sharply on Monday.",
        ]
    )
    assert a @ b > a @ c


def test_long_texts_truncate_or_average(embedder: Embedder) -> None:
    long = "The history of the city goes back many centuries. " * 30
    assert embedder.max_text_tokens == 128
    truncated = embedder.embed(long, long_text="truncate")
    averaged = embedder.embed(long, long_text="average")
    head = embedder.embed(embedder._core.detokenize(embedder._core.tokenize(long)[:128]).decode())
    assert np.allclose(truncated, head, atol=1e-3)
    assert not np.allclose(truncated, averaged, atol=1e-3)
    assert np.linalg.norm(averaged) == pytest.approx(1.0, abs=1e-5)


def test_pooling_choices(embedder: Embedder) -> None:
    mean = embedder.embed("hello world")
    last = embedder.embed("hello world", pooling="last")
    assert mean.shape == last.shape
    assert not np.allclose(mean, last)
    with pytest.raises(ValueError, match="pooling must be None or one of"):
        embedder.embed("x", pooling="rank")


def test_bad_inputs(embedder: Embedder, model: Model) -> None:
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str"):
        embedder.embed(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="texts must be a str or a list"):
        embedder.embed(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"texts\[0\] is empty"):
        embedder.embed([""])
    with pytest.raises(ValueError, match="long_text must be"):
        embedder.embed("x", long_text="mean")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="model must be"):
        Embedder(3.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_batch_texts"):
        Embedder(model, max_batch_texts=0)


def test_embedder_owns_a_model_loaded_from_a_path(model_path: Path) -> None:
    e = Embedder(model_path, batch_tokens=64, n_threads=1)
    assert e.embed(["x", "y"]).shape[0] == 2
    e.close()
    e.close()
    with pytest.raises(ClosedError):
        e.embed("x")
