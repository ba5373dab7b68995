"""Speculative decoding by prompt lookup: the output is token for token what the engine
gives without it (greedy and seeded sampling, stateful sampler stages, grammars), drafts
are accepted on prompts that quote their input, and drafts are capped to verification
batches proved exact (see fireside.generation.speculative).

The models speculate with ``speculative="always"`` (drafting as if verification were
cheap): on the test machine's CPU a verification costs nearly as much per token as a
decode, so the default (measured cost) would seldom draft and prove little.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fireside.errors import VocabularyMismatchError
from fireside.generation.draft import check_vocabulary
from fireside.generation.results import GenerationResult
from fireside.generation.speculative import (
    MAX_DRAFT,
    DraftPolicy,
    PromptLookup,
    VerifyCost,
)
from fireside.model import Model

from ..speculative_corpus import FREE_WRITING, KINDS, QUOTING

N_TOKENS = 32
SHORT = {"quoting": N_TOKENS, "summarizing": 24, "free": 24}
"""Tokens per prompt: quotations run long enough for drafts to pay; the others are kept
shorter so the 60 prompts (each with and without speculation) stay fast."""


# -- the parts ---------------------------------------------------------------------------


def test_prompt_lookup_drafts_what_followed_the_longest_recent_match() -> None:
    lookup = PromptLookup([1, 2, 3, 4, 5, 9, 2, 3, 7, 8])
    assert lookup.draft(4) == []  # the suffix (7, 8) never occurred before
    lookup.extend([2, 3])  # (2, 3) last occurred before 7: the most recent match wins
    assert lookup.draft(4) == [7, 8, 2, 3]
    lookup.extend([4])  # (2, 3, 4) occurred once: the longer match wins over (3, 4)
    assert lookup.draft(3) == [5, 9, 2]
    assert lookup.draft(0) == []
    assert lookup.tail(3) == [2, 3, 4]
    assert PromptLookup([5]).tail(4) == [5, 5, 5, 5]


def test_prompt_lookup_needs_two_matching_tokens() -> None:
    lookup = PromptLookup([1, 2, 3, 9, 3])
    assert lookup.draft(4) == []  # only the single token 3 matches


def test_draft_policy_drafts_what_pays() -> None:
    policy = DraftPolicy(MAX_DRAFT)
    assert policy.length(None) == 1  # cost unknown: the cheapest draft measures it
    assert policy.length(0.0) == MAX_DRAFT  # free verification: as long as allowed
    for _ in range(DraftPolicy.EXPLORE - 1):
        assert policy.length(0.5) == 0  # a draft matched half the time does not pay
    assert policy.length(0.5) == 1  # but now and then one token is tried
    for _ in range(3 * DraftPolicy.EXPLORE):
        assert policy.length(1.0) == 0  # each token costs a step: even a match cannot pay
    for _ in range(8):
        policy.update(8, 8)
    assert policy.acceptance > 0.9
    assert 4 <= policy.length(0.2) <= MAX_DRAFT
    for _ in range(12):
        policy.update(4, 0)
    assert policy.acceptance < 0.2
    assert policy.length(0.2) == 0
    assert DraftPolicy(0).length(0.0) == 0


def test_verify_cost_is_measured_or_pinned() -> None:
    cost = VerifyCost()
    cost.verified(5, 1.0)  # no one-token time yet: nothing to compare with
    assert cost.beta is None
    cost.one_token(0.010)
    cost.verified(5, 0.030)  # 4 extra tokens cost 2 steps: half a step each
    assert cost.beta == pytest.approx(0.5)
    cost.pin(0.1)
    cost.verified(5, 0.050)
    assert cost.beta == 0.1


# -- the real model ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain(model_path: Path) -> Iterator[Model]:
    with Model(model_path, n_ctx=512, n_threads=1, speculative=False) as m:
        yield m


@pytest.fixture(scope="module")
def spec(model_path: Path) -> Iterator[Model]:
    with Model(model_path, n_ctx=512, n_threads=1, speculative="always") as m:
        yield m


def same(a: GenerationResult, b: GenerationResult) -> bool:
    return (a.tokens, a.text, a.finish_reason) == (b.tokens, b.text, b.finish_reason)


@pytest.mark.parametrize("kind", list(KINDS))
def test_greedy_output_is_identical_with_and_without_speculation(
    plain: Model, spec: Model, kind: str
) -> None:
    prompts = KINDS[kind]
    assert len(prompts) == 20
    before = spec.stats
    drafted = accepted = 0
    for prompt in prompts:
        expected = plain.generate(prompt, max_tokens=SHORT[kind], temperature=0)
        result = spec.generate(prompt, max_tokens=SHORT[kind], temperature=0)
        assert same(result, expected), (prompt, result.text, expected.text)
        assert expected.timings.draft_tokens == 0
        drafted += result.timings.draft_tokens
        accepted += result.timings.accepted_tokens
        assert result.timings.accepted_tokens <= result.timings.draft_tokens
    after = spec.stats
    assert after.n_draft_tokens - before.n_draft_tokens == drafted
    assert after.n_accepted_tokens - before.n_accepted_tokens == accepted
    assert after.exact_batch > 2  # the probe proved batches exact on this backend
    if kind == "quoting":
        assert accepted >= 50  # tokens that came without a decode of their own
        assert after.n_verify_steps > before.n_verify_steps
    assert plain.stats.n_draft_tokens == 0


@pytest.mark.parametrize(
    "sampling",
    [
        {"temperature": 1.0, "seed": 5, "repeat_penalty": 1.3, "dry_multiplier": 0.8},
        {"temperature": 0.7, "seed": 9, "mirostat": 2, "frequency_penalty": 0.5},
    ],
    ids=["penalties-dry", "mirostat"],
)
def test_seeded_sampling_gives_the_same_output_run_to_run(
    plain: Model, spec: Model, sampling: dict[str, object]
) -> None:
    for prompt in (QUOTING[0], QUOTING[5], FREE_WRITING[0]):
        first = spec.generate(prompt, max_tokens=N_TOKENS, **sampling)  # type: ignore[arg-type]
        again = spec.generate(prompt, max_tokens=N_TOKENS, **sampling)  # type: ignore[arg-type]
        assert same(first, again)
        # each kept token is the sampler's own pick at its position: the same as without
        expected = plain.generate(prompt, max_tokens=N_TOKENS, **sampling)  # type: ignore[arg-type]
        assert same(first, expected), (prompt, first.text, expected.text)


def test_grammar_state_follows_only_the_kept_tokens(plain: Model, spec: Model) -> None:
    schema = {
        "type": "object",
        "properties": {"quote": {"type": "string"}},
        "required": ["quote"],
    }
    before = spec.stats.n_accepted_tokens
    for prompt in QUOTING[:8:4]:
        options = {"max_tokens": 48, "json_schema": schema, "temperature": 0.0}
        expected = plain.generate(prompt, **options)  # type: ignore[arg-type]
        result = spec.generate(prompt, **options)  # type: ignore[arg-type]
        assert same(result, expected)
        assert result.text.startswith("{")
    assert spec.stats.n_accepted_tokens > before


def test_logprobs_and_stops_are_those_of_plain_decoding(plain: Model, spec: Model) -> None:
    for prompt in QUOTING[:2]:
        options = {"max_tokens": N_TOKENS, "temperature": 0.0, "logprobs": 2, "stop": ["root"]}
        expected = plain.generate(prompt, **options)  # type: ignore[arg-type]
        result = spec.generate(prompt, **options)  # type: ignore[arg-type]
        assert same(result, expected)
        assert result.logprobs == expected.logprobs


def test_streamed_text_is_the_result(spec: Model) -> None:
    stream = spec.generate(QUOTING[0], max_tokens=N_TOKENS, temperature=0, stream=True)
    text = "".join(stream)
    assert stream.result is not None
    assert text == stream.result.text
    assert stream.result.timings.accepted_tokens > 0


def test_speculative_false_and_bad_values(model_path: Path, plain: Model) -> None:
    plain.generate(QUOTING[0], max_tokens=8, temperature=0)
    assert plain.stats.n_draft_tokens == 0
    assert plain.stats.exact_batch == 0  # never probed
    for bad in ("yes", 1, None):
        with pytest.raises(ValueError, match="speculative must be"):
            Model(model_path, n_ctx=256, speculative=bad)  # type: ignore[arg-type]


def test_drafts_are_capped_to_the_batches_proved_exact(gemma_path: Path) -> None:
    """Gemma 3's Q4_K weights use 4-row kernel tiles on x86: a batch of 4 or more rows
    rounds differently from one-token decodes, so drafts stay short there (or off), and
    the output is still that of plain decoding."""
    prompt = "The list of the planets: Mercury, Venus, Earth, Mars. The list of the planets:"
    with Model(gemma_path, n_ctx=256, n_threads=1, speculative=False) as m:
        expected = m.generate(prompt, max_tokens=16, temperature=0)
    with Model(gemma_path, n_ctx=256, n_threads=1, speculative="always") as m:
        result = m.generate(prompt, max_tokens=16, temperature=0)
        exact = m.stats.exact_batch
    assert same(result, expected)
    assert 1 <= exact <= MAX_DRAFT + 1
    assert result.timings.draft_tokens <= (exact - 1) * len(result.tokens)


# -- a draft model -----------------------------------------------------------------------


def test_a_draft_model_drafts_and_the_output_is_the_targets(model_path: Path, plain: Model) -> None:
    """The test model drafts for itself (same vocabulary): nearly every draft is kept, and
    the output is still exactly plain decoding's."""
    prompts = [kind[i] for kind in KINDS.values() for i in (0, 7)]
    with Model(
        model_path, n_ctx=512, n_threads=1, speculative="always", draft_model=model_path
    ) as m:
        for prompt in prompts:
            expected = plain.generate(prompt, max_tokens=24, temperature=0)
            result = m.generate(prompt, max_tokens=24, temperature=0)
            assert same(result, expected), prompt
        stats = m.stats
    assert stats.n_draft_tokens > 0
    assert stats.n_accepted_tokens > stats.n_draft_tokens // 2


