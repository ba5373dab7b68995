"""A chain whose top-k stage picks its candidates straight from the logits draws exactly
what llama.cpp's own chain draws (which copies and sorts the whole vocabulary first).

The reference is the same chain with two more, do-nothing logit biases in front of top-k
(adding 0.0 changes no logit; more than one bias stage keeps the fast path out): each step both samplers
read the same logits, and their tokens must agree, step after step (their random states
stay in step only if every draw agrees)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fireside import _core

PROMPT = "Once upon a time, in a village by the sea, there lived"

Build = Callable[[_core.Sampler], _core.Sampler]

CHAINS: dict[str, Build] = {
    "defaults": lambda s: s.add_top_k(40).add_top_p(0.95).add_min_p(0.05).add_temperature(0.8),
    "hot top-k alone": lambda s: s.add_top_k(40).add_temperature(1.8),
    "k=1": lambda s: s.add_top_k(1).add_temperature(0.8),
    "k=150, typical": lambda s: s.add_top_k(150).add_typical(0.9).add_temperature(1.2),
    "large k (the chain's own sort)": lambda s: s.add_top_k(5000).add_temperature(1.0),
}


def draws(
    model: _core.Model,
    ctx: _core.Context,
    build: Build,
    bias: dict[int, float] | None,
    seed: int,
    steps: int,
) -> tuple[list[int], list[int], _core.Sampler]:
    def chain(reference: bool) -> _core.Sampler:
        s = _core.Sampler(model)
        if bias:
            s.add_logit_bias(bias)
        if reference:
            s.add_logit_bias({0: 0.0}).add_logit_bias({0: 0.0})
        return build(s).add_dist(seed)

    fast, slow = chain(False), chain(True)
    assert not slow.picks_top_k_first
    ctx.decode(model.tokenize(PROMPT))
    got, want = [], []
    for _ in range(steps):
        got.append(fast.sample(ctx))
        want.append(slow.sample(ctx))
        ctx.decode([want[-1]])
    return got, want, fast


@pytest.mark.parametrize("name", list(CHAINS))
def test_the_same_draws_as_the_chain(model: _core.Model, new_context, name: str) -> None:
    for seed in (1, 77):
        got, want, fast = draws(model, new_context(), CHAINS[name], None, seed, 48)
        assert got == want, (name, seed)
        assert len(set(got)) > 1 or name == "k=1"  # real draws, not one token over and over
    assert fast.picks_top_k_first  # (with a large k it still falls back to the chain's sort)


def test_with_a_logit_bias_that_bans_and_boosts(model: _core.Model, new_context) -> None:
    ctx = new_context()
    ctx.decode(model.tokenize(PROMPT))
    best = int(ctx.logits().argmax())
    ctx.close()
    # ban the favourite, boost two unlikely tokens into the running, ban the end of text
    bias = {best: float("-inf"), 100: 12.0, 2000: 9.5, model.eos: float("-inf")}
    got, want, fast = draws(model, new_context(), CHAINS["defaults"], bias, 5, 48)
    assert fast.picks_top_k_first
    assert got == want and best not in got[:1]


def test_gemma_a_larger_vocabulary(gemma: _core.Model, new_context) -> None:
    got, want, fast = draws(gemma, new_context(gemma), CHAINS["defaults"], None, 9, 24)
    assert fast.picks_top_k_first and got == want


def test_which_chains_take_the_fast_path(model: _core.Model) -> None:
    def picks(build: Build) -> bool:
        return build(_core.Sampler(model)).picks_top_k_first

    assert picks(lambda s: s.add_logit_bias({3: 1.0}).add_top_k(40).add_dist(1))
    assert picks(lambda s: s.add_top_k(40).add_top_p(0.9).add_min_p(0.1).add_temperature(0.7, 0.2))
    assert picks(lambda s: s.add_top_k(40).add_greedy())
    # the whole vocabulary matters to the stages before top-k, or to one after it
    assert not picks(lambda s: s.add_penalties(64, 1.1).add_top_k(40).add_dist(1))
    assert not picks(lambda s: s.add_dry(0.8).add_top_k(40).add_dist(1))
    assert not picks(lambda s: s.add_top_k(40).add_penalties(64, 1.1).add_dist(1))
    assert not picks(lambda s: s.add_grammar('root ::= "a"').add_top_k(40).add_dist(1))
    assert not picks(lambda s: s.add_top_k(0).add_dist(1))  # top-k disabled
    assert not picks(lambda s: s.add_top_k(40).add_temperature(0.8).add_mirostat_v2(1))
    two_biases = _core.Sampler(model).add_logit_bias({3: 1.0}).add_logit_bias({3: 2.0})
    assert not two_biases.add_top_k(40).add_dist(1).picks_top_k_first
    # a clone keeps it
    assert _core.Sampler(model).add_top_k(40).add_dist(1).clone().picks_top_k_first
