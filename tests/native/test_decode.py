"""``Context.decode`` and what it leaves behind: logits, KV cache, state, embeddings, counters."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from fireside import _core

from .numerics import rms_difference, same_logits

PROMPT = "The capital of France is"
OTHER = "def fibonacci(n):\n    return"
N_NEW = 6

ContextFactory = Callable[..., _core.Context]
Greedy = Callable[..., list[int]]
Reference = tuple[list[int], list[npt.NDArray[np.float32]]]


def cosine(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def prompt(model: _core.Model) -> list[int]:
    return model.tokenize(PROMPT)


@pytest.fixture(scope="module")
def reference(model: _core.Model, prompt: list[int]) -> Reference:
    """The uninterrupted greedy continuation of the prompt and the logits before each token."""
    with _core.Context(model, n_ctx=512, n_threads=1) as ctx:
        ctx.decode(prompt)
        tokens: list[int] = []
        logits: list[npt.NDArray[np.float32]] = []
        for _ in range(N_NEW):
            logits.append(ctx.logits())
            tokens.append(int(np.argmax(logits[-1])))
            ctx.decode([tokens[-1]])
    return tokens, logits


def test_greedy_is_deterministic(
    new_context: ContextFactory, run_greedy: Greedy, prompt: list[int], model: _core.Model
) -> None:
    runs = []
    for _ in range(2):
        ctx = new_context()
        ctx.decode(prompt)
        runs.append(run_greedy(ctx, 12))
    assert runs[0] == runs[1]
    assert model.detokenize(runs[0]).startswith(b" Paris")


def test_seeded_sampling_is_deterministic(new_context: ContextFactory, prompt: list[int]) -> None:
    runs = []
    for _ in range(2):
        ctx = new_context()
        sampler = _core.Sampler(ctx.model).add_top_k(40).add_temperature(1.0).add_dist(1234)
        ctx.decode(prompt)
        out = []
        for _ in range(8):
            out.append(sampler.sample(ctx))
            ctx.decode([out[-1]])
        runs.append(out)
    assert runs[0] == runs[1]


def test_reference_matches_sampler(
    new_context: ContextFactory, run_greedy: Greedy, prompt: list[int], reference: Reference
) -> None:
    ctx = new_context()
    ctx.decode(prompt)
    assert run_greedy(ctx, N_NEW) == reference[0]


def test_logits_of_every_marked_position(
    new_context: ContextFactory, prompt: list[int], reference: Reference
) -> None:
    ctx = new_context()
    ctx.decode(prompt, logits=[True] * len(prompt))
    rows = [ctx.logits(i) for i in range(len(prompt))]
    assert all(r.shape == (ctx.model.n_vocab,) and r.dtype == np.float32 for r in rows)
    assert same_logits(rows[-1], reference[1][0])
    assert same_logits(ctx.logits(-1), rows[-1])
    assert same_logits(ctx.logits(-len(prompt)), rows[0])
    assert not same_logits(rows[0], rows[-1])
    rows[0][:] = 0  # a copy: changing it does not change the context's
    assert ctx.logits(0).any()


def test_multi_sequence_batch_matches_separate_decodes(
    new_context: ContextFactory, model: _core.Model
) -> None:
    texts = [PROMPT, OTHER, "Once upon a time"]
    alone = []
    for text in texts:
        ctx = new_context()
        ctx.decode(model.tokenize(text))
        alone.append(ctx.logits())

    ctx = new_context(n_ctx=1536, n_seq_max=len(texts))
    tokens: list[int] = []
    seq_ids: list[int] = []
    last: list[int] = []
    for seq, text in enumerate(texts):
        ids = model.tokenize(text)
        tokens += ids
        seq_ids += [seq] * len(ids)
        last.append(len(tokens) - 1)
    ctx.decode(tokens, seq_ids=seq_ids, logits=[i in last for i in range(len(tokens))])
    for seq, (index, expected) in enumerate(zip(last, alone)):
        assert same_logits(ctx.logits(index), expected), f"sequence {seq}"
        assert ctx.seq_pos_min(seq) == 0
        assert ctx.seq_pos_max(seq) == len(model.tokenize(texts[seq])) - 1

    # one more token for every sequence in one batch continues each one independently
    nxt = [int(np.argmax(a)) for a in alone]
    ctx.decode(nxt, seq_ids=list(range(len(texts))), logits=[True] * len(texts))
    for seq, text in enumerate(texts):
        solo = new_context()
        solo.decode(model.tokenize(text) + [nxt[seq]])
        assert same_logits(ctx.logits(seq), solo.logits()), f"sequence {seq}"


def test_state_bytes_restore_then_continue(
    new_context: ContextFactory, prompt: list[int], reference: Reference
) -> None:
    tokens, logits = reference
    ctx = new_context()
    ctx.decode(prompt)
    state = ctx.state_get()
    assert isinstance(state, bytes) and len(state) > 1000
    ctx.decode([tokens[0]])  # move on, then rewind by restoring
    ctx.state_set(state)
    assert ctx.seq_pos_max(0) == len(prompt) - 1

    fresh = new_context()
    fresh.state_set(state)
    for restored in (ctx, fresh):
        assert restored.seq_pos_max(0) == len(prompt) - 1
        restored.decode([tokens[0]])
        for i in range(1, N_NEW):
            assert same_logits(restored.logits(), logits[i])
            assert int(np.argmax(restored.logits())) == tokens[i]
            restored.decode([tokens[i]])


def test_state_holds_no_logits(new_context: ContextFactory, prompt: list[int]) -> None:
    """llama.cpp's state is the KV cache only: after a restore, decode before sampling."""
    ctx = new_context()
    ctx.decode(prompt)
    fresh = new_context()
    fresh.state_set(ctx.state_get())
    with pytest.raises(IndexError):
        fresh.logits()


