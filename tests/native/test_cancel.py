"""``Context.cancel()`` stops a running decode from another thread and leaves the cache as it was."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from fireside import _core
from fireside.errors import Cancelled, GenerationCancelled

from .numerics import same_logits

ContextFactory = Callable[..., _core.Context]

LONG_PROMPT_TOKENS = 2000
WARM_UP_TOKENS = 32
STOP_WITHIN_S = 3.0  # generous: llama.cpp checks the flag between graph nodes


@pytest.fixture(scope="module")
def long_prompt(model: _core.Model) -> list[int]:
    text = "The quick brown fox jumps over the lazy dog. " * 300
    tokens = model.tokenize(text)[:LONG_PROMPT_TOKENS]
    assert len(tokens) == LONG_PROMPT_TOKENS
    return tokens


def run_and_cancel(ctx: _core.Context, tokens: list[int]) -> tuple[BaseException | None, float]:
    """Decode ``tokens`` in a thread and cancel it early on; (its error, seconds it took to
    return after the cancel).

    The cancel comes after about a tenth of the decode's expected time (estimated from a
    short decode that is then removed again), so it lands inside llama_decode on fast and
    slow machines alike.
    """
    before = ctx.seq_pos_max(0)
    t0 = time.monotonic()
    ctx.decode(tokens[:WARM_UP_TOKENS])
    per_token = (time.monotonic() - t0) / WARM_UP_TOKENS
    ctx.seq_rm(0, before + 1, -1)
    assert ctx.seq_pos_max(0) == before
    cancel_after = min(0.3, 0.1 * per_token * len(tokens))
    started = threading.Event()
    outcome: dict[str, object] = {}

    def work() -> None:
        started.set()
        try:
            ctx.decode(tokens)
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = e
        outcome["end"] = time.monotonic()

    worker = threading.Thread(target=work)
    worker.start()
    assert started.wait(10)
    time.sleep(cancel_after)
    cancelled_at = time.monotonic()
    ctx.cancel()
    worker.join(60)
    assert not worker.is_alive(), "decode did not return after cancel()"
    error = outcome.get("error")
    assert error is None or isinstance(error, BaseException)
    return error, float(outcome["end"]) - cancelled_at  # type: ignore[arg-type]


def test_cancel_stops_a_long_prompt_decode(
    new_context: ContextFactory, model: _core.Model, long_prompt: list[int]
) -> None:
    ctx = new_context(n_ctx=2560, n_batch=2048, n_ubatch=512, n_threads=0)
    prefix = model.tokenize("Some words first.")
    ctx.decode(prefix)

    error, took = run_and_cancel(ctx, long_prompt)
    assert isinstance(error, GenerationCancelled), f"the decode was not cancelled: {error!r}"
    assert isinstance(error, Cancelled)
    assert took < STOP_WITHIN_S, f"decode returned {took:.2f}s after cancel()"
    assert ctx.cancelled
    # the cache holds no part of the cancelled batch
    assert ctx.seq_pos_max(0) == len(prefix) - 1
    assert ctx.perf().n_decode_calls == 2  # the prefix and the warm-up, not the cancelled one
    with pytest.raises(IndexError):
        ctx.logits()


def test_cancel_sticks_until_reset(new_context: ContextFactory, model: _core.Model) -> None:
    prompt = model.tokenize("The capital of France is")
    reference = new_context()
    reference.decode(prompt)
    expected = reference.logits()

    ctx = new_context()
    ctx.decode(prompt[:2])
    ctx.cancel()
    ctx.cancel()  # idempotent
    assert ctx.cancelled
    for _ in range(2):  # every later decode is refused at once
        with pytest.raises(GenerationCancelled):
            ctx.decode(prompt[2:])
    assert ctx.seq_pos_max(0) == 1

    ctx.reset_cancel()
    assert not ctx.cancelled
    ctx.decode(prompt[2:])  # usable again, with the same result as never cancelled
    assert ctx.seq_pos_max(0) == len(prompt) - 1
    assert same_logits(ctx.logits(), expected)  # in two batches, so up to rounding
    assert ctx.perf().n_decode_calls == 2


def test_cancelled_context_recovers_after_long_decode(
    new_context: ContextFactory, model: _core.Model, long_prompt: list[int]
) -> None:
    ctx = new_context(n_ctx=2560, n_batch=2048, n_ubatch=256)
    error, _ = run_and_cancel(ctx, long_prompt)
    assert isinstance(error, GenerationCancelled)
    assert ctx.seq_pos_max(0) == -1
    ctx.reset_cancel()
    prompt = model.tokenize("The capital of France is")
    ctx.decode(prompt)
    token = _core.Sampler(model).add_greedy().sample(ctx)
    assert model.detokenize([token]) == b" Paris"
