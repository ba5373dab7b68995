"""Greedy sampling takes a native argmax shortcut when the chain is only logit biases and
greedy; it must pick exactly what llama.cpp's full chain picks, biases and ties included."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from fireside import _core


def slow_chain(model: _core.Model, bias: dict[int, float]) -> _core.Sampler:
    # temperature 1 changes nothing for an argmax but keeps the chain on llama.cpp's path
    return _core.Sampler(model).add_logit_bias(bias).add_temperature(1.0).add_greedy()


def test_matches_the_full_chain(
    model: _core.Model, new_context: Callable[..., _core.Context]
) -> None:
    ctx = new_context()
    ctx.decode(model.tokenize("Once upon a time, in a land far away,"))
    eos = model.eos
    checked = 0
    for step in range(24):
        logits = ctx.logits()
        top = [int(t) for t in np.argsort(-logits)[:3]]
        cases: list[dict[int, float]] = [
            {},
            {eos: float("-inf")},
            {top[0]: float("-inf")},  # the raw winner banned: the fallback scan
            {top[0]: -1e9, top[1]: 0.0, top[2]: float(logits[top[0]] - logits[top[2]])},  # a tie
            {top[2]: 50.0},  # a boost beats the raw winner
        ]
        for bias in cases:
            fast = (
                _core.Sampler(model).add_logit_bias(bias).add_greedy()
                if bias
                else _core.Sampler(model).add_greedy()
            )
            expected = slow_chain(model, bias).sample(ctx)
            assert fast.sample(ctx) == expected, (step, bias)
            checked += 1
        token = _core.Sampler(model).add_greedy().sample(ctx)
        assert token == top[0] or logits[token] == logits[top[0]]
        ctx.decode([token])
    assert checked == 24 * 5


def test_two_bias_stages_add_up(
    model: _core.Model, new_context: Callable[..., _core.Context]
) -> None:
    ctx = new_context()
    ctx.decode(model.tokenize("The sky is"))
    logits = ctx.logits()
    a, b = (int(t) for t in np.argsort(-logits)[:2])
    gap = float(logits[a] - logits[b])
    chained = (
        _core.Sampler(model)
        .add_logit_bias({b: gap * 0.6})
        .add_logit_bias({b: gap * 0.6})
        .add_greedy()
    )
    assert gap > 0
    assert chained.sample(ctx) == b  # neither bias alone lifts b above a
    assert _core.Sampler(model).add_logit_bias({b: gap * 0.6}).add_greedy().sample(ctx) == a
