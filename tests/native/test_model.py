"""``_core.Model``: loading, properties, metadata, vocabulary and lifetime, on the real models."""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fireside import _core
from fireside.errors import Cancelled, ClosedError, FiresideError, LoadCancelled

PROMPT = "The capital of France is"


def test_properties(model: _core.Model, model_path: Path) -> None:
    assert model.path == str(model_path)
    assert not model.closed
    assert not model.vocab_only
    assert model.architecture == "llama"
    assert "llama" in model.description
    assert model.n_ctx_train == 8192
    assert (model.n_embd, model.n_embd_out) == (576, 576)
    assert (model.n_layer, model.n_head, model.n_head_kv) == (30, 9, 3)
    assert 130_000_000 < model.n_params < 140_000_000
    assert 50_000_000 < model.size <= model_path.stat().st_size
    assert model.has_decoder and not model.has_encoder
    assert model.n_vocab == 49152
    assert model.vocab_type == "bpe"
    assert str(model_path) in repr(model)


def test_metadata(model: _core.Model) -> None:
    meta = model.metadata
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())
    assert meta["general.architecture"] == "llama"
    assert int(meta["llama.block_count"]) == model.n_layer
    assert int(meta["llama.context_length"]) == model.n_ctx_train
    assert int(meta["llama.embedding_length"]) == model.n_embd
    assert meta["tokenizer.ggml.model"] == "gpt2"
    assert int(meta["tokenizer.ggml.eos_token_id"]) == model.eos
    assert meta["tokenizer.chat_template"] == model.chat_template()


def test_chat_template(model: _core.Model) -> None:
    template = model.chat_template()
    assert template is not None
    assert "<|im_start|>" in template and "message['role']" in template
    assert model.chat_template("no-such-variant") is None


def test_special_tokens(model: _core.Model) -> None:
    assert (model.bos, model.eos, model.eot, model.pad, model.sep, model.nl) == (
        1,
        2,
        0,
        2,
        -1,
        198,
    )
    assert not model.add_bos and not model.add_eos
    assert model.token_text(model.bos) == "<|im_start|>"
    assert model.token_text(model.eos) == "<|im_end|>"
    assert model.token_text(model.eot) == "<|endoftext|>"
    assert model.is_eog(model.eos) and model.is_eog(model.eot)
    assert not model.is_eog(model.bos)
    for token in (model.bos, model.eos, model.eot):
        assert model.is_control(token)
        assert model.token_attr(token) & _core.TOKEN_ATTR_CONTROL
    (hello,) = model.tokenize("Hello", add_special=False)
    assert not model.is_eog(hello) and not model.is_control(hello)
    # every end-of-generation id at once, as is_eog answers token by token
    assert model.eog_tokens == [t for t in range(model.n_vocab) if model.is_eog(t)]
    assert {model.eos, model.eot} <= set(model.eog_tokens)


def test_token_text_piece_and_attr(model: _core.Model) -> None:
    hello, world = model.tokenize("Hello world")
    # the vocabulary's text is byte-level BPE; the piece is the bytes it stands for
    assert model.token_text(world) == "Ġworld"
    assert model.token_to_piece(world) == b" world"
    assert model.token_to_piece(world, lstrip=1) == b"world"
    assert model.token_to_piece(hello) == b"Hello"
    assert model.token_attr(world) & _core.TOKEN_ATTR_NORMAL
    assert not model.token_attr(world) & _core.TOKEN_ATTR_CONTROL
    assert isinstance(model.token_score(world), float)
    assert model.token_text(model.nl) == "Ċ" and model.token_to_piece(model.nl) == b"\n"
    # special tokens render only when asked
    assert model.token_to_piece(model.eos) == b"<|im_end|>"
    assert model.token_to_piece(model.eos, special=False) == b""


def test_pieces_may_split_utf8(model: _core.Model) -> None:
    tokens = model.tokenize("🦙 llama", add_special=False)
    pieces = [model.token_to_piece(t) for t in tokens]
    assert b"".join(pieces) == "🦙 llama".encode()
    with pytest.raises(UnicodeDecodeError):
        pieces[0].decode("utf-8")  # the emoji's bytes are spread over several tokens


def test_tokenize_options(model: _core.Model) -> None:
    assert model.tokenize("Hello world") == [19556, 905]
    assert model.tokenize(b"Hello world") == model.tokenize("Hello world")
    assert model.tokenize("") == []
    # SmolLM2 adds no BOS, so add_special changes nothing here (Gemma below does)
    assert model.tokenize("Hi", add_special=True) == model.tokenize("Hi", add_special=False)
    text = "<|im_start|>user"
    assert model.tokenize(text, add_special=False, parse_special=True) == [model.bos, 4093]
    plain = model.tokenize(text, add_special=False)
    assert model.bos not in plain and len(plain) > 2
    assert model.detokenize(plain) == text.encode()
    with pytest.raises(TypeError, match="str or bytes"):
        model.tokenize(42)  # type: ignore[arg-type]


def test_detokenize(model: _core.Model) -> None:
    text = "Hello, world!\nSecond line: ünïcödé"
    tokens = model.tokenize(text)
    assert model.detokenize(tokens) == text.encode()
    assert model.detokenize([]) == b""
    with_bos = [model.bos, *tokens]
    assert model.detokenize(with_bos) == text.encode()  # specials hidden by default
    assert model.detokenize(with_bos, unparse_special=True) == b"<|im_start|>" + text.encode()
    # long input exercises the buffer-size retry
    long_text = "token " * 3000
    assert model.detokenize(model.tokenize(long_text)) == long_text.encode()


