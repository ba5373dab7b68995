"""Structured output: a JSON schema or a GBNF grammar constrains what is generated."""

from __future__ import annotations

import json

import jsonschema
import pytest
from fireside.model import Model

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer", "minimum": 0},
        "city": {"type": "string", "enum": ["Paris", "London", "Tokyo"]},
    },
    "required": ["name", "age", "city"],
    "additionalProperties": False,
}


def _ask(model: Model, text: str) -> str:
    return f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_json_schema_output_validates(model: Model, temperature: float) -> None:
    result = model.generate(
        _ask(model, "Describe a person as JSON."),
        json_schema=PERSON,
        max_tokens=80,
        temperature=temperature,
        seed=1,
    )
    assert result.finish_reason == "eos"
    jsonschema.validate(json.loads(result.text), PERSON)


def test_chat_with_json_schema(model: Model) -> None:
    reply = model.chat(
        [{"role": "user", "content": "Give me a person."}],
        json_schema=PERSON,
        max_tokens=80,
        temperature=0,
    )
    jsonschema.validate(json.loads(reply["choices"][0]["message"]["content"]), PERSON)


def test_gbnf_grammar(model: Model) -> None:
    grammar = 'root ::= ("yes" | "no") "."'
    result = model.generate(
        _ask(model, "Is the sky blue?"), grammar=grammar, max_tokens=10, temperature=0
    )
    assert result.text in ("yes.", "no.")
    assert result.finish_reason == "eos"


def test_json_schema_must_be_a_dict(model: Model) -> None:
    with pytest.raises(TypeError, match="json_schema must be a dict"):
        model.generate("Hi", json_schema="{}")  # type: ignore[call-overload]
