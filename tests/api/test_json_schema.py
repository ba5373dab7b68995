"""json_schema_to_grammar: the grammar accepts exactly the JSON the schema allows.

Non-recursive grammars are checked exhaustively in pure Python by translating the GBNF
into a regular expression; recursive ones, and the grammar syntax itself, are checked by
llama.cpp's own grammar engine through ``fireside._core``; and end to end, greedy
sampling under the grammar produces JSON that ``jsonschema`` validates.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import jsonschema
import pytest
from fireside.errors import GrammarError
from fireside.generation.json_schema import MAX_REPEAT, json_schema_to_grammar

# --- GBNF -> Python regex, for grammars without recursion ------------------------------

_TOKEN = re.compile(
    r"""\s*(?:(?P<lit>"(?:\\.|[^"\\])*")|(?P<cls>\[(?:\\.|[^\]\\])*\])|(?P<rep>\{\d+(?:,\d*)?\})"""
    r"""|(?P<op>[()|?*+])|(?P<name>[a-zA-Z0-9-]+))"""
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"'}


def _literal(text: str) -> str:
    out, i = [], 1
    while i < len(text) - 1:
        if text[i] == "\\":
            if text[i + 1] == "x":
                out.append(chr(int(text[i + 2 : i + 4], 16)))
                i += 4
                continue
            out.append(_ESCAPES[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return re.escape("".join(out))


def to_regex(grammar: str) -> re.Pattern[str]:
    rules = {}
    for line in grammar.strip().splitlines():
        name, body = line.split(" ::= ", 1)
        rules[name] = body

    def expand(name: str, active: tuple[str, ...]) -> str:
        if name in active:
            raise RecursionError(f"rule {name} is recursive")
        out = []
        pos = 0
        body = rules[name]
        while pos < len(body):
            m = _TOKEN.match(body, pos)
            assert m and m.end() > pos, f"cannot read {body[pos:]!r}"
            pos = m.end()
            if m["lit"]:
                out.append(_literal(m["lit"]))
            elif m["cls"]:
                out.append(m["cls"])
            elif m["rep"]:
                out.append(m["rep"])
            elif m["op"]:
                out.append("(?:" if m["op"] == "(" else m["op"])
            elif m["name"]:
                out.append(f"(?:{expand(m['name'], (*active, name))})")
        return "".join(out)

    return re.compile(expand("root", ()))


def matches(schema: Any, text: str) -> bool:
    return to_regex(json_schema_to_grammar(schema)).fullmatch(text) is not None


def check(schema: Any, accepted: list[str], rejected: list[str]) -> None:
    pattern = to_regex(json_schema_to_grammar(schema))
    for text in accepted:
        assert pattern.fullmatch(text), f"{text!r} should match {schema}"
        jsonschema.validate(json.loads(text), schema if isinstance(schema, dict) else {})
    for text in rejected:
        assert not pattern.fullmatch(text), f"{text!r} should not match {schema}"


# --- numbers ---------------------------------------------------------------------------

INTEGER_BOUNDS = [
    (None, None),
    (0, None),
    (1, None),
    (5, None),
    (-7, None),
    (None, 0),
    (None, -1),
    (None, 250),
    (-5, 5),
    (-120, 37),
    (7, 7),
    (0, 0),
    (10, 99),
    (99, 100),
    (13, 1009),
    (-1009, -13),
    (-1, 1),
]


@pytest.mark.parametrize(("lo", "hi"), INTEGER_BOUNDS)
def test_integer_ranges_are_exact(lo: int | None, hi: int | None) -> None:
    schema: dict[str, Any] = {"type": "integer"}
    if lo is not None:
        schema["minimum"] = lo
    if hi is not None:
        schema["maximum"] = hi
    pattern = to_regex(json_schema_to_grammar(schema))
    for n in range(-1500, 1500):
        inside = (lo is None or n >= lo) and (hi is None or n <= hi)
        assert bool(pattern.fullmatch(str(n))) == inside, (schema, n)
    for text in ["01", "-0", "+1", "1.0", "", "--1", "1e2"]:
        assert not pattern.fullmatch(text), (schema, text)


def test_exclusive_and_fractional_integer_bounds() -> None:
    check(
        {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10}, ["1", "9"], ["0", "10"]
    )
    check({"type": "integer", "minimum": 2.5, "maximum": 4.5}, ["3", "4"], ["2", "5"])
    check({"type": "integer", "exclusiveMinimum": 2.5}, ["3"], ["2"])
    # draft 4: exclusiveMinimum/Maximum are flags on minimum/maximum
    draft4 = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer"}
    check(
        {**draft4, "minimum": 0, "exclusiveMinimum": True, "maximum": 3, "exclusiveMaximum": True},
        ["1", "2"],
        ["0", "3"],
    )
    check({**draft4, "minimum": 0, "exclusiveMinimum": False}, ["0"], ["-1"])


def test_unbounded_numbers() -> None:
    check(
        {"type": "number"},
        ["0", "-0.5", "12.25", "1e10", "1E-5", "12.5e+3", "-7", "3.1415926535"],
        ["01", ".5", "1.", "+1", "1e", "NaN", "Infinity", "0x10", "1e999"],
    )
    # no number runs on forever: digits are bounded
    assert not matches({"type": "number"}, "1" * 17)
    assert not matches({"type": "integer"}, "9" * 17)


@pytest.mark.parametrize(("lo", "hi"), [(0, 1), (-5, 5), (0, None), (None, -2), (3, 10)])
def test_number_ranges_are_sound(lo: int | None, hi: int | None) -> None:
    schema: dict[str, Any] = {"type": "number"}
    if lo is not None:
        schema["minimum"] = lo
    if hi is not None:
        schema["maximum"] = hi
    pattern = to_regex(json_schema_to_grammar(schema))
    candidates = [str(n) for n in range(-30, 31)] + [f"{x / 8}" for x in range(-240, 241)]
    candidates += ["-0.5", "0.001", "0.999", "9.75", "-1.25", "2.0", "10.0"]
    accepted = [c for c in candidates if pattern.fullmatch(c)]
    for text in accepted:
        jsonschema.validate(json.loads(text), schema)
    # everything strictly inside the range, and the bounds themselves, is reachable
    for text in candidates:
        value = float(text)
        if (lo is None or value > lo) and (hi is None or value < hi):
            assert text in accepted, (schema, text)
    for bound in (lo, hi):
        if bound is not None:
            assert pattern.fullmatch(str(bound))


# --- strings ---------------------------------------------------------------------------


def test_strings_and_escapes() -> None:
    check(
        {"type": "string"},
        [
            '""',
            '"plain"',
            r'"q\"uote"',
            r'"back\\slash"',
            r'"\/\b\f\n\r\t"',
            r'"\u00e9\u4e2D"',
            '"日本🎉"',
        ],
        ['"raw\nnewline"', '"ctrl\x01"', '"un"escaped"', r'"\x41"', r'"\u12"', '"open', "plain"],
    )
    # a lone surrogate escape decodes to no valid character: never generated
    assert not matches({"type": "string"}, r'"\ud83d"')
    assert not matches({"type": "string"}, r'"\uDFFF"')


def test_string_length_counts_characters() -> None:
    check(
        {"type": "string", "minLength": 2, "maxLength": 3},
        ['"ab"', '"abc"', r'"a\nb"', '"日本語"'],
        ['"a"', '""', '"abcd"', r'"\u0041\u0042\u0043\u0044"'],
    )
    check({"type": "string", "maxLength": 0}, ['""'], ['"a"'])


def test_very_long_repetitions_are_capped_but_never_looser() -> None:
    grammar = json_schema_to_grammar({"type": "string", "maxLength": 100_000})
    assert f"{{0,{MAX_REPEAT}}}" in grammar
    with pytest.raises(GrammarError, match="minimum count above"):
        json_schema_to_grammar({"type": "string", "minLength": MAX_REPEAT + 1})


@pytest.mark.parametrize(
    ("fmt", "good", "bad"),
    [
        (
            "date",
            ["2024-02-29", "1999-12-31"],
            ["2024-13-01", "2024-1-01", "2024-00-10", "24-01-01"],
        ),
        (
            "time",
            ["12:30:00Z", "23:59:59.123+02:00", "00:00:00-05:30"],
            ["24:00:00Z", "12:30:00", "12:60:00Z"],
        ),
        (
            "date-time",
            ["2024-01-01T00:00:00Z", "2024-06-30T18:45:10.5+01:00"],
            ["2024-01-01 00:00:00Z"],
        ),
        (
            "uuid",
            ["123e4567-e89b-12d3-a456-426614174000"],
            ["123e4567e89b12d3a456426614174000", "g23e4567-e89b-12d3-a456-426614174000"],
        ),
    ],
)
def test_string_formats(fmt: str, good: list[str], bad: list[str]) -> None:
    schema = {"type": "string", "format": fmt}
    check(schema, [json.dumps(g) for g in good], [json.dumps(b) for b in bad])
    if fmt != "time":  # Python's fallback time checker knows no offsets
        for g in good:
            jsonschema.validate(g, schema, format_checker=jsonschema.FormatChecker())


def test_unknown_formats_are_annotations() -> None:
    assert json_schema_to_grammar({"type": "string", "format": "email"}) == json_schema_to_grammar(
        {"type": "string"}
    )


# --- enum, const, type lists, combinators ----------------------------------------------


def test_enum_and_const() -> None:
    schema = {"enum": ["red", 1, None, True, {"k": [1, "é"]}, 2.5]}
    check(
        schema,
        ['"red"', "1", "null", "true", '{"k":[1,"é"]}', "2.5"],
        ['"blue"', "false", "1.0", '"Red"'],
    )
    check({"const": "only"}, ['"only"'], ['"other"'])
    check({"type": "string", "enum": ["a", 1, "b"]}, ['"a"', '"b"'], ["1"])  # filtered by type
    check({"type": "integer", "enum": [1, 2.0, 2.5, "3"]}, ["1", "2.0"], ["2.5", '"3"'])


def test_type_lists_and_any_of() -> None:
    check({"type": ["string", "null"], "maxLength": 2}, ['"ab"', "null"], ['"abc"', "1"])
    check({"type": ["integer", "number"]}, ["1", "1.5"], ['"1"'])
    check(
        {"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 0}]},
        ['"x"', "3"],
        ["-3", "true"],
    )
    check({"oneOf": [{"type": "boolean"}, {"type": "null"}]}, ["true", "null"], ['"true"'])
    check({"anyOf": [False, {"type": "null"}]}, ["null"], ["false"])


def test_any_of_applies_sibling_keywords_to_each_option() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "additionalProperties": False,
        "anyOf": [{"required": ["a"]}, {"required": ["b"]}],
    }
    check(schema, ['{"a":1}', '{"b":2}', '{"a":1,"b":2}'], ["{}", '{"c":1}'])


def test_all_of_merges_objects() -> None:
    schema = {
        "$defs": {
            "named": {
                "type": "object",
                "properties": {"name": {"type": "string"}},
                "required": ["name"],
            }
        },
        "allOf": [
            {"$ref": "#/$defs/named"},
            {"properties": {"age": {"type": "integer", "minimum": 0}}, "required": ["age"]},
        ],
    }
    check(schema, ['{"name":"x","age":3}'], ['{"name":"x"}', '{"age":3}', '{"name":"x","age":-1}'])
    # the classic mistake: a sibling "additionalProperties": false sees no properties of
    # its own, so it forbids the required ones and nothing validates
    with pytest.raises(GrammarError, match="'name' is required but an allOf member forbids it"):
        json_schema_to_grammar({**schema, "additionalProperties": False})


def test_all_of_member_closed_to_extra_properties_forbids_the_others() -> None:
    schema = {
        "allOf": [
            {
                "type": "object",
                "properties": {"a": {"type": "integer"}},
                "additionalProperties": False,
            },
            {"properties": {"b": {"type": "integer"}}},
        ]
    }
    check(schema, ["{}", '{"a":1}'], ['{"b":1}', '{"a":1,"b":2}'])
    with pytest.raises(GrammarError, match="required but an allOf member forbids it"):
        json_schema_to_grammar({"allOf": [schema, {"required": ["b"]}]})


# --- objects ---------------------------------------------------------------------------

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
VALUES = {"a": 1, "b": True, "c": "hi", "d": None}


def test_objects_with_required_and_optional_properties() -> None:
    pattern = to_regex(json_schema_to_grammar(PERSON))
    keys = list(VALUES)
    for n in range(len(keys) + 1):
        for subset in itertools.combinations(keys, n):
            obj = {k: VALUES[k] for k in subset}
            valid = {"a", "c"} <= set(subset)
            for text in (
                json.dumps(obj),
                json.dumps(obj, indent=2),
                json.dumps(obj, separators=(",", ":")),
            ):
                assert bool(pattern.fullmatch(text)) == valid, text
    assert not pattern.fullmatch('{"a":1,"c":"x","e":1}')  # no extra keys
    assert not pattern.fullmatch('{"c":"x","a":1}')  # declared order (stricter, never looser)


def test_all_optional_object_and_empty_object() -> None:
    check(
        {"type": "object", "properties": {"x": {"type": "integer"}}}, ["{}", '{"x":1}'], ['{"y":1}']
    )
    check(
        {"type": "object", "properties": {}, "additionalProperties": False},
        ["{}", "{ }"],
        ['{"y":1}'],
    )


def test_additional_properties_schema_and_key_exclusion() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "ab": {"type": "integer"}},
        "additionalProperties": {"type": "string"},
    }
    check(
        schema,
        [
            '{"a":1}',
            '{"a":1,"ab":2,"abc":"x"}',
            '{"b":"x","":"y"}',
            '{"ab":2,"a":"x"}'[:0] or '{"ac":"x"}',
        ],
        ['{"a":"x"}', '{"ab":"x"}', '{"a":1,"a":"x"}', '{"b":1}'],
    )
    check(
        {"type": "object", "additionalProperties": {"type": "integer"}},
        ['{"x":1,"y":2}', "{}"],
        ['{"x":"s"}'],
    )


