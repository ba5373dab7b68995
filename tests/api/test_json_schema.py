"""json_schema_to_grammar: llama.cpp's own converter behind fireside's thin pre-check.

What the converter would not enforce is refused, naming the keyword; what it converts is
checked with llama.cpp's own grammar engine (a text is accepted or not, token by token,
through ``fireside._core``), and end to end: greedy sampling under the grammar produces
JSON that ``jsonschema`` validates.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from fireside.errors import GrammarError
from fireside.generation.grammar_limits import GRAMMAR_MAX_REPETITION
from fireside.generation.json_schema import check_json_schema, json_schema_to_grammar

PERSON = {
    "type": "object",
    "properties": {
        "a": {"type": "integer"},
        "b": {"type": "boolean"},
        "c": {"type": "string", "maxLength": 5},
        "d": {"type": "null"},
    },
    "required": ["a", "c"],
    "additionalProperties": False,
}
TREE = {
    "$defs": {
        "tree": {
            "type": "object",
            "properties": {
                "v": {"type": "integer"},
                "kids": {"type": "array", "items": {"$ref": "#/$defs/tree"}},
            },
            "required": ["v"],
        }
    },
    "$ref": "#/$defs/tree",
}
LINKED = {  # a reference to the root itself, which llama.cpp reads only under $defs
    "type": "object",
    "properties": {"next": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}},
    "required": ["next"],
}
CODES = {"enum": ["a.b", "a(b", "ab", "abc", "x|y", "é", "[z]"]}  # a prefix-tree pattern


@pytest.fixture(scope="module")
def context(core, native_model):
    ctx = core.Context(native_model, n_ctx=512, n_batch=512, n_threads=1)
    yield ctx
    ctx.close()


def engine_accepts(core, native_model, context, schema: Any, text: str) -> bool:
    """Whether llama.cpp's grammar engine accepts ``text`` as a complete document."""
    eog = native_model.eos
    sampler = core.Sampler(native_model).add_grammar(json_schema_to_grammar(schema))
    sampler.add_logit_bias({eog: 1e4}).add_greedy()  # end-of-text wins once it is allowed
    for token in native_model.tokenize(text, add_special=False):
        try:
            sampler.accept(token)
        except ValueError:  # the binding refuses a token the grammar forbids
            return False
    if context.seq_pos_max(0) < 0:
        context.decode(native_model.tokenize("JSON:"))
    return native_model.is_eog(sampler.sample(context))


ENGINE_CASES = [
    (True, '{"a": [1, {"b": null}], "c": "d\\n"}', True),
    (True, '{"a": [1, }', False),
    ({"type": "object"}, '{"x": {"y": [true, false, 1.5e3]}}', True),
    ({"type": "object"}, "[1]", False),
    (TREE, '{"v": 1, "kids": [{"v": 2}, {"v": 3, "kids": [{"v": 4}]}]}', True),
    (TREE, '{"v": 1, "kids": [{"kids": []}]}', False),
    (LINKED, '{"next": {"next": {"next": null}}}', True),
    (LINKED, '{"next": {"next": 1}}', False),
    (PERSON, '{"a": 1, "c": "hi"}', True),
    (PERSON, '{"a": 1, "c": "too long"}', False),
    (PERSON, '{"a": 1}', False),
    ({"type": "integer", "minimum": -1009, "maximum": 13}, "-1009", True),
    ({"type": "integer", "minimum": -1009, "maximum": 13}, "14", False),
    ({"type": "integer", "exclusiveMinimum": 0}, "0", False),
    ({"type": "string"}, '"日本🎉 \\u00e9"', True),
    ({"type": "string", "pattern": "^[A-Z]{2}-[0-9]{3}$"}, '"AB-123"', True),
    ({"type": "string", "pattern": "^[A-Z]{2}-[0-9]{3}$"}, '"AB-1234"', False),
    ({"type": "string", "format": "date"}, '"2024-02-29"', True),
    ({"type": "string", "format": "date"}, '"2024-13-01"', False),
    ({"type": "array", "items": {"type": "integer"}, "minItems": 2}, "[1, 2]", True),
    ({"type": "array", "items": {"type": "integer"}, "minItems": 2}, "[1]", False),
    (
        {"type": "array", "prefixItems": [{"const": 1}, {"type": "string"}], "items": False},
        '[1, "x"]',
        True,
    ),
    (
        {"type": "array", "prefixItems": [{"const": 1}, {"type": "string"}], "items": False},
        '[1, "x", 2]',
        False,
    ),
    (CODES, '"a(b"', True),
    (CODES, '"a.b"', True),
    (CODES, '"axb"', False),
    (CODES, '"ab"', True),
    (CODES, '"é"', True),
    (CODES, '"x"', False),
]


