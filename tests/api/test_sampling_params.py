"""SamplingParams validation and the sampler chain build_sampler makes from it."""

from __future__ import annotations

import dataclasses
import math
import re
import typing

import numpy as np
import pytest
from fireside.errors import GrammarError
from fireside.generation.sampling import (
    BOUNDS,
    DEFAULTS,
    SEED_MAX,
    SamplingOptions,
    SamplingParams,
    build_sampler,
    resolve_seed,
)

NAN, INF = math.nan, math.inf

INVALID = [
    ("temperature", -0.1, "temperature must be in [0, 2]"),
    ("temperature", 2.01, "temperature must be in [0, 2]"),
    ("temperature", NAN, "temperature must be a finite number"),
    ("temperature", INF, "temperature must be a finite number"),
    ("temperature", True, "temperature must be a number"),
    ("temperature", "0.7", "temperature must be a number"),
    ("temperature", None, "temperature must be a number"),
    ("top_k", -1, "top_k must be >= 0"),
    ("top_k", 1.5, "top_k must be an integer"),
    ("top_k", True, "top_k must be an integer"),
    ("top_k", INF, "top_k must be an integer"),
    ("top_p", 1.5, "top_p must be in [0, 1]"),
    ("top_p", -0.01, "top_p must be in [0, 1]"),
    ("top_p", NAN, "top_p must be a finite number"),
    ("min_p", 1.01, "min_p must be in [0, 1]"),
    ("min_p", -1, "min_p must be in [0, 1]"),
    ("typical_p", 0, "typical_p must be in (0, 1]"),
    ("typical_p", 1.2, "typical_p must be in (0, 1]"),
    ("repeat_penalty", 0, "repeat_penalty must be > 0"),
    ("repeat_penalty", -1.0, "repeat_penalty must be > 0"),
    ("repeat_penalty", INF, "repeat_penalty must be a finite number"),
    ("repeat_last_n", -2, "repeat_last_n must be >= -1"),
    ("repeat_last_n", False, "repeat_last_n must be an integer"),
    ("frequency_penalty", 2.5, "frequency_penalty must be in [-2, 2]"),
    ("frequency_penalty", -2.01, "frequency_penalty must be in [-2, 2]"),
    ("presence_penalty", 3, "presence_penalty must be in [-2, 2]"),
    ("presence_penalty", -INF, "presence_penalty must be a finite number"),
    ("seed", -1, f"seed must be None or an integer in [0, {SEED_MAX}]"),
    ("seed", 2**32, f"seed must be None or an integer in [0, {SEED_MAX}]"),
    ("seed", True, "seed must be an integer"),
    ("seed", 1.5, "seed must be an integer"),
    ("seed", "42", "seed must be an integer"),
    ("mirostat", 3, "mirostat must be 0 (off), 1 or 2"),
    ("mirostat", -1, "mirostat must be 0 (off), 1 or 2"),
    ("mirostat", True, "mirostat must be an integer"),
    ("mirostat_tau", -1, "mirostat_tau must be > 0"),
    ("mirostat_tau", 0, "mirostat_tau must be > 0"),
    ("mirostat_eta", 0, "mirostat_eta must be > 0"),
    ("mirostat_eta", NAN, "mirostat_eta must be a finite number"),
    ("dry_multiplier", -0.5, "dry_multiplier must be >= 0"),
    ("dry_base", 0.9, "dry_base must be >= 1"),
    ("dry_allowed_length", -1, "dry_allowed_length must be >= 0"),
    ("logit_bias", [1, 2], "logit_bias must be a dict"),
    ("logit_bias", {"12": 1.0}, "logit_bias token id must be an integer"),
    ("logit_bias", {-3: 1.0}, "logit_bias token id must be >= 0"),
    ("logit_bias", {True: 1.0}, "logit_bias token id must be an integer"),
    ("logit_bias", {5: NAN}, "logit_bias[5] must be a number"),
    ("logit_bias", {5: "x"}, "logit_bias[5] must be a number"),
    ("logit_bias", {5: INF}, "logit_bias[5] must be finite or -inf"),
    ("grammar", "", "grammar must be None or a non-empty GBNF string"),
    ("grammar", 7, "grammar must be None or a non-empty GBNF string"),
]


@pytest.mark.parametrize(("field", "value", "message"), INVALID)
def test_invalid_values_raise_value_error_naming_the_field(field, value, message) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        SamplingParams(**{field: value})
    assert str(info.value).startswith(field.split("[")[0])
    assert repr(value) in str(info.value) or field == "logit_bias"