def test_a_draft_model_with_another_vocabulary_is_refused(
    model_path: Path, gemma_path: Path
) -> None:
    with pytest.raises(VocabularyMismatchError, match="vocabulary is 'spm', the target's 'bpe'"):
        Model(model_path, n_ctx=256, n_threads=1, draft_model=gemma_path)
    with pytest.raises(ValueError, match="draft_model needs speculative"):
        Model(model_path, n_ctx=256, speculative=False, draft_model=model_path)


class FakeVocab:
    """The vocabulary attributes check_vocabulary reads."""

    def __init__(self, n_vocab: int, *, odd: int | None = None, vocab_type: str = "bpe") -> None:
        self.path = f"fake-{n_vocab}.gguf"
        self.n_vocab = n_vocab
        self.vocab_type = vocab_type
        self.bos, self.eos, self.eot = 1, 2, -1
        self.odd = odd

    def token_text(self, token: int) -> str:
        return "other" if token == self.odd else f"t{token}"


def test_vocabularies_are_compared_by_type_size_specials_and_texts() -> None:
    target = FakeVocab(50_000)
    check_vocabulary(target, FakeVocab(50_100))  # type: ignore[arg-type]  # padding differs
    for draft, why in (
        (FakeVocab(50_200), "it has 50200 tokens, the target 50000"),
        (FakeVocab(50_000, vocab_type="spm"), "vocabulary is 'spm'"),
        (FakeVocab(50_000, odd=97 * (50_000 // 512)), r"token 9409 is 'other' there, 't9409'"),
    ):
        with pytest.raises(VocabularyMismatchError, match=why):
            check_vocabulary(target, draft)  # type: ignore[arg-type]
    specials = FakeVocab(50_000)
    specials.eos = 3
    with pytest.raises(VocabularyMismatchError, match="its eos token differs"):
        check_vocabulary(target, specials)  # type: ignore[arg-type]
