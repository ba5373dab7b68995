"""KV cache reuse: a prompt sharing a prefix with the cached tokens evaluates only the rest."""

from __future__ import annotations

from pathlib import Path

from fireside.generation.loop import common_prefix_length
from fireside.model import Model

PROMPT = "A list of fruits: apple, banana, cherry,"


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
    assert stats.last_prompt_tokens_reused == n - 1  # the last is decoded again for logits
    assert stats.last_prompt_tokens_evaluated == 1
    assert again.tokens == first.tokens


def test_continuation_evaluates_only_new_tokens(model: Model) -> None:
    model.reset()
    first = model.generate(PROMPT, max_tokens=6, temperature=0)
    prompt_tokens = model.tokenize(PROMPT, parse_special=True)
    extra = model.tokenize(" and more fruit:", add_special=False)
    # prompt + generated tokens are in the cache (except the last sampled one)
    follow = prompt_tokens + first.tokens + extra
    result = model.generate(follow, max_tokens=3, temperature=0)
    stats = model.stats
    assert stats.last_prompt_tokens_reused == len(prompt_tokens) + len(first.tokens) - 1
    assert stats.last_prompt_tokens_evaluated == len(extra) + 1
    # and the reuse changes nothing: same as from a cold cache
    model.reset()
    assert model.generate(follow, max_tokens=3, temperature=0).tokens == result.tokens
    assert model.stats.last_prompt_tokens_evaluated == len(follow)


def test_diverging_prompt_drops_the_cached_rest(model: Model) -> None:
    model.reset()
    model.generate(PROMPT, max_tokens=2, temperature=0)
    other = model.generate("A list of colours: red,", max_tokens=5, temperature=0)
    shared = common_prefix_length(
        model.tokenize(PROMPT, parse_special=True),
        model.tokenize("A list of colours: red,", parse_special=True),
    )
    assert model.stats.last_prompt_tokens_reused == shared
    model.reset()
    assert model.generate("A list of colours: red,", max_tokens=5, temperature=0).tokens == (
        other.tokens
    )


def test_prompt_is_evaluated_in_batches(model_path: Path) -> None:
    with Model(model_path, n_ctx=256, n_threads=1, n_batch=16) as m:
        tokens = m.tokenize("word " * 60)[:60]
        # the context refuses batches over n_batch: this works only in chunks of 16
        m.generate(tokens, max_tokens=1, temperature=0)
        assert m.stats.last_prompt_tokens_evaluated == 60