def test_every_field_has_an_invalid_case() -> None:
    tested = {field for field, _, _ in INVALID}
    assert tested == {f.name for f in dataclasses.fields(SamplingParams)}


def test_defaults() -> None:
    p = SamplingParams()
    assert (p.temperature, p.top_k, p.top_p, p.min_p, p.seed) == (0.8, 40, 0.95, 0.05, None)
    assert not p.greedy


def test_edge_values_are_accepted_and_normalised() -> None:
    p = SamplingParams(
        temperature=0,
        top_k=np.int64(0),
        top_p=1,
        min_p=np.float32(1.0),
        typical_p=1e-6,
        repeat_penalty=1e-3,
        repeat_last_n=-1,
        frequency_penalty=-2,
        presence_penalty=2,
        seed=SEED_MAX,
        mirostat=2,
        dry_base=1,
        logit_bias={np.int32(3): -INF, 4: 5},
    )
    assert p.greedy
    assert type(p.temperature) is float and type(p.top_k) is int
    assert p.logit_bias == {3: -INF, 4: 5.0}
    assert all(type(k) is int and type(v) is float for k, v in p.logit_bias.items())
    assert SamplingParams(top_k=40.0).top_k == 40
    assert SamplingParams(seed=0).seed == 0


def test_params_are_frozen_and_bias_is_copied() -> None:
    bias = {1: 2.0}
    p = SamplingParams(logit_bias=bias)
    bias[1] = 99.0
    assert p.logit_bias == {1: 2.0}
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.temperature = 1.0  # type: ignore[misc]


def test_resolve_seed() -> None:
    assert resolve_seed(7) == 7
    assert resolve_seed(0) == 0
    # llama.cpp reads 0xFFFFFFFF as "random": that seed must stay reproducible
    assert resolve_seed(SEED_MAX) == SEED_MAX - 1
    seeds = {resolve_seed(None) for _ in range(20)}
    assert len(seeds) > 1 and all(0 <= s < SEED_MAX for s in seeds)


# --- build_sampler against the real model ---------------------------------------------


@pytest.fixture(scope="module")
def context(core, native_model):
    ctx = core.Context(native_model, n_ctx=256, n_batch=64, n_threads=1)
    ctx.decode(native_model.tokenize("The capital of France is"))
    yield ctx
    ctx.close()


def test_default_chain_is_in_llama_cpp_order(native_model) -> None:
    assert build_sampler(native_model, SamplingParams()).stages == [
        "top-k",
        "top-p",
        "min-p",
        "temp",
        "dist",
    ]


def test_greedy_chain(native_model) -> None:
    assert build_sampler(native_model, SamplingParams(temperature=0)).stages == ["greedy"]
    sampler = build_sampler(native_model, SamplingParams(temperature=0, repeat_penalty=1.1))
    assert sampler.stages == ["penalties", "greedy"]


def test_full_chain_puts_the_grammar_first(native_model) -> None:
    params = SamplingParams(
        grammar='root ::= "yes" | "no"',
        logit_bias={10: 1.0},
        repeat_penalty=1.1,
        dry_multiplier=0.8,
        top_k=20,
        typical_p=0.9,
        top_p=0.9,
        min_p=0.1,
        temperature=0.7,
        seed=1,
    )
    assert build_sampler(native_model, params).stages == [
        "grammar",
        "logit-bias",
        "penalties",
        "dry",
        "top-k",
        "typical",
        "top-p",
        "min-p",
        "temp",
        "dist",
    ]


def test_disabled_stages_are_left_out(native_model) -> None:
    params = SamplingParams(top_k=0, top_p=1.0, min_p=0.0, typical_p=1.0)
    assert build_sampler(native_model, params).stages == ["temp", "dist"]
    no_window = SamplingParams(repeat_penalty=1.3, repeat_last_n=0)
    assert "penalties" not in build_sampler(native_model, no_window).stages


def test_whole_context_penalty_window_is_enabled(native_model) -> None:
    params = SamplingParams(repeat_penalty=1.2, repeat_last_n=-1, dry_multiplier=0.5)
    stages = build_sampler(native_model, params).stages
    assert "penalties" in stages and "dry" in stages  # "?dry" would mean llama.cpp disabled it


