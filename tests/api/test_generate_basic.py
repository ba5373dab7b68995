"""Model.generate: determinism, seeds, streaming, stop strings, UTF-8, logprobs, usage."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from fireside.generation.stream import GenerationStream
from fireside.model import Model

PROMPT = "The capital of France is"
CHAT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def model(model_path: Path) -> Iterator[Model]:
    with Model(model_path, n_ctx=1024, n_threads=1) as m:
        yield m


def test_greedy_is_deterministic(model: Model) -> None:
    first = model.generate(PROMPT, max_tokens=16, temperature=0)
    model.reset()  # also from a cold cache
    second = model.generate(PROMPT, max_tokens=16, temperature=0)
    assert first.text == second.text
    assert first.tokens == second.tokens
    assert first.finish_reason == "length"
    assert len(first.tokens) == 16
    assert first.text.strip()


def test_same_seed_same_output(model: Model) -> None:
    def sample(seed: int) -> list[int]:
        return model.generate(PROMPT, max_tokens=12, temperature=1.2, seed=seed).tokens

    assert sample(7) == sample(7)
    assert len({tuple(sample(s)) for s in (1, 2, 3, 4)}) > 1


def test_model_seed_makes_runs_reproducible(model_path: Path) -> None:
    def run() -> list[str]:
        with Model(model_path, n_ctx=256, n_threads=1, seed=123) as m:
            return [m.generate(PROMPT, max_tokens=6, temperature=1.0).text for _ in range(2)]

    assert run() == run()


def test_streamed_text_equals_result(model: Model) -> None:
    whole = model.generate(PROMPT, max_tokens=20, temperature=0)
    stream = model.generate(PROMPT, max_tokens=20, temperature=0, stream=True)
    assert isinstance(stream, GenerationStream)
    assert stream.result is None
    chunks = list(stream)
    assert "".join(chunks) == whole.text
    assert stream.result is not None
    assert stream.result.text == whole.text
    assert stream.result.tokens == whole.tokens
    assert stream.finish_reason == "length"


def test_eos_ends_a_chat_turn(model: Model) -> None:
    result = model.generate(CHAT, max_tokens=64, temperature=0)
    assert result.finish_reason == "eos"
    assert "Paris" in result.text
    assert "<|im_end|>" not in result.text
    assert model.core.eos not in result.tokens


def test_usage_and_timings(model: Model) -> None:
    result = model.generate(PROMPT, max_tokens=5, temperature=0)
    n_prompt = len(model.tokenize(PROMPT, parse_special=True))
    assert result.usage.prompt_tokens == n_prompt
    assert result.usage.completion_tokens == 5
    assert result.usage.total_tokens == n_prompt + 5
    t = result.timings
    assert 0 <= t.prompt_ms <= t.time_to_first_token_ms
    assert t.generation_ms > 0
    assert t.tokens_per_second > 0


def test_stop_string_spanning_tokens_never_leaks(model: Model) -> None:
    base = model.generate(PROMPT, max_tokens=24, temperature=0)
    pieces = [model.core.token_to_piece(t).decode("utf-8") for t in base.tokens]
    # a stop made of the end of one token and the start of the next
    i = next(
        k
        for k in range(3, len(pieces) - 1)
        if len(pieces[k].strip()) >= 2 and len(pieces[k + 1].strip()) >= 2
    )
    stop = pieces[i][-2:] + pieces[i + 1][:2]
    expected = base.text[: base.text.index(stop)]
    stream = model.generate(PROMPT, max_tokens=24, temperature=0, stop=[stop], stream=True)
    chunks = list(stream)
    assert stream.result is not None
    assert stream.result.finish_reason == "stop"
    assert "".join(chunks) == expected == stream.result.text
    assert all(stop not in c for c in chunks)
    result = model.generate(PROMPT, max_tokens=24, temperature=0, stop=stop)
    assert result.text == expected
    assert result.finish_reason == "stop"


def test_stop_that_never_matches_releases_held_text(model: Model) -> None:
    base = model.generate(PROMPT, max_tokens=12, temperature=0)
    # a stop sharing a prefix with the output end would be held back; it must come out
    stopped = model.generate(PROMPT, max_tokens=12, temperature=0, stop=[base.text[-1] + "\x00"])
    assert stopped.text == base.text
    assert stopped.finish_reason == "length"


def test_multibyte_characters_stream_whole(model: Model) -> None:
    text = "你好，世界！🍕🎉"
    stream = model.generate(
        "Say:", grammar=f'root ::= "{text}"', max_tokens=40, temperature=0, stream=True
    )
    chunks = list(stream)
    assert "".join(chunks) == text
    assert all("\ufffd" not in c for c in chunks)
    assert stream.result is not None
    # the test is only meaningful if some tokens carry part of a character
    broken = 0
    for token in stream.result.tokens:
        try:
            model.core.token_to_piece(token).decode("utf-8")
        except UnicodeDecodeError:
            broken += 1
    assert broken > 0


def test_cut_character_is_dropped_not_broken(model: Model) -> None:
    for n in range(1, 8):
        result = model.generate("Say:", grammar='root ::= "🍕🍕🍕"', max_tokens=n, temperature=0)
        assert "\ufffd" not in result.text
        assert "🍕🍕🍕".startswith(result.text)


def test_logprobs(model: Model) -> None:
    result = model.generate(PROMPT, max_tokens=4, temperature=0, logprobs=3)
    assert result.logprobs is not None
    assert len(result.logprobs) == 4
    for token, lp in zip(result.tokens, result.logprobs):
        assert lp.token == token
        assert lp.logprob <= 0
        assert len(lp.top) == 3
        # greedy: the chosen token is the best alternative
        assert lp.top[0] == (lp.text, pytest.approx(lp.logprob))
        assert [p for _, p in lp.top] == sorted((p for _, p in lp.top), reverse=True)
        assert math.fsum(math.exp(p) for _, p in lp.top) <= 1.0 + 1e-6
    assert model.generate(PROMPT, max_tokens=2, temperature=0).logprobs is None


def test_token_ids_as_prompt(model: Model) -> None:
    tokens = model.tokenize(PROMPT)
    assert (
        model.generate(tokens, max_tokens=8, temperature=0).text
        == model.generate(PROMPT, max_tokens=8, temperature=0).text
    )


def test_max_tokens_zero_only_reads_the_prompt(model: Model) -> None:
    result = model.generate(PROMPT + " a long way", max_tokens=0)
    assert result.text == ""
    assert result.tokens == []
    assert result.finish_reason == "length"
    assert model.stats.last_prompt_tokens_evaluated > 0


def test_callback_can_stop(model: Model) -> None:
    seen: list[tuple[int, str]] = []

    def callback(token: int, text: str) -> bool:
        seen.append((token, text))
        return len(seen) < 3

    params = model.sampling_params(temperature=0)
    result = model.start(PROMPT, params, max_tokens=20, callback=callback).drain()
    assert len(seen) == 3
    assert result.finish_reason == "stop"
    assert result.text == "".join(text for _, text in seen)
