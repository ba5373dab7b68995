"""Model.generate: every bad input gets a clear error naming what was wrong."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fireside.errors import ContextLengthError, GrammarError
from fireside.model import Model


@pytest.fixture(scope="module")
def model(model_path: Path) -> Iterator[Model]:
    with Model(model_path, n_ctx=256, n_threads=1) as m:
        yield m


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"temperature": -1}, r"temperature must be in \[0, 2\]"),
        ({"mirostat_tau": 0}, "mirostat_tau must be > 0"),
        ({"top_p": 1.5}, r"top_p must be in \[0, 1\], got 1.5"),
        ({"top_k": -1}, "top_k must be >= 0"),
        ({"min_p": 2}, "min_p must be in"),
        ({"typical_p": 0}, "typical_p must be in"),
        ({"repeat_penalty": 0}, "repeat_penalty must be > 0"),
        ({"repeat_last_n": -2}, "repeat_last_n must be >= -1"),
        ({"frequency_penalty": 3}, "frequency_penalty must be in"),
        ({"presence_penalty": -3}, "presence_penalty must be in"),
        ({"seed": -1}, "seed must be None or an integer"),
        ({"logit_bias": {10**9: 1.0}}, "logit_bias token id 1000000000 is out of range"),
        ({"max_tokens": -1}, "max_tokens must be a non-negative integer"),
        ({"max_tokens": 2.5}, "max_tokens must be a non-negative integer"),
        ({"stop": ""}, r"stop\[0\] is empty"),
        ({"logprobs": -1}, "logprobs must be an integer in"),
        ({"grammar": 'root ::= "a"', "json_schema": {"type": "string"}}, "not both"),
    ],
)
def test_bad_generation_options(model: Model, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        model.generate("Hi", **options)


@pytest.mark.parametrize(
    ("prompt", "error", "message"),
    [
        (None, TypeError, "prompt must be a str or a sequence of token ids, got NoneType"),
        (b"bytes", TypeError, "got bytes"),
        (3.5, TypeError, "got float"),
        (["a", "b"], TypeError, r"prompt\[0\] must be an int token id"),
        ([1, 10**9], ValueError, r"prompt\[1\] = 1000000000 is not a token id"),
        ([], ValueError, "the prompt is empty"),
        ("", ValueError, "the prompt is empty"),
    ],
)
def test_bad_prompts(model: Model, prompt: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        model.generate(prompt)


def test_bad_stop_types(model: Model) -> None:
    with pytest.raises(TypeError, match="stop must be a str or a list of str"):
        model.generate("Hi", stop=5)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"stop\[1\] must be a str"):
        model.generate("Hi", stop=["a", 5])  # type: ignore[list-item]


def test_invalid_grammar(model: Model) -> None:
    with pytest.raises(GrammarError):
        model.generate("Hi", grammar="root ::= (")


def test_prompt_longer_than_context(model: Model) -> None:
    tokens = model.tokenize("word " * 400)
    with pytest.raises(ContextLengthError) as info:
        model.generate(tokens, max_tokens=4)
    assert info.value.n_prompt_tokens == len(tokens)
    assert info.value.n_ctx == 256
    assert str(len(tokens)) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_truncate_keeps_the_end(model: Model) -> None:
    tokens = model.tokenize("word " * 400)
    result = model.generate(tokens, max_tokens=4, temperature=0, truncate=True)
    assert result.usage.prompt_tokens == 256 - 4  # room left for max_tokens
    assert result.usage.completion_tokens <= 4
    kept = model.generate(tokens[-(256 - 4) :], max_tokens=4, temperature=0)
    assert result.tokens == kept.tokens


def test_max_tokens_is_capped_by_the_context(model: Model) -> None:
    tokens = model.tokenize("word " * 253)[:253]
    result = model.generate(tokens, max_tokens=100, temperature=0)
    assert result.finish_reason == "length"
    assert result.usage.completion_tokens == 3
    unlimited = model.generate(tokens, max_tokens=None, temperature=0)
    assert unlimited.usage.completion_tokens == 3


def test_an_unknown_sampling_option_is_named(model: Model) -> None:
    with pytest.raises(TypeError, match="unknown sampling option 'temprature'"):
        model.generate("Hi", temprature=1)  # type: ignore[call-overload]