def test_mirostat_chains(native_model) -> None:
    assert build_sampler(native_model, SamplingParams(mirostat=1)).stages == ["temp", "mirostat"]
    assert build_sampler(native_model, SamplingParams(mirostat=2)).stages == ["temp", "mirostat-v2"]
    assert build_sampler(native_model, SamplingParams(mirostat=2, temperature=0)).stages == [
        "greedy"
    ]


def test_invalid_grammar_raises_grammar_error(native_model) -> None:
    with pytest.raises(GrammarError):
        build_sampler(native_model, SamplingParams(grammar="root ::= [unclosed"))


def test_logit_bias_token_outside_vocabulary(native_model) -> None:
    with pytest.raises(
        ValueError, match=re.escape(f"out of range for a vocabulary of {native_model.n_vocab}")
    ):
        build_sampler(native_model, SamplingParams(logit_bias={native_model.n_vocab: 1.0}))


def test_greedy_picks_the_argmax(native_model, context) -> None:
    token = build_sampler(native_model, SamplingParams(temperature=0)).sample(context)
    assert token == int(np.argmax(context.logits()))


def test_logit_bias_bans_a_token(native_model, context) -> None:
    best = int(np.argmax(context.logits()))
    banned = SamplingParams(temperature=0, logit_bias={best: -INF})
    assert build_sampler(native_model, banned).sample(context) != best


def test_grammar_constrains_the_choice(native_model, context) -> None:
    params = SamplingParams(temperature=0, grammar='root ::= " Zürich" | " Oslo"')
    piece = native_model.token_to_piece(
        build_sampler(native_model, params).sample(context)
    ).decode()
    assert " Zürich".startswith(piece) or " Oslo".startswith(piece)


def _draws(native_model, context, params: SamplingParams, n: int = 8) -> list[int]:
    sampler = build_sampler(native_model, params)
    return [sampler.sample(context) for _ in range(n)]


def test_same_seed_same_draws(native_model, context) -> None:
    for seed in (0, 1234, SEED_MAX):
        params = SamplingParams(temperature=1.5, top_k=0, top_p=1.0, min_p=0.0, seed=seed)
        assert _draws(native_model, context, params) == _draws(native_model, context, params)


def test_unseeded_samplers_differ(native_model, context) -> None:
    params = SamplingParams(temperature=2.0, top_k=0, top_p=1.0, min_p=0.0)
    runs = {tuple(_draws(native_model, context, params, 12)) for _ in range(3)}
    assert len(runs) > 1


def test_the_keyword_form_matches_the_definition() -> None:
    hints = typing.get_type_hints(SamplingOptions)
    params = typing.get_type_hints(SamplingParams)
    assert list(hints) == [f.name for f in dataclasses.fields(SamplingParams)]
    assert hints == params
    assert DEFAULTS == {f.name: f.default for f in dataclasses.fields(SamplingParams)}
    assert set(BOUNDS) <= set(hints)


def test_unknown_options_are_named() -> None:
    with pytest.raises(TypeError, match="unknown sampling option 'temprature'; the options"):
        SamplingParams.of({"temprature": 0.5})
    assert SamplingParams.of({"top_k": 3}) == SamplingParams(top_k=3)


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_bounds_are_what_the_checks_enforce(name: str) -> None:
    bounds = BOUNDS[name]
    SamplingParams(**{name: bounds.hi if math.isfinite(bounds.hi) else 1e9})
    if not bounds.lo_open:
        SamplingParams(**{name: bounds.lo})
    below = bounds.lo if bounds.lo_open else bounds.lo - (1 if bounds.integer else 0.01)
    with pytest.raises(ValueError, match=re.escape(f"{name} must be {bounds.text}")):
        SamplingParams(**{name: below})


def test_the_server_takes_the_same_options() -> None:
    from fireside.server import protocol

    hints = typing.get_type_hints(SamplingOptions)
    fields = protocol._GenerationRequest.model_fields
    for name in protocol.SAMPLING_FIELDS:
        assert name in hints and fields[name].default is None  # None: fireside's default
    omitted = set(hints) - set(protocol.SAMPLING_FIELDS)
    assert omitted == {"seed", "logit_bias", "grammar"}  # OpenAI's shapes; response_format
    request = protocol.ChatCompletionRequest(
        model="m", messages=[{"role": "user", "content": "hi"}], dry_base=2, seed=2**40 + 5
    )
    assert request.sampling == {"dry_base": 2.0, "seed": 5}
    with pytest.raises(ValueError, match=re.escape("typical_p must be in (0, 1]")):
        protocol.CompletionRequest(model="m", prompt="hi", typical_p=0)