def test_required_property_not_declared_uses_additional_properties() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "required": ["a", "z"],
        "additionalProperties": {"type": "string"},
    }
    check(schema, ['{"a":1,"z":"s"}'], ['{"a":1}', '{"a":1,"z":2}'])


def test_odd_property_names_and_extra_keys() -> None:
    check(
        ODD_NAMES,
        [
            '{"a-b":1,"x]y":2}',
            json.dumps({"^z": 1, "é": 2, "sp ace": 3, 'q"uote': 4}, ensure_ascii=False),
            '{"other":"ü","a-":"\\n"}',
        ],
        ['{"x]y":"ü"}', '{"é":"\\\\"}', '{"sp ace":"ü"}', '{"^z":"\\n"}', '{"other":1}'],
    )


def test_property_names_are_escaped() -> None:
    schema = {
        "type": "object",
        "properties": {'we"ird\\key': {"const": 1}, "ключ": {"const": 2}},
        "required": ['we"ird\\key'],
    }
    check(schema, [json.dumps({'we"ird\\key': 1, "ключ": 2}, ensure_ascii=False)], ['{"weird":1}'])


# --- arrays ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lo", "hi"), [(None, None), (2, 4), (0, 1), (1, None), (None, 0), (3, 3), (0, 2)]
)
def test_array_lengths(lo: int | None, hi: int | None) -> None:
    schema: dict[str, Any] = {"type": "array", "items": {"type": "integer"}}
    if lo is not None:
        schema["minItems"] = lo
    if hi is not None:
        schema["maxItems"] = hi
    pattern = to_regex(json_schema_to_grammar(schema))
    for n in range(7):
        items = list(range(n))
        valid = (lo is None or n >= lo) and (hi is None or n <= hi)
        for text in (json.dumps(items), json.dumps(items, indent=1)):
            assert bool(pattern.fullmatch(text)) == valid, (schema, text)
    assert not pattern.fullmatch('["x"]')


