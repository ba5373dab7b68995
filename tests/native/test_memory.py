"""Native memory is given back: repeated load/close and create/close do not grow the process."""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path

import psutil
from fireside import _core

LIMIT_MB = 30


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 1e6


def growth_mb(repeat: int, action: Callable[[int], None], warm_up: int = 3) -> float:
    for i in range(warm_up):
        action(i)
    before = rss_mb()
    for i in range(repeat):
        action(i)
    return rss_mb() - before


def test_load_and_close_model_50_times(model_path: Path) -> None:
    def load(i: int) -> None:
        model = _core.Model(model_path)
        assert model.n_layer == 30
        model.close()

    grown = growth_mb(50, load)
    assert grown < LIMIT_MB, f"RSS grew by {grown:.1f} MB over 50 loads"


def test_models_freed_by_garbage_collection(model_path: Path) -> None:
    def load(i: int) -> None:
        model = _core.Model(model_path, vocab_only=True)
        assert model.n_vocab == 49152  # dropped without close()

    grown = growth_mb(20, load)
    assert grown < LIMIT_MB, f"RSS grew by {grown:.1f} MB over 20 unclosed loads"


def test_create_and_close_200_contexts(model: _core.Model) -> None:
    def create(i: int) -> None:
        ctx = _core.Context(model, n_ctx=512, n_threads=1)
        if i % 10 == 0:  # now and then use it, so its buffers are really touched
            ctx.decode([1, 2, 3])
            sampler = _core.Sampler(model).add_top_k(5).add_greedy()
            sampler.sample(ctx)
            sampler.close()
        if i % 2:
            ctx.close()
        # else: dropped and left to the garbage collector

    grown = growth_mb(200, create)
    assert grown < LIMIT_MB, f"RSS grew by {grown:.1f} MB over 200 contexts"


def test_samplers_and_states_do_not_leak(model: _core.Model) -> None:
    ctx = _core.Context(model, n_ctx=512, n_threads=1)
    ctx.decode([1, 2, 3])

    def churn(i: int) -> None:
        sampler = _core.Sampler(model).add_grammar('root ::= "a" | "b"').add_dist(i)
        sampler.clone().close()
        ctx.state_set(ctx.state_get())
        assert ctx.seq_pos_max(0) == 2

    grown = growth_mb(300, churn)
    ctx.close()
    assert grown < LIMIT_MB / 3, f"RSS grew by {grown:.1f} MB over 300 samplers and states"