def test_out_of_range_tokens(model: _core.Model) -> None:
    for bad in (-1, model.n_vocab, 1 << 30):
        for call in (
            model.token_text,
            model.token_to_piece,
            model.token_attr,
            model.token_score,
            model.is_eog,
            model.is_control,
        ):
            with pytest.raises(ValueError, match="out of range"):
                call(bad)
        with pytest.raises(ValueError, match="out of range"):
            model.detokenize([1, bad])


def test_load_progress_fires(model_path: Path) -> None:
    seen: list[float] = []
    with _core.Model(model_path, progress=seen.append) as m:
        assert m.n_vocab == 49152
    assert len(seen) >= 2
    assert seen == sorted(seen)
    assert seen[0] <= 0.5 and seen[-1] == pytest.approx(1.0)


def test_load_progress_can_cancel(model_path: Path) -> None:
    seen: list[float] = []

    def stop_halfway(fraction: float) -> bool:
        seen.append(fraction)
        return fraction < 0.5

    with pytest.raises(LoadCancelled) as info:
        _core.Model(model_path, progress=stop_halfway)
    assert isinstance(info.value, Cancelled) and isinstance(info.value, FiresideError)
    assert seen and seen[-1] >= 0.5
    assert all(f < 0.5 for f in seen[:-1])  # it stopped at the first refusal
    # loading again works
    with _core.Model(model_path, progress=lambda f: None) as m:
        assert m.n_layer == 30


def test_load_progress_exception_propagates(model_path: Path) -> None:
    class Boom(Exception):
        pass

    def explode(fraction: float) -> None:
        raise Boom("from the callback")

    with pytest.raises(Boom, match="from the callback"):
        _core.Model(model_path, progress=explode)


def test_kv_overrides(model_path: Path) -> None:
    overrides: dict[str, bool | int | float | str] = {
        "llama.context_length": 4096,
        "tokenizer.ggml.add_bos_token": True,
    }
    with _core.Model(model_path, kv_overrides=overrides) as m:
        assert m.n_ctx_train == 4096
        assert m.add_bos
        assert m.tokenize("Hello") == [m.bos, 19556]
        assert m.tokenize("Hello", add_special=False) == [19556]
    with pytest.raises(TypeError, match="kv_overrides"):
        _core.Model(model_path, kv_overrides={"llama.context_length": [1]})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="kv_overrides"):
        _core.Model(model_path, kv_overrides={"x" * 200: 1})


def test_vocab_only(model_path: Path) -> None:
    with _core.Model(model_path, vocab_only=True) as m:
        assert m.vocab_only
        assert m.tokenize("Hello world") == [19556, 905]
        assert m.chat_template() is not None
        with pytest.raises(ValueError, match="vocab_only"):
            _core.Context(m)


def test_close_then_use_raises(model_path: Path) -> None:
    m = _core.Model(model_path, vocab_only=True)
    m.close()
    assert m.closed
    assert "closed" in repr(m)
    m.close()  # idempotent
    for use in (
        lambda: m.n_vocab,
        lambda: m.metadata,
        lambda: m.tokenize("x"),
        lambda: m.detokenize([1]),
        lambda: m.token_to_piece(1),
        lambda: m.chat_template(),
        lambda: _core.Sampler(m),
    ):
        with pytest.raises(ClosedError, match="closed"):
            use()
    assert issubclass(ClosedError, ValueError)


def test_context_manager(model_path: Path) -> None:
    with _core.Model(model_path, vocab_only=True) as m:
        assert isinstance(m, _core.Model) and not m.closed
    assert m.closed
    with pytest.raises(RuntimeError), _core.Model(model_path, vocab_only=True) as m2:
        raise RuntimeError("inside")
    assert m2.closed


def test_context_and_sampler_keep_the_model_alive(
    model_path: Path, new_context: Callable[..., _core.Context]
) -> None:
    m = _core.Model(model_path)
    ctx = new_context(m)
    sampler = _core.Sampler(m).add_greedy()
    m.close()
    assert m.closed
    assert ctx.model is m
    del m
    gc.collect()
    ctx.decode([19556, 905])  # the weights are still there
    assert ctx.seq_pos_max(0) == 1
    assert 0 <= sampler.sample(ctx) < 49152


def test_gemma3_loads_and_generates(
    gemma: _core.Model,
    new_context: Callable[..., _core.Context],
    run_greedy: Callable[..., list[int]],
) -> None:
    assert gemma.architecture == "gemma3"
    assert gemma.vocab_type == "spm"
    assert gemma.n_vocab == 262144
    assert gemma.add_bos
    assert gemma.token_text(gemma.bos) == "<bos>"
    assert gemma.is_eog(gemma.eos)
    end_of_turn = gemma.tokenize("<end_of_turn>", add_special=False, parse_special=True)
    assert len(end_of_turn) == 1 and gemma.is_eog(end_of_turn[0])

    tokens = gemma.tokenize(PROMPT)
    assert tokens[0] == gemma.bos
    assert gemma.tokenize(PROMPT, add_special=False) == tokens[1:]
    assert gemma.detokenize(tokens, remove_special=True, unparse_special=True) == PROMPT.encode()
    assert gemma.detokenize(tokens, unparse_special=True) == b"<bos>" + PROMPT.encode()

    ctx = new_context(gemma, n_ctx=256)
    ctx.decode(tokens)
    logits = ctx.logits()
    assert logits.shape == (gemma.n_vocab,) and np.isfinite(logits).all()
    out = run_greedy(ctx, 6)
    assert out[0] == int(np.argmax(logits))
    assert ctx.seq_pos_max(0) == len(tokens) + len(out) - 1
    text = gemma.detokenize(out).decode("utf-8")
    assert text.strip(), "Gemma generated only whitespace"
