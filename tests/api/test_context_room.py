"""One owner of how a context is shared by a prompt and its reply
(``fireside.generation.context_room``): Model's truncation, a chat session's overflow and
the engine's cap all leave the room it says."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fireside.errors import ContextLengthError
from fireside.generation.context_room import prompt_fits, reply_limit, reply_reserve
from fireside.model import Model

N_CTX = 256


@pytest.fixture(scope="module")
def small(model_path: Path) -> Iterator[Model]:
    with Model(model_path, n_ctx=N_CTX, n_threads=1) as model:
        yield model


def test_the_reserve_and_the_limit() -> None:
    assert prompt_fits(256, 255) and not prompt_fits(256, 256)
    assert reply_reserve(256, None) == reply_reserve(256, 0) == 64  # a quarter
    assert reply_reserve(256, 100) == 100
    assert reply_reserve(256, 1000) == 128  # at most half
    assert reply_reserve(1, None) == 1  # at least one token
    assert reply_limit(256, 200, None) == 56
    assert reply_limit(256, 200, 10) == 10
    assert reply_limit(256, 200, 100) == 56
    assert reply_limit(256, 300, 5) == 0


@pytest.mark.parametrize("max_tokens", [None, 100, 1000])
def test_a_truncated_prompt_leaves_the_reserve(small: Model, max_tokens: int | None) -> None:
    bos = small.core.bos
    prompt = [t for t in range(1000, 1400) if t != bos]
    kept = small.fit_prompt(prompt, max_tokens, truncate=True)
    assert kept == prompt[len(prompt) - len(kept) :]  # the end of the prompt
    assert len(kept) == N_CTX - reply_reserve(N_CTX, max_tokens)


@pytest.mark.parametrize("max_tokens", [None, 100])
def test_a_session_that_overflows_names_the_same_reserve(
    small: Model, max_tokens: int | None
) -> None:
    session = small.chat_session(overflow="error")
    with pytest.raises(ContextLengthError) as info:
        session.send("tea " * (N_CTX - 60), max_tokens=max_tokens)
    assert f"room for {reply_reserve(N_CTX, max_tokens)} more" in str(info.value)


def test_a_prompt_that_leaves_no_room_is_refused_alike(small: Model) -> None:
    """Model and its engine refuse the first prompt length that leaves no reply token."""
    fits = [t for t in range(1000, 1000 + N_CTX - 1) if t != small.core.bos]
    assert small.fit_prompt(fits, None, truncate=False) == fits
    full = [*fits, fits[-1]]
    with pytest.raises(ContextLengthError):
        small.fit_prompt(full, None, truncate=False)
    engine = small._generation_engine()
    assert not prompt_fits(engine.n_ctx_seq, len(full))
    result = small.generate(fits, max_tokens=5, temperature=0)  # the engine admits it
    assert result.usage.completion_tokens == 1


def test_a_reply_is_capped_by_the_room_left(small: Model) -> None:
    prompt = [t for t in range(1000, 1000 + N_CTX - 3) if t != small.core.bos]
    result = small.generate(prompt, max_tokens=50, temperature=0)
    assert result.usage.completion_tokens <= reply_limit(N_CTX, len(prompt), 50) == 3