@pytest.mark.parametrize(("schema", "text", "ok"), ENGINE_CASES, ids=range(len(ENGINE_CASES)))
def test_llama_cpp_engine_agrees(
    core, native_model, context, schema: Any, text: str, ok: bool
) -> None:
    assert engine_accepts(core, native_model, context, schema, text) == ok
    if ok:  # what llama.cpp accepts, jsonschema validates (formats included)
        jsonschema.validate(
            json.loads(text),
            schema if isinstance(schema, dict) else {},
            format_checker=jsonschema.FormatChecker(),
        )


ERRORS = [
    ({"type": "string", "pattern": "abc"}, "not anchored"),  # llama.cpp: enforceable in part
    ({"type": "string", "pattern": "^(a$"}, "unbalanced"),
    ({"type": "string", "pattern": "^(?=a)b$"}, "unsupported group syntax"),
    ({"type": "object", "minProperties": 1}, "'minProperties' keyword is not supported"),
    ({"type": "array", "uniqueItems": True}, "'uniqueItems'"),
    ({"type": "integer", "multipleOf": 3}, "'multipleOf'"),
    ({"not": {"type": "null"}}, "'not'"),
    ({"type": "number", "minimum": 0}, "minimum on a number"),
    ({"minimum": 0}, "minimum on a number"),
    ({"type": "integer", "minimum": 0, "exclusiveMinimum": 0}, "not both"),
    ({"type": "integer", "minimum": 10**18}, "16 digits"),
    ({"$ref": "#/$defs/a", "type": "object", "$defs": {"a": {}}}, "beside \\$ref"),
    ({"anyOf": [{"type": "string"}], "minLength": 2}, "beside anyOf"),
    ({"anyOf": [{}], "oneOf": [{}]}, "anyOf and oneOf"),
    ({"enum": ["a", 1], "type": "string"}, "not of type string"),
    ({"enum": ["a"], "maxLength": 1}, "beside enum"),
    ({"type": "string", "pattern": "^a+$", "maxLength": 3}, "beside pattern"),
    ({"type": "string", "format": "date", "minLength": 3}, "beside format"),
    ({"allOf": [{"type": "string"}, {"minLength": 1}]}, "allOf members must be objects"),
    (
        {"type": "object", "properties": {"a": {}}, "allOf": [{"properties": {}}]},
        "allOf is supported only",
    ),
    (
        {"type": "array", "prefixItems": [{}], "items": {"type": "string"}},
        "items beside prefixItems",
    ),
    ({"type": "array", "prefixItems": [{}], "minItems": 2}, "tuple of 1 items"),
    ({"type": "object", "properties": {"a": {}}, "required": ["b"]}, "'b' is not in properties"),
    ({"type": "string", "maxLength": GRAMMAR_MAX_REPETITION + 1}, "max_repetition"),
    ({"type": "array", "minItems": -1}, "non-negative integer"),
    ({"type": "nope"}, "unrecognized type nope"),
    ({"$ref": "#/$defs/missing"}, "cannot resolve \\$ref"),
    ({"$ref": "https://example.invalid/s.json"}, "only references into the same document"),
    ({"properties": {"a": False}}, "matches nothing"),
    ({"type": "integer", "minimum": float("nan")}, "not JSON"),
    ("string", "must be an object or a boolean"),
]


@pytest.mark.parametrize(("schema", "message"), ERRORS, ids=range(len(ERRORS)))
def test_unsupported_or_invalid_schemas_name_what(schema: Any, message: str) -> None:
    with pytest.raises(GrammarError, match=message) as info:
        json_schema_to_grammar(schema)
    assert isinstance(info.value, ValueError)