def test_prefix_items() -> None:
    schema = {
        "type": "array",
        "prefixItems": [{"type": "string"}, {"type": "integer"}],
        "items": {"type": "boolean"},
        "maxItems": 4,
    }
    check(
        schema,
        ['["a",1]', '["a",1,true]', '["a",1,true,false]'],
        ['["a"]', '[1,"a"]', '["a",1,true,true,true]'],
    )
    check(
        {"type": "array", "prefixItems": [{"type": "null"}], "items": False},
        ["[null]"],
        ["[null,null]", "[]"],
    )
    tuple_form = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "array"}
    check(
        {**tuple_form, "items": [{"type": "integer"}, {"type": "string"}]},
        ['[1,"x"]'],
        ['["x",1]', '[1,"x",2]'],
    )
    check(
        {**tuple_form, "items": [{"type": "integer"}], "additionalItems": {"type": "null"}},
        ["[1]", "[1,null,null]"],
        ["[1,2]"],
    )
    # items not given after a tuple: extra items are allowed but only generated for minItems
    check({"type": "array", "prefixItems": [{"type": "integer"}]}, ["[1]"], ["[1,2]", "[]"])


# --- references --------------------------------------------------------------------------


def test_local_refs() -> None:
    check(
        {
            "definitions": {"n": {"type": "integer"}},
            "type": "array",
            "items": {"$ref": "#/definitions/n"},
        },
        ["[1,2]"],
        ['["x"]'],
    )
    check(
        {
            "$defs": {"a/b": {"$ref": "#/$defs/c~0d"}, "c~d": {"enum": ["x"]}},
            "$ref": "#/$defs/a~1b",
        },
        ['"x"'],
        ['"y"'],
    )