def test_state_file_restore_then_continue(
    new_context: ContextFactory, prompt: list[int], reference: Reference, tmp_path: Path
) -> None:
    tokens, logits = reference
    ctx = new_context()
    ctx.decode(prompt)
    path = tmp_path / "state.bin"
    ctx.state_save(path, prompt)
    assert path.stat().st_size > 1000

    fresh = new_context()
    assert fresh.state_load(path) == prompt
    assert fresh.seq_pos_max(0) == len(prompt) - 1
    fresh.decode([tokens[0]])
    assert same_logits(fresh.logits(), logits[1])
    # str paths work too, and no tokens is fine
    ctx.state_save(str(tmp_path / "empty.bin"))
    assert new_context().state_load(str(tmp_path / "empty.bin")) == []


def test_sequence_state_bytes_and_file(
    new_context: ContextFactory, prompt: list[int], reference: Reference, tmp_path: Path
) -> None:
    tokens, logits = reference
    ctx = new_context(n_ctx=1024, n_seq_max=2)
    ctx.decode(prompt, seq_ids=0)
    data = ctx.seq_state_get(0)
    assert len(data) > 1000
    assert ctx.seq_state_get(1) != data
    ctx.seq_state_set(data, 1)  # clone sequence 0 into 1 through bytes
    assert (ctx.seq_pos_min(1), ctx.seq_pos_max(1)) == (0, len(prompt) - 1)
    ctx.decode([tokens[0]], seq_ids=1)
    assert same_logits(ctx.logits(), logits[1])
    assert ctx.seq_pos_max(0) == len(prompt) - 1  # sequence 0 is untouched

    path = tmp_path / "seq.bin"
    ctx.seq_state_save(path, 0, prompt)
    other = new_context(n_ctx=1024, n_seq_max=2)
    assert other.seq_state_load(path, 1) == prompt
    assert other.seq_pos_max(0) == -1 and other.seq_pos_max(1) == len(prompt) - 1
    other.decode([tokens[0]], seq_ids=1)
    assert same_logits(other.logits(), logits[1])


def test_seq_cp_then_continue(
    new_context: ContextFactory, prompt: list[int], reference: Reference
) -> None:
    tokens, logits = reference
    ctx = new_context(n_ctx=1024, n_seq_max=2)
    ctx.decode(prompt)
    assert ctx.seq_pos_max(1) == -1
    ctx.seq_cp(0, 1)
    assert (ctx.seq_pos_min(1), ctx.seq_pos_max(1)) == (0, len(prompt) - 1)
    # both continue from the shared prefix: same next-token logits in one batch
    ctx.decode([tokens[0], tokens[0]], seq_ids=[0, 1], logits=[True, True])
    assert same_logits(ctx.logits(0), logits[1])
    assert same_logits(ctx.logits(1), logits[1])
    # they then diverge independently
    ctx.decode([tokens[1]], seq_ids=0)
    assert same_logits(ctx.logits(), logits[2])
    assert ctx.seq_pos_max(0) == len(prompt) + 1 and ctx.seq_pos_max(1) == len(prompt)


