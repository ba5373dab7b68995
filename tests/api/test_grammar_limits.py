"""Grammars and JSON schemas are untrusted input: each bound is tried, and a grammar over
one is a GrammarError naming the limit (never a crash, a hang or gigabytes of memory)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fireside import _core
from fireside.errors import GrammarError
from fireside.generation import grammar_limits as limits
from fireside.generation.json_schema import json_schema_to_grammar
from fireside.generation.sampling import SamplingParams, build_sampler
from fireside.model import Model

# s = anyOf[[s, 1], [s, 2], 0]: after n "[" the text can be parsed 2**n ways
AMBIGUOUS: dict[str, Any] = {
    "anyOf": [
        {"type": "array", "prefixItems": [{"$ref": "#"}, {"const": 1}], "items": False},
        {"type": "array", "prefixItems": [{"$ref": "#"}, {"const": 2}], "items": False},
        {"const": 0},
    ]
}


def _refused(native_model: Any, grammar: str, limit: str) -> GrammarError:
    with pytest.raises(GrammarError, match=limit) as info:
        _core.Sampler(native_model).add_grammar(grammar)
    assert isinstance(info.value, ValueError)
    return info.value


# -- before building ------------------------------------------------------------------


def test_a_grammar_over_the_size_limit_is_refused(native_model: Any) -> None:
    grammar = "root ::= " + " | ".join(f'"w{i}"' for i in range(30000))  # about 200 KB
    assert len(grammar) > 200_000
    error = _refused(native_model, grammar, "max_bytes")
    assert str(limits.GRAMMAR_MAX_BYTES) in str(error)


def test_nesting_within_the_size_limit_is_refused(native_model: Any) -> None:
    depth = limits.GRAMMAR_MAX_NESTING + 1
    _refused(native_model, "root ::= " + "(" * depth + '"a"' + ")" * depth, "max_nesting")
    depth = limits.GRAMMAR_MAX_NESTING  # at the limit it builds
    _core.Sampler(native_model).add_grammar("root ::= " + "(" * depth + '"a"' + ")" * depth)


def test_100k_nested_parentheses_do_not_crash_the_process(model_path: Path) -> None:
    """llama.cpp's parser recurses once per parenthesis: 100,000 of them overflowed the
    stack (SIGSEGV). In a subprocess, so a crash fails this test instead of the run."""
    code = textwrap.dedent(
        """
        import sys
        from fireside import _core
        from fireside.errors import GrammarError
        from fireside.generation.sampling import SamplingParams, build_sampler
        model = _core.Model(sys.argv[1], vocab_only=True)
        for n in (100_000, 20_000):  # over the size limit, and within it
            grammar = "root ::= " + "(" * n + '"a"' + ")" * n
            try:
                build_sampler(model, SamplingParams(grammar=grammar))
            except GrammarError as e:
                print("GrammarError:", e)
            else:
                print("accepted")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(model_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr[-2000:])
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout
    assert lines[0].startswith("GrammarError:") and "max_bytes" in lines[0]
    assert lines[1].startswith("GrammarError:") and "max_nesting" in lines[1]


@pytest.mark.parametrize(
    ("grammar", "limit"),
    [
        ('root ::= "a"{10001}', "max_repetition"),
        ('root ::= "a"{0,10001}', "max_repetition"),
        ("root ::= " + " ".join(['"abcdefghij"{9999}'] * 11), "max_expansion"),
        ("root ::= " + " | ".join(f'"a{i}"' for i in range(300)), "max_branching"),
        ('root ::= x\nx ::= y "a"\ny ::= x | "b"', "left-recursive"),
    ],
)
def test_grammar_bounds(native_model: Any, grammar: str, limit: str) -> None:
    _refused(native_model, grammar, limit)


def test_repetitions_are_measured_by_what_they_expand_to(native_model: Any) -> None:
    # fine: llama.cpp expands these into a few thousand elements
    _core.Sampler(native_model).add_grammar('root ::= "ab"{2000} [0-9]{0,2000}')


# -- while running ----------------------------------------------------------------------