def test_pydantic_style_schema() -> None:
    schema = {
        "$defs": {
            "Pet": {
                "properties": {"kind": {"enum": ["cat", "dog"], "title": "Kind", "type": "string"}},
                "required": ["kind"],
                "title": "Pet",
                "type": "object",
            }
        },
        "properties": {
            "name": {"description": "Full name", "title": "Name", "type": "string"},
            "pet": {"anyOf": [{"$ref": "#/$defs/Pet"}, {"type": "null"}], "default": None},
        },
        "required": ["name"],
        "title": "Owner",
        "type": "object",
    }
    check(
        schema,
        ['{"name":"Ann"}', '{"name":"Ann","pet":{"kind":"cat"}}', '{"name":"Ann","pet":null}'],
        ['{"pet":null}'],
    )


# --- errors ----------------------------------------------------------------------------

ERRORS = [
    ({"type": "string", "pattern": "^a"}, "#: the 'pattern' keyword is not supported"),
    (
        {"properties": {"x": {"type": "number", "multipleOf": 2}}},
        "#/properties/x: the 'multipleOf' keyword is not supported",
    ),
    ({"type": "array", "uniqueItems": True}, "'uniqueItems' keyword is not supported"),
    ({"not": {"type": "null"}}, "'not' keyword is not supported"),
    ({"$ref": "https://example.org/schema.json"}, "only local $ref"),
    ({"$ref": "#/$defs/missing"}, "points to nothing"),
    ({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}, "refers only to itself"),
    (False, "matches nothing"),
    ({"type": "text"}, "unknown type 'text'"),
    ({"type": []}, "'type' must be"),
    ({"enum": []}, "'enum' must be a non-empty list"),
    ({"type": "string", "enum": [1, 2]}, "no 'enum'/'const' value has the declared type"),
    ({"enum": [float("nan")]}, "must be JSON values"),
    ({"type": "string", "minLength": 3, "maxLength": 2}, "maxLength (2) is below minLength (3)"),
    ({"type": "string", "minLength": -1}, "'minLength' must be a non-negative integer"),
    ({"type": "array", "minItems": 3, "maxItems": 1}, "maxItems (1) is below minItems (3)"),
    ({"type": "number", "minimum": 0.5}, "only whole-number bounds are supported"),
    (
        {"type": "number", "exclusiveMinimum": 0},
        "'exclusiveMinimum' is only supported for integers",
    ),
    ({"type": "integer", "minimum": 5, "maximum": 4}, "no number lies between"),
    ({"type": "integer", "minimum": "0"}, "'minimum' must be a number"),
    (
        {"properties": {"a": {}}, "required": ["b"], "additionalProperties": False},
        "required property 'b' is not in 'properties'",
    ),
    (
        {"properties": {"a": False}, "required": ["a"]},
        "#/properties/a: required property has the schema `false`",
    ),
    ({"required": "a"}, "'required' must be a list"),
    ({"properties": []}, "'properties' must be an object"),
    ({"additionalProperties": 3}, "'additionalProperties' must be a boolean or a schema"),
    ({"allOf": [{"type": "string"}, {"type": "integer"}]}, "allOf members allow no common type"),
    ({"allOf": [{"minLength": 1}, {"minLength": 2}]}, "allOf members disagree on 'minLength'"),
    ({"anyOf": []}, "'anyOf' must be a non-empty list"),
    (
        {"type": "object", "properties": {"x": "int"}},
        "#/properties/x: a schema must be an object or a boolean",
    ),
    ("{}", "must be an object or a boolean"),
]


