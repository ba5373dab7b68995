"""How a stream ends when its reader stops early: the result always describes what the
reader received (text, tokens and usage agree), even when the engine had run ahead of it
(another thread's steps queued more chunks) or when the stream was closed from inside a
step (a garbage collection there), and its done callbacks always run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fireside.generation.engine import Engine
from fireside.generation.results import GenerationResult
from fireside.generation.sampling import SamplingParams, build_sampler
from fireside.generation.stream import GenerationStream, StreamRequest
from fireside.generation.threads import ThreadPolicy
from fireside.model import Model

FIRST = "Once upon a time, in a small village by the sea,"
SECOND = "The three primary colours are"
AHEAD = 10
"""Chunks the neighbour reads while the first stream's reader waits (each step it drives
also generates a token of the first stream, which queues up unread)."""


@pytest.fixture(scope="module")
def model(model_path: Path) -> Iterator[Model]:
    with Model(model_path, n_ctx=256, n_threads=1, n_parallel=2) as m:
        yield m


def greedy(model: Model, prompt: str) -> list[int]:
    return model.generate(prompt, max_tokens=30, temperature=0).tokens


def agrees(model: Model, result: GenerationResult, full: list[int]) -> None:
    assert result.tokens == full[: len(result.tokens)]
    assert model.detokenize(result.tokens) == result.text
    assert result.usage.completion_tokens == len(result.tokens)


def run_ahead(model: Model) -> None:
    """Read ``AHEAD`` chunks of a neighbour: its steps generate for every slot."""
    neighbour = model.generate(SECOND, max_tokens=30, temperature=0, stream=True)
    for _ in range(AHEAD):
        next(neighbour)
    neighbour.close()


def test_a_callback_that_stops_drops_the_queued_tokens_too(model: Model) -> None:
    full = greedy(model, FIRST)
    calls: list[tuple[int, str]] = []

    def stop_at_once(token: int, text: str) -> bool:
        calls.append((token, text))
        return False

    params = model.sampling_params(temperature=0)
    stream = model.start(FIRST, params, max_tokens=30, callback=stop_at_once)
    first = next(stream)
    run_ahead(model)
    assert list(stream) == []  # the callback ran on the first chunk and stopped the reply
    result = stream.result
    assert result is not None
    assert calls == [(result.tokens[-1], first)]
    assert result.text == first
    assert result.finish_reason == "stop"
    agrees(model, result, full)
    assert len(result.tokens) < AHEAD  # the tokens generated behind it are not reported


def test_closing_a_stream_that_fell_behind_reports_what_it_read(model: Model) -> None:
    full = greedy(model, FIRST)
    stream = model.generate(FIRST, max_tokens=30, temperature=0, stream=True)
    chunks = [next(stream), next(stream)]
    run_ahead(model)
    stream.close()
    result = stream.result
    assert result is not None and result.finish_reason == "cancelled"
    assert result.text == "".join(chunks)
    agrees(model, result, full)
    assert len(result.tokens) < AHEAD


class CloseDuringStep:
    """An engine observer that closes a stream from inside the step that runs now, as a
    garbage collection on the driving thread would."""

    def __init__(self) -> None:
        self.victim: GenerationStream | None = None

    def admitted(self, n_prompt: int, n_cached: int) -> None: ...
    def first_token(self, seconds: float) -> None: ...
    def finish(self, reason: str, n_completion: int) -> None: ...
    def graphs(self, n_graphs: int) -> None: ...

    def step(self, n_tokens: int, n_sequences: int) -> None:
        victim, self.victim = self.victim, None
        if victim is not None:
            victim.close()


def test_a_stream_closed_inside_a_step_still_gets_its_result(model: Model) -> None:
    core = model.core
    observer = CloseDuringStep()
    engine = Engine(core, n_seq=2, n_ctx_seq=256, policy=ThreadPolicy(1), observer=observer)
    try:

        def stream(prompt: str) -> GenerationStream:
            sampler = build_sampler(core, SamplingParams(temperature=0.0), n_ctx=256)
            tokens = core.tokenize(prompt, add_special=True, parse_special=False)
            return GenerationStream(engine, StreamRequest(tokens, sampler, max_tokens=30))

        victim = stream(FIRST)
        first = next(victim)
        ended: list[GenerationResult] = []
        victim.add_done_callback(ended.append)
        observer.victim = victim  # the next step (driven by the other stream) closes it
        other = stream(SECOND)
        assert len(list(other)) > 0
        assert observer.victim is None  # it was closed inside a step
        assert other.result is not None and other.result.finish_reason == "length"
        (result,) = ended  # set when the engine ended it, though nobody waited for it
        assert victim.result is result
        assert result.finish_reason == "cancelled"
        assert result.text == first
        assert core.detokenize(result.tokens).decode() == first
        assert engine.active_slots == 0  # its slot is free again
    finally:
        engine.close()
