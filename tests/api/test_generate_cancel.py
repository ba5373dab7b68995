"""Cancellation: model.cancel() from another thread, leaving a stream, async task cancel.

No test sleeps: each waits for the engine to report what it waits for (an observer on the
model's engine sets events when a prompt chunk or the first token is done) or for the
thread doing the work, with generous timeouts."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fireside.generation.results import GenerationResult
from fireside.model import Model


@pytest.fixture(scope="module")
def model(model_path: Path) -> Iterator[Model]:
    with Model(model_path, n_ctx=4096, n_threads=1) as m:
        yield m


class EngineEvents:
    """An observer of the model's engine: events set by the thread that generates."""

    def __init__(self) -> None:
        self.stepped = threading.Event()
        """A decode step ran (a chunk of a prompt, or generated tokens)."""
        self.first_tokens = threading.Event()
        """A generation produced its first token."""

    def admitted(self, n_prompt: int, n_cached: int) -> None:
        pass

    def first_token(self, seconds: float) -> None:
        self.first_tokens.set()

    def step(self, n_tokens: int, n_sequences: int) -> None:
        self.stepped.set()

    def finish(self, reason: str, n_completion: int) -> None:
        pass

    def graphs(self, n_graphs: int) -> None:
        pass


@contextmanager
def engine_events(model: Model) -> Iterator[EngineEvents]:
    engine = model._generation_engine()
    events = EngineEvents()
    engine.observer = events
    try:
        yield events
    finally:
        engine.observer = None


def _long_prompt(model: Model, n: int = 2000) -> list[int]:
    tokens = model.tokenize("The quick brown fox jumps over the lazy dog. " * (n // 8))
    assert len(tokens) >= n
    return tokens[:n]


def test_cancel_interrupts_a_long_prompt(model: Model) -> None:
    model.reset()
    tokens = _long_prompt(model)
    before = model.stats.n_generations
    results: list[GenerationResult] = []
    thread = threading.Thread(
        target=lambda: results.append(model.generate(tokens, max_tokens=5, temperature=0))
    )
    with engine_events(model) as events:
        thread.start()
        # cancel once the first prompt chunk is in the cache: the rest is still to come
        assert events.stepped.wait(60), "the prompt never started"
        assert model.stats.n_generations > before
        model.cancel()
        thread.join(timeout=60)
    assert not thread.is_alive(), "the generation did not end after cancel()"
    (result,) = results
    assert result.finish_reason == "cancelled"
    assert result.tokens == []
    assert model.stats.last_prompt_tokens_evaluated < len(tokens)
    # the model works normally afterwards, and from a consistent cache
    after = model.generate("Hello", max_tokens=3, temperature=0)
    model.reset()
    assert model.generate("Hello", max_tokens=3, temperature=0).tokens == after.tokens


def test_cancel_during_generation(model: Model) -> None:
    # greedy, this prompt runs to max_tokens (no EOS) unless cancelled
    stream = model.generate("Once upon a time", max_tokens=200, temperature=0, stream=True)
    chunks = []
    at_cancel = None
    for chunk in stream:
        chunks.append(chunk)
        if len(chunks) == 3:
            canceller = threading.Thread(target=model.cancel)
            canceller.start()
            canceller.join(timeout=60)  # cancel() has returned: the request is marked
            assert not canceller.is_alive(), "cancel() did not return"
            at_cancel = len(chunks)
    assert stream.result is not None
    assert stream.result.finish_reason == "cancelled"
    assert at_cancel is not None
    # the chunks read so far (a token each here), and at most the one being decoded
    assert len(stream.result.tokens) <= at_cancel + 1
    assert "".join(chunks) == stream.result.text


def test_cancel_when_idle_does_not_affect_the_next_generation(model: Model) -> None:
    model.cancel()
    assert model.generate("Hello", max_tokens=3, temperature=0).finish_reason != "cancelled"


def test_leaving_a_stream_stops_decoding(model: Model) -> None:
    before = model.stats.n_generated_tokens
    stream = model.generate("Once upon a time", max_tokens=200, temperature=0, stream=True)
    for i, _ in enumerate(stream):
        if i == 2:
            break
    del stream  # garbage: the generation ends now
    gc.collect()
    assert model.stats.n_generated_tokens - before <= 4
    # and the model is free for the next generation, from this or another thread
    other: list[str] = []
    t = threading.Thread(target=lambda: other.append(model.generate("Hi", max_tokens=2).text))
    t.start()
    t.join(timeout=30)
    assert other


def test_break_then_generate_in_the_same_thread(model: Model) -> None:
    stream = model.generate("Once upon a time", max_tokens=100, temperature=0, stream=True)
    for i, _ in enumerate(stream):
        if i == 1:
            break
    # the abandoned stream still exists; a new generation ends it instead of waiting for it
    assert model.generate("Hi", max_tokens=2, temperature=0).usage.completion_tokens >= 1
    assert stream.result is not None
    assert stream.result.finish_reason == "cancelled"
    assert list(stream) == []
    # the same for reset()
    stream = model.generate("Once upon a time", max_tokens=100, temperature=0, stream=True)
    next(stream)
    model.reset()
    assert stream.finish_reason == "cancelled"


def test_close_and_cancel_on_the_stream(model: Model) -> None:
    stream = model.generate("Once upon a time", max_tokens=100, temperature=0, stream=True)
    next(stream)
    stream.close()
    assert stream.result is not None
    assert stream.result.finish_reason == "cancelled"

    stream = model.generate("Once upon a time", max_tokens=100, temperature=0, stream=True)
    next(stream)
    stream.cancel()
    rest = list(stream)
    assert stream.result is not None
    assert stream.result.finish_reason == "cancelled"
    assert len(rest) <= 1

    never = model.generate("Once upon a time", max_tokens=5, stream=True)
    never.cancel()  # cancelled before it starts: no token is generated
    assert list(never) == []
    assert never.result is not None
    assert never.result.finish_reason == "cancelled"


def test_cancelling_the_async_task_stops_the_generation(model: Model) -> None:
    async def main(events: EngineEvents) -> GenerationResult:
        # greedy, this prompt runs to max_tokens (no EOS) unless cancelled
        prompt = "Once upon a time"
        task = asyncio.create_task(model.agenerate(prompt, max_tokens=400, temperature=0))
        assert await asyncio.to_thread(events.first_tokens.wait, 60), "nothing was generated"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await asyncio.wait_for(model.agenerate("Hi", max_tokens=2), timeout=30)

    before = model.stats.n_generated_tokens
    with engine_events(model) as events:
        result = asyncio.run(main(events))
    assert result.usage.completion_tokens >= 1
    assert model.stats.n_generated_tokens - before < 100