def test_errors_name_the_location() -> None:
    schema = {"type": "object", "properties": {"tags": {"type": "array", "uniqueItems": True}}}
    with pytest.raises(GrammarError, match="#/properties/tags: the 'uniqueItems'"):
        json_schema_to_grammar(schema)


def test_annotations_and_unknown_formats_are_ignored() -> None:
    plain = json_schema_to_grammar({"type": "string"})
    assert json_schema_to_grammar({"type": "string", "format": "email", "title": "x"}) == plain
    assert json_schema_to_grammar(True) == json_schema_to_grammar({})


def test_pre_check_rewrites_only_what_llama_cpp_cannot_read() -> None:
    assert check_json_schema({"items": True}) == {"items": {}}
    assert check_json_schema({"enum": ["ab", "ac"]}) == {"type": "string", "pattern": "^a(b|c)$"}
    assert check_json_schema({"enum": ['a"', "b"]}) == {"enum": ['a"', "b"]}  # needs escapes
    closed = {"type": "array", "prefixItems": [{}], "items": False}
    assert check_json_schema(closed) == {"type": "array", "prefixItems": [{}]}
    rooted = check_json_schema(LINKED)
    assert rooted["$ref"] == "#/$defs/fireside-root"


def test_deeply_nested_schema_is_a_grammar_error_not_a_crash() -> None:
    schema: dict[str, Any] = {}
    for _ in range(5000):
        schema = {"type": "array", "items": schema}
    with pytest.raises(GrammarError, match="max_depth"):
        json_schema_to_grammar(schema)


# --- end to end: constrained greedy generation validates -------------------------------

E2E = [
    (
        "a person",
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 20},
                "age": {"type": "integer", "minimum": 0, "maximum": 120},
                "languages": {
                    "type": "array",
                    "items": {"enum": ["en", "fr", "de"]},
                    "maxItems": 2,
                },
            },
            "required": ["name", "age", "languages"],
            "additionalProperties": False,
        },
    ),
    (
        "the sentiment of 'I love it'",
        {
            "type": "object",
            "properties": {
                "sentiment": {"enum": ["positive", "negative", "neutral"]},
                "confidence": {"type": "integer", "minimum": 0, "maximum": 100},
            },
            "required": ["sentiment", "confidence"],
        },
    ),
    (
        "two points and a label",
        {
            "$defs": {
                "point": {
                    "type": "object",
                    "properties": {
                        "x": {"type": "integer", "minimum": -99, "maximum": 99},
                        "y": {"type": "integer", "minimum": -99, "maximum": 99},
                    },
                    "required": ["x", "y"],
                    "additionalProperties": False,
                }
            },
            "type": "object",
            "properties": {
                "points": {
                    "type": "array",
                    "items": {"$ref": "#/$defs/point"},
                    "minItems": 1,
                    "maxItems": 2,
                },
                "label": {"anyOf": [{"type": "string", "maxLength": 10}, {"type": "null"}]},
            },
            "required": ["points", "label"],
        },
    ),
]


def generate(core, native_model, context, grammar: str, prompt: str, max_tokens: int = 96) -> str:
    """Greedy decoding under ``grammar`` with the raw native API."""
    sampler = core.Sampler(native_model).add_grammar(grammar).add_greedy()
    context.memory_clear()
    context.decode(native_model.tokenize(prompt, parse_special=True))
    out = b""
    for _ in range(max_tokens):
        token = sampler.sample(context)
        if native_model.is_eog(token):
            return out.decode()
        out += native_model.token_to_piece(token)
        context.decode([token])
    pytest.fail(f"no end of text within {max_tokens} tokens: {out!r}")


@pytest.mark.parametrize(("what", "schema"), E2E, ids=[w for w, _ in E2E])
def test_constrained_generation_validates(
    core, native_model, context, what: str, schema: dict
) -> None:
    prompt = f"<|im_start|>user\nDescribe {what} as JSON.<|im_end|>\n<|im_start|>assistant\n"
    text = generate(core, native_model, context, json_schema_to_grammar(schema), prompt)
    jsonschema.validate(json.loads(text), schema, format_checker=jsonschema.FormatChecker())