def test_an_ambiguous_grammar_ends_with_an_error_within_a_few_tokens(model: Model) -> None:
    """The ambiguous schema plus a bias that forces "[": llama.cpp's matcher tracked 2**n
    parse states (token 14 took 30 s). The budget ends it after a few tokens."""
    bracket = model.tokenize("[", add_special=False)
    assert len(bracket) == 1
    chunks: list[str] = []
    stream = model.generate(
        "Hello",
        json_schema=AMBIGUOUS,
        logit_bias={bracket[0]: 100.0},
        temperature=0,
        max_tokens=40,
        stream=True,
    )
    with pytest.raises(GrammarError, match="max_states"):
        chunks.extend(stream)
    assert set("".join(chunks)) <= set("[ \n\t")
    assert len(chunks) < 20


def test_a_grammar_that_needs_too_many_checks_per_token_ends(native_model: Any) -> None:
    # 120 alternatives that all stay open: every token is checked against 240 states
    grammar = "root ::= " + " | ".join(f'" " w "{i}"' for i in range(120)) + "\nw ::= [a-z ]*\n"
    ctx = _core.Context(native_model, n_ctx=64, n_threads=1)
    sampler = build_sampler(native_model, SamplingParams(temperature=0, grammar=grammar))
    ctx.decode(native_model.tokenize("Hello"))
    with pytest.raises(GrammarError, match="max_checks"):
        for _ in range(8):
            ctx.decode([sampler.sample(ctx)])
    ctx.close()


def test_the_budget_error_is_sticky_until_reset(native_model: Any) -> None:
    sampler = _core.Sampler(native_model).add_grammar(json_schema_to_grammar(AMBIGUOUS))
    bracket = native_model.tokenize("[", add_special=False)[0]
    with pytest.raises(GrammarError, match="max_states"):
        for _ in range(40):
            sampler.accept(bracket)
    with pytest.raises(GrammarError, match="max_states"):
        sampler.accept(bracket)
    sampler.reset()
    sampler.accept(bracket)  # a fresh start
    sampler.clone().accept(bracket)


# -- JSON schemas -------------------------------------------------------------------------


def test_a_50000_value_enum_is_refused_naming_the_limit() -> None:
    schema = {"enum": [f"value-{i}" for i in range(50_000)]}
    with pytest.raises(GrammarError, match="max_enum_values") as info:
        json_schema_to_grammar(schema)
    assert "50000" in str(info.value) and str(limits.SCHEMA_MAX_ENUM_VALUES) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_a_1000_value_enum_is_a_prefix_tree_and_generates(model: Model) -> None:
    # llama.cpp writes an enum as one alternative per value, which runs out of the
    # per-token budget from a few dozen values that share a beginning; fireside hands
    # string enums to llama.cpp's converter as a prefix-tree `pattern` instead.
    values = [f"option number {i}" for i in range(1000)]
    schema = {"enum": values}
    grammar = json_schema_to_grammar(schema)
    assert grammar.count("option number") == 1  # shared beginnings are written once
    result = model.generate("Pick one:", json_schema=schema, max_tokens=16, temperature=0)
    assert json.loads(result.text) in values


def test_enum_values_of_every_kind_are_matched_exactly(model: Model) -> None:
    schema = {"enum": ["a", "ab", "abc", 1, 12, None, True, {"k": [1]}, "é", 'a"b']}
    for seed in range(3):
        result = model.generate("Value:", json_schema=schema, max_tokens=16, seed=seed)
        jsonschema.validate(json.loads(result.text), schema)


def test_schema_node_and_depth_limits() -> None:
    wide = {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(5000)}}
    with pytest.raises(GrammarError, match="max_nodes"):
        json_schema_to_grammar(wide)
    deep: dict[str, Any] = {"type": "integer"}
    for _ in range(limits.SCHEMA_MAX_DEPTH + 1):
        deep = {"type": "array", "items": deep}
    with pytest.raises(GrammarError, match="max_depth"):
        json_schema_to_grammar(deep)


def test_huge_number_bounds_do_not_nest_the_grammar_past_its_limit(model: Model) -> None:
    schema = {"type": "integer", "minimum": -(10**300), "maximum": 10**300}
    result = model.generate("Number:", json_schema=schema, max_tokens=20, temperature=0)
    assert isinstance(json.loads(result.text), int)
    with pytest.raises(GrammarError, match="16 digits"):  # llama.cpp would loosen it
        json_schema_to_grammar({"type": "integer", "minimum": 10**20})


# -- sampling parameters ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["top_k", "repeat_last_n", "dry_allowed_length"])
def test_counts_beyond_32_bits_name_the_parameter(name: str) -> None:
    with pytest.raises(ValueError, match=f"{name} must be at most 2147483647"):
        SamplingParams(**{name: 2**64})
