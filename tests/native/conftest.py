"""Fixtures shared by the native-layer tests: one loaded model per session, small contexts.

Contexts default to ``n_threads=1``: on a busy 2-core machine a second OpenMP worker that
spins waiting for a core makes single-token decodes many times slower, and the tests check
results, not speed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fireside import _core


@pytest.fixture(scope="session")
def model(model_path: Path) -> Iterator[_core.Model]:
    """SmolLM2-135M-Instruct, loaded once for the whole session."""
    m = _core.Model(model_path)
    yield m
    m.close()


@pytest.fixture(scope="session")
def gemma(gemma_path: Path) -> Iterator[_core.Model]:
    """Gemma 3 270M (a second architecture with an SPM vocabulary and BOS)."""
    m = _core.Model(gemma_path)
    yield m
    m.close()


def make_context(model: _core.Model, **options: object) -> _core.Context:
    """A small single-threaded context; ``options`` override the defaults."""
    settings: dict[str, object] = {"n_ctx": 512, "n_batch": 512, "n_threads": 1}
    settings.update(options)
    return _core.Context(model, **settings)  # type: ignore[arg-type]


def greedy(ctx: _core.Context, n: int, *, seq_id: int = 0) -> list[int]:
    """Continue ``seq_id`` for ``n`` tokens by argmax over the last decode's last output."""
    sampler = _core.Sampler(ctx.model).add_greedy()
    out: list[int] = []
    for _ in range(n):
        token = sampler.sample(ctx)
        out.append(token)
        ctx.decode([token], seq_ids=seq_id)
    return out


@pytest.fixture
def new_context(model: _core.Model) -> Iterator[Callable[..., _core.Context]]:
    """Factory of small contexts over the session model, all closed after the test."""
    made: list[_core.Context] = []

    def factory(m: _core.Model | None = None, **options: object) -> _core.Context:
        ctx = make_context(m or model, **options)
        made.append(ctx)
        return ctx

    yield factory
    for ctx in made:
        ctx.close()


@pytest.fixture
def ctx(new_context: Callable[..., _core.Context]) -> _core.Context:
    """A fresh 512-token context over the session model."""
    return new_context()


@pytest.fixture
def run_greedy() -> Callable[..., list[int]]:
    """The :func:`greedy` helper, as a fixture so test modules need not import conftest."""
    return greedy
