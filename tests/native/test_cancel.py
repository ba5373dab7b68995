"""``Context.cancel()`` stops a running decode from another thread and leaves the cache as it was."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fireside import _core
from fireside.errors import Cancelled, GenerationCancelled

from .numerics import same_logits
from .waiting import wait_for_cpu

ContextFactory = Callable[..., _core.Context]

LONG_PROMPT_TOKENS = 2000
WARM_UP_TOKENS = 32
CANCEL_AFTER_CPU_S = 0.05
"""The process has spent this much CPU time inside ``decode`` when it is cancelled."""
STOPPED_BY = 0.5
"""A cancelled decode used less than this share of the CPU time a whole one would take."""


@pytest.fixture(scope="module")
def long_prompt(model: _core.Model) -> list[int]:
    text = "The quick brown fox jumps over the lazy dog. " * 300
    tokens = model.tokenize(text)[:LONG_PROMPT_TOKENS]
    assert len(tokens) == LONG_PROMPT_TOKENS
    return tokens


@dataclass
class CancelledRun:
    error: BaseException | None
    """What ``decode`` raised (``None``: it returned)."""
    cpu_s: float
    """CPU time the process spent in the cancelled ``decode``."""
    whole_cpu_s: float
    """CPU time a whole ``decode`` of the tokens would take, from a short one."""


def run_and_cancel(ctx: _core.Context, tokens: list[int]) -> CancelledRun:
    """Decode ``tokens`` in a thread and cancel it from this one once the decode
    has spent :data:`CANCEL_AFTER_CPU_S` of CPU time (the process's counter, so no clock or
    machine speed is guessed): the cancel lands inside ``llama_decode``.

    The CPU time of a whole decode is estimated from a short decode of the first tokens
    (then removed again), measured the same way.
    """
    before = ctx.seq_pos_max(0)
    t0 = time.process_time()
    ctx.decode(tokens[:WARM_UP_TOKENS])
    per_token = (time.process_time() - t0) / WARM_UP_TOKENS
    ctx.seq_rm(0, before + 1, -1)
    assert ctx.seq_pos_max(0) == before
    entered = threading.Event()
    outcome: dict[str, Any] = {}

    def work() -> None:
        entered.set()
        start = time.process_time()
        try:
            ctx.decode(tokens)
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = e
        outcome["cpu_s"] = time.process_time() - start

    worker = threading.Thread(target=work)
    worker.start()
    assert entered.wait(30), "the decoding thread never started"
    wait_for_cpu(worker, CANCEL_AFTER_CPU_S)  # it is inside decode now
    assert worker.is_alive(), "the decode ended before it could be cancelled"
    ctx.cancel()
    worker.join(60)
    assert not worker.is_alive(), "decode did not return after cancel()"
    return CancelledRun(outcome.get("error"), outcome["cpu_s"], per_token * len(tokens))


def test_cancel_stops_a_long_prompt_decode(
    new_context: ContextFactory, model: _core.Model, long_prompt: list[int]
) -> None:
    ctx = new_context(n_ctx=2560, n_batch=2048, n_ubatch=512, n_threads=0)
    prefix = model.tokenize("Some words first.")
    ctx.decode(prefix)

    run = run_and_cancel(ctx, long_prompt)
    error = run.error
    assert isinstance(error, GenerationCancelled), f"the decode was not cancelled: {error!r}"
    assert isinstance(error, Cancelled)
    # it stopped inside the decode, well before the end (CPU time, not wall time)
    assert run.cpu_s < STOPPED_BY * run.whole_cpu_s, run
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
    run = run_and_cancel(ctx, long_prompt)
    assert isinstance(run.error, GenerationCancelled), run
    assert run.cpu_s < STOPPED_BY * run.whole_cpu_s, run
    assert ctx.seq_pos_max(0) == -1
    ctx.reset_cancel()
    prompt = model.tokenize("The capital of France is")
    ctx.decode(prompt)
    token = _core.Sampler(model).add_greedy().sample(ctx)
    assert model.detokenize([token]) == b" Paris"