def test_seq_rm_then_redecode(
    new_context: ContextFactory, prompt: list[int], reference: Reference
) -> None:
    ctx = new_context()
    ctx.decode(prompt + reference[0][:3])
    cut = len(prompt)
    assert ctx.seq_rm(0, cut, -1) is True
    assert (ctx.seq_pos_min(0), ctx.seq_pos_max(0)) == (0, cut - 1)
    ctx.decode([reference[0][0]])  # positions continue after the cut
    assert ctx.seq_pos_max(0) == cut
    assert same_logits(ctx.logits(), reference[1][1])

    assert ctx.seq_rm(0, 0, 2)  # a prefix: the rest keeps its positions
    assert (ctx.seq_pos_min(0), ctx.seq_pos_max(0)) == (2, cut)
    assert ctx.seq_rm(0)
    assert (ctx.seq_pos_min(0), ctx.seq_pos_max(0)) == (-1, -1)


@pytest.mark.parametrize("unified", [True, False], ids=["unified", "per-sequence-streams"])
def test_seq_keep_and_memory_clear(
    new_context: ContextFactory, prompt: list[int], unified: bool
) -> None:
    ctx = new_context(n_ctx=1536, n_seq_max=3, kv_unified=unified)
    ctx.decode(prompt * 3, seq_ids=[0] * len(prompt) + [1] * len(prompt) + [2] * len(prompt))
    ctx.seq_keep(1)
    assert [ctx.seq_pos_max(s) for s in range(3)] == [-1, len(prompt) - 1, -1]
    assert ctx.seq_rm(-1, 0, 2)  # -1: every sequence
    assert ctx.seq_pos_min(1) == 2
    ctx.memory_clear()
    assert [ctx.seq_pos_max(s) for s in range(3)] == [-1, -1, -1]
    ctx.decode(prompt)  # an empty cache starts again at position 0
    assert ctx.seq_pos_min(0) == 0


def test_seq_add_shifts_positions(
    new_context: ContextFactory, prompt: list[int], reference: Reference
) -> None:
    tokens, _ = reference
    n, delta = len(prompt), 10

    def after_shift(end: int) -> npt.NDArray[np.float32]:
        """Shift the cached positions [0, end) by ``delta``, then decode the next token."""
        ctx = new_context()
        assert ctx.can_shift
        ctx.decode(prompt)
        ctx.seq_add(0, 0, end, delta)
        ctx.decode([tokens[0]])
        return ctx.logits()

    def evaluated_at(first: int) -> npt.NDArray[np.float32]:
        """The prompt and the next token decoded directly at positions ``first``..."""
        ctx = new_context()
        ctx.decode(prompt + [tokens[0]], positions=list(range(first, first + n + 1)))
        return ctx.logits()

    ctx = new_context()
    ctx.decode(prompt)
    ctx.seq_add(0, 0, -1, delta)
    assert (ctx.seq_pos_min(0), ctx.seq_pos_max(0)) == (delta, delta + n - 1)
    ctx.decode([tokens[0]])  # continues after the shifted end
    assert ctx.seq_pos_max(0) == delta + n
    ctx.seq_add(0, delta, -1, -delta)  # and back
    assert (ctx.seq_pos_min(0), ctx.seq_pos_max(0)) == (0, n)

    # Shifting re-rotates the cached keys (RoPE), which is not bit-exact, and how far it drifts
    # depends on the CPU's kernels. Measure this CPU's rounding noise between two evaluations
    # that are equal in exact arithmetic (attention sees only relative positions), and require
    # the shift to stay within a few times that.
    expected = evaluated_at(delta)
    noise = rms_difference(evaluated_at(0), expected)
    bound = 4 * max(noise, 0.01)
    shifted = after_shift(-1)
    assert int(np.argmax(shifted)) == int(np.argmax(expected))
    assert rms_difference(shifted, expected) <= bound, (rms_difference(shifted, expected), noise)
    # the bound catches a broken shift: one that misses the last cached key
    broken = after_shift(n - 1)
    assert rms_difference(broken, expected) > bound, (rms_difference(broken, expected), noise)


def test_logprobs(new_context: ContextFactory, prompt: list[int], reference: Reference) -> None:
    ctx = new_context()
    ctx.decode(prompt, logits=[False] * (len(prompt) - 1) + [True])
    logits = ctx.logits().astype(np.float64)
    log_softmax = logits - (logits.max() + np.log(np.exp(logits - logits.max()).sum()))
    best = reference[0][0]
    value, top = ctx.logprobs(len(prompt) - 1, best, top_n=5)
    assert value == pytest.approx(log_softmax[best], abs=1e-4)
    assert value < 0
    assert [t for t, _ in top] == list(np.argsort(-logits)[:5])
    assert top[0][0] == best
    assert [lp for _, lp in top] == sorted((lp for _, lp in top), reverse=True)
    for token, lp in top:
        assert lp == pytest.approx(log_softmax[token], abs=1e-4)
    assert ctx.logprobs(-1, 0) == (pytest.approx(log_softmax[0], abs=1e-4), [])
    with pytest.raises(IndexError):
        ctx.logprobs(0, best)  # no output kept there