@pytest.mark.parametrize(("schema", "message"), ERRORS)
def test_invalid_or_unsupported_schemas_raise_grammar_error(schema: Any, message: str) -> None:
    with pytest.raises(GrammarError, match=re.escape(message)):
        json_schema_to_grammar(schema)


def test_grammar_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        json_schema_to_grammar({"type": "nope"})


def test_deeply_nested_schema_is_a_grammar_error_not_a_crash() -> None:
    schema: dict[str, Any] = {"type": "integer"}
    for _ in range(5000):
        schema = {"type": "array", "items": schema}
    with pytest.raises(GrammarError, match="nested too deeply"):
        json_schema_to_grammar(schema)


def test_any_value() -> None:
    assert json_schema_to_grammar({}) == json_schema_to_grammar(True)
    assert json_schema_to_grammar({"title": "anything"}).startswith("root ::= value\n")


# --- llama.cpp's grammar engine ----------------------------------------------------------

ODD_NAMES = {
    "type": "object",
    "properties": {
        k: {"type": "integer"}
        for k in ["a-b", "x]y", "^z", "é", "sp ace", 'q"uote', "back\\slash", "[", "t\tab"]
    },
    "additionalProperties": {"enum": ["ü", "\n", 'say "hi"', "\\"]},
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
LINKED = {
    "type": "object",
    "properties": {"next": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}},
    "required": ["next"],
}

