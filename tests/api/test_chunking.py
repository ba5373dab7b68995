"""Where the engine's prompt chunks end: every ``size`` tokens, or right after an
end-of-turn token; decided by the tokens before each end alone, so a prompt and every
longer prompt starting with it are cut alike (what makes prefix reuse exact)."""

from __future__ import annotations

import random

import pytest
from fireside.generation.chunking import Chunking

END = 7  # an end-of-turn token id


def test_chunks_end_at_the_size_or_after_an_end_of_turn() -> None:
    rule = Chunking(4, {END})
    tokens = [1, 2, END, 3, 4, 5, 6, 8, 9]
    assert rule.end(tokens, 0) == 3  # after the end of turn
    assert rule.end(tokens, 3) == 7  # four tokens
    assert rule.end(tokens, 7) == 9  # the end of the tokens: a partial chunk
    assert rule.complete(tokens, 0, 3) and rule.complete(tokens, 3, 7)
    assert not rule.complete(tokens, 7, 9)
    assert rule.boundaries(tokens) == [3, 7]
    assert rule.boundaries(tokens, 6) == [3]
    assert rule.floor(tokens, 8) == 7 and rule.floor(tokens, 2) == 0
    # a prompt ending with an end of turn ends a whole chunk
    assert rule.boundaries([1, END]) == [2]
    # without end tokens: multiples of the size
    assert Chunking(64).boundaries(list(range(200))) == [64, 128, 192]


def test_a_prefix_is_cut_as_the_whole_is() -> None:
    rng = random.Random(5)
    rule = Chunking(8, {END, END + 1})
    for _ in range(200):
        tokens = [
            rng.choice([1, 2, 3, END, END + 1]) if rng.random() < 0.2 else 1 for _ in range(80)
        ]
        whole = rule.boundaries(tokens)
        for n in range(len(tokens) + 1):
            assert rule.boundaries(tokens[:n]) == [b for b in whole if b <= n]


def test_a_bad_size_is_named() -> None:
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="chunk size must be an integer >= 1"):
            Chunking(bad)  # type: ignore[arg-type]