def test_mean_pooled_embeddings(new_context: ContextFactory, prompt: list[int]) -> None:
    pooled = new_context(embeddings=True, pooling="mean")
    assert pooled.embeddings and pooled.pooling == "mean"
    pooled.decode(prompt)
    vector = pooled.seq_embedding(0)
    assert vector.shape == (pooled.model.n_embd_out,) and np.isfinite(vector).all()

    per_token = new_context(embeddings=True, pooling="none")
    assert per_token.pooling == "none"
    per_token.decode(prompt, logits=[True] * len(prompt))
    rows = np.stack([per_token.embedding(i) for i in range(len(prompt))])
    assert np.allclose(rows.mean(axis=0), vector, atol=1e-3)
    with pytest.raises(ValueError, match="pooling"):
        per_token.seq_embedding(0)

    other = new_context(embeddings=True, pooling="mean")
    other.decode(pooled.model.tokenize(OTHER))
    assert cosine(other.seq_embedding(0), vector) < 0.999


def test_embeddings_switch(new_context: ContextFactory, prompt: list[int]) -> None:
    ctx = new_context()
    with pytest.raises(ValueError, match="embeddings=True"):
        ctx.embedding()
    ctx.embeddings = True
    assert ctx.embeddings
    ctx.decode(prompt)
    assert ctx.embedding().shape == (ctx.model.n_embd_out,)


def test_perf_counts_tokens(new_context: ContextFactory, prompt: list[int]) -> None:
    ctx = new_context()
    perf = ctx.perf()
    assert (perf.n_decode_calls, perf.n_tokens_decoded) == (0, 0)
    ctx.decode(prompt)
    ctx.logits()
    for token in (10, 11, 12):  # a generation loop reads the logits after every decode
        ctx.decode([token])
        ctx.logits()
    perf = ctx.perf()
    assert perf.n_decode_calls == 4
    assert perf.n_tokens_decoded == len(prompt) + 3
    assert perf.n_prompt_eval == len(prompt)
    assert perf.n_eval == 3
    assert perf.t_prompt_eval_ms > 0 and perf.t_eval_ms > 0
    assert "decode_calls=4" in repr(perf)

    with pytest.raises(ValueError):
        ctx.decode([])  # a failed decode counts nothing
    assert ctx.perf().n_decode_calls == 4
    ctx.reset_perf()
    perf = ctx.perf()
    assert (perf.n_decode_calls, perf.n_tokens_decoded) == (0, 0)


def test_perf_is_current_right_after_decode(new_context: ContextFactory, prompt: list[int]) -> None:
    """llama.cpp books a decode's tokens when the context next synchronizes; perf() must
    not lag behind decodes whose outputs nobody has read yet."""
    ctx = new_context()
    ctx.decode(prompt)
    assert ctx.perf().n_prompt_eval == len(prompt)
    ctx.decode([10])
    ctx.decode([11])
    perf = ctx.perf()
    assert (perf.n_prompt_eval, perf.n_eval) == (len(prompt), 2)


def test_context_properties(new_context: ContextFactory, model: _core.Model) -> None:
    ctx = new_context(n_ctx=1024, n_batch=256, n_ubatch=128, n_seq_max=2, type_k="q8_0")
    assert ctx.model is model
    assert ctx.n_ctx == 1024 and ctx.n_ctx_seq == 512
    assert (ctx.n_batch, ctx.n_ubatch, ctx.n_seq_max) == (256, 128, 2)
    assert ctx.n_threads == 1 and ctx.n_threads_batch == 1
    assert ctx.flash_attn == "auto" and ctx.type_k == "q8_0" and ctx.type_v == "f16"
    assert not ctx.embeddings and not ctx.cancelled
    ctx.set_threads(2, 2)
    assert (ctx.n_threads, ctx.n_threads_batch) == (2, 2)
    assert "n_ctx=1024" in repr(ctx)

    default = new_context(n_threads=0)
    assert default.n_threads >= 1
    trained = _core.Context(model, n_ctx=0, n_threads=1)
    try:
        assert trained.n_ctx == model.n_ctx_train
    finally:
        trained.close()
