"""Model: loading, defaults, properties, tokenizer helpers, close, and bad arguments."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fireside.defaults import MAX_DEFAULT_N_CTX, physical_cores
from fireside.errors import ClosedError, ModelLoadError
from fireside.model import Model


@pytest.fixture(scope="module")
def model(model_path: Path) -> Iterator[Model]:
    with Model(model_path, n_ctx=1024, n_threads=1) as m:
        yield m


def test_defaults_suit_the_machine(model_path: Path) -> None:
    with Model(model_path) as m:
        assert m.n_threads == physical_cores()
        assert m.n_ctx == min(m.core.n_ctx_train, MAX_DEFAULT_N_CTX)
        assert m.closed is False


def test_properties(model: Model, model_path: Path) -> None:
    assert model.path == model_path
    assert model.name == "SmolLM2-135M-Instruct.Q4_1"
    assert model.n_ctx == 1024
    assert model.n_threads == 1
    assert model.metadata["general.architecture"] == "llama"
    assert "n_ctx=1024" in repr(model)
    assert model.chat_template.render([{"role": "user", "content": "hi"}]).endswith(
        "<|im_start|>assistant\n"
    )


def test_tokenize_detokenize_count(model: Model) -> None:
    text = "Hello, world! 你好 🍕"
    tokens = model.tokenize(text)
    assert model.detokenize(tokens) == text
    assert model.count_tokens(text) == len(model.tokenize(text, add_special=False))
    # special tokens are text unless parse_special
    assert len(model.tokenize("<|im_end|>")) > 1
    assert model.tokenize("<|im_end|>", parse_special=True) == [model.core.eos]
    assert model.detokenize([model.core.eos]) == ""
    assert model.detokenize([model.core.eos], special=True) == "<|im_end|>"


def test_tokenizer_bad_input(model: Model) -> None:
    with pytest.raises(TypeError, match="text must be a str"):
        model.tokenize(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sequence of token ids"):
        model.detokenize("abc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"tokens\[1\] = -5 is not a token id"):
        model.detokenize([1, -5])
    with pytest.raises(ValueError, match="is not a token id"):
        model.detokenize([model.core.n_vocab])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_ctx": 0}, "n_ctx must be a positive integer"),
        ({"n_threads": -2}, "n_threads must be a positive integer"),
        ({"n_batch": 0}, "n_batch must be a positive integer"),
        ({"n_gpu_layers": -3}, "n_gpu_layers must be"),
        ({"device": "no-such-device"}, "unknown device 'no-such-device'"),
    ],
)
def test_bad_options(model_path: Path, options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Model(model_path, **options)  # type: ignore[arg-type]


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises((FileNotFoundError, LookupError)):
        Model(tmp_path / "missing.gguf")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"this is not a model" * 10)
    with pytest.raises(ModelLoadError):
        Model(junk)
    with pytest.raises(TypeError, match="model must be a path"):
        Model(42)  # type: ignore[arg-type]


def test_close_is_idempotent_and_final(model_path: Path) -> None:
    m = Model(model_path, n_ctx=256, n_threads=1)
    assert m.generate("Hi", max_tokens=1, temperature=0).usage.completion_tokens <= 1
    m.close()
    m.close()
    assert m.closed
    assert "closed" in repr(m)
    with pytest.raises(ClosedError):
        m.generate("Hi", max_tokens=1)
    with pytest.raises(ClosedError):
        m.tokenize("Hi")


def test_embedding_only_model_generates_on_demand(model_path: Path) -> None:
    with Model(model_path, n_ctx=256, n_threads=1, embedding=True) as m:
        assert m.embed("hello").shape == (m.core.n_embd,)
        assert m.generate("Hi", max_tokens=2, temperature=0).finish_reason in ("length", "eos")