SCHEMAS = [
    True,
    ODD_NAMES,
    {
        "type": "array",
        "prefixItems": [{"const": "x"}, {"type": "string", "format": "time"}],
        "items": {"anyOf": [{"type": "null"}, {"type": "number", "minimum": -3, "maximum": 3}]},
    },
    {
        "allOf": [
            {
                "type": "object",
                "properties": {"a": {"type": "integer", "exclusiveMaximum": 0}},
                "required": ["a"],
            },
            {"properties": {"b": {"enum": [[1, 2], {"k": None}]}}},
        ]
    },
    {},
    PERSON,
    {"type": "object"},
    {"type": "array"},
    {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "ab": {"type": "integer"}},
        "additionalProperties": True,
    },
    TREE,
    LINKED,
    {"type": "number", "minimum": -5, "maximum": 5},
    {"type": "integer", "minimum": -1009, "maximum": 13},
    {"type": "string", "format": "date-time"},
    {"type": "string", "minLength": 1, "maxLength": 5000},
    {"type": "array", "items": {"type": "string", "format": "uuid"}, "minItems": 1, "maxItems": 3},
]


@pytest.fixture(scope="module")
def context(core, native_model):
    ctx = core.Context(native_model, n_ctx=512, n_batch=512, n_threads=1)
    yield ctx
    ctx.close()


@pytest.mark.parametrize("schema", SCHEMAS, ids=range(len(SCHEMAS)))
def test_llama_cpp_parses_every_grammar(core, native_model, schema: Any) -> None:
    sampler = core.Sampler(native_model).add_grammar(json_schema_to_grammar(schema))
    assert sampler.stages == ["grammar"]


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
    ({"type": "string"}, '"日本🎉 \\u00e9"', True),
    (ODD_NAMES, '{"x]y": 1, "other": "ü"}', True),
    (ODD_NAMES, '{"x]y": "ü"}', False),
]


@pytest.mark.parametrize(("schema", "text", "ok"), ENGINE_CASES, ids=range(len(ENGINE_CASES)))
def test_llama_cpp_engine_agrees(
    core, native_model, context, schema: Any, text: str, ok: bool
) -> None:
    assert engine_accepts(core, native_model, context, schema, text) == ok
    if ok:
        jsonschema.validate(json.loads(text), schema if isinstance(schema, dict) else {})


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
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
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
