"""KV cache reuse: a prompt sharing a prefix with the cached tokens evaluates only the rest.

Reuse is exact (see fireside.generation.engine, "Determinism"): a prefix is kept up to the
last chunk boundary (CHUNK tokens) below it, and only prompt positions evaluated as whole
chunks count, never generated tokens.
"""

from __future__ import annotations

from pathlib import Path

from fireside.generation.engine import CHUNK
from fireside.generation.slots import common_prefix_length
from fireside.model import Model

PROMPT = "A list of fruits: apple, banana, cherry," * 12  # well over one chunk


def floor_chunk(n: int) -> int:
    return n - n % CHUNK


def test_common_prefix_length() -> None:
    assert common_prefix_length([], [1]) == 0
    assert common_prefix_length([1, 2, 3], [1, 2, 3]) == 3
    assert common_prefix_length([1, 2, 3], [1, 2]) == 2
    assert common_prefix_length([1, 2, 3, 4, 5], [1, 2, 9, 4, 5]) == 2
    assert common_prefix_length(list(range(1000)), [*range(700), -1]) == 700


def test_repeated_prompt_evaluates_one_token(model: Model) -> None:
    model.reset()
    first = model.generate(PROMPT, max_tokens=4, temperature=0)
    n = first.usage.prompt_tokens
    stats = model.stats
    assert stats.last_prompt_tokens_evaluated == n
    assert stats.last_prompt_tokens_reused == 0
    again = model.generate(PROMPT, max_tokens=4, temperature=0)
    stats = model.stats
    # the last token is decoded again for its logits; reuse stops at a chunk boundary
    assert n > CHUNK
    assert stats.last_prompt_tokens_reused == floor_chunk(n - 1) > 0
    assert stats.last_prompt_tokens_evaluated == n - floor_chunk(n - 1)
    assert again.tokens == first.tokens


def test_continuation_evaluates_only_new_tokens(model: Model) -> None:
    model.reset()
    first = model.generate(PROMPT, max_tokens=6, temperature=0)
    prompt_tokens = model.tokenize(PROMPT, parse_special=True)
    extra = model.tokenize(" and more fruit:", add_special=False)
    # the prompt's whole chunks are reused; generated tokens are evaluated again
    follow = prompt_tokens + first.tokens + extra
    result = model.generate(follow, max_tokens=3, temperature=0)
    stats = model.stats
    assert stats.last_prompt_tokens_reused == floor_chunk(len(prompt_tokens))
    assert stats.last_prompt_tokens_evaluated == len(follow) - floor_chunk(len(prompt_tokens))
    # and the reuse changes nothing: same as from a cold cache
    model.reset()
    assert model.generate(follow, max_tokens=3, temperature=0).tokens == result.tokens
    assert model.stats.last_prompt_tokens_evaluated == len(follow)


def test_diverging_prompt_drops_the_cached_rest(model: Model) -> None:
    model.reset()
    colours = PROMPT * 2 + "A list of colours: red,"
    model.generate(PROMPT * 3, max_tokens=2, temperature=0)
    other = model.generate(colours, max_tokens=5, temperature=0)
    shared = common_prefix_length(
        model.tokenize(PROMPT * 3, parse_special=True),
        model.tokenize(colours, parse_special=True),
    )
    assert model.stats.last_prompt_tokens_reused == floor_chunk(shared) > 0
    model.reset()
    assert model.generate(colours, max_tokens=5, temperature=0).tokens == other.tokens


def test_prompt_is_evaluated_in_batches(model_path: Path) -> None:
    with Model(model_path, n_ctx=256, n_threads=1, n_batch=16) as m:
        tokens = m.tokenize("word " * 60)[:60]
        # the context refuses batches over n_batch: this works only in chunks of 16
        m.generate(tokens, max_tokens=1, temperature=0)
        assert m.stats.last_prompt_tokens_evaluated == 60
