"""Forced tool calls: the grammar makes the real model write a call that parses, in each
family's format, with arguments valid for the function's schema."""

from __future__ import annotations

import json
from pathlib import Path

import fireside
import jsonschema
import pytest
from fireside.chat.tool_calls import FAMILIES, parse_tool_calls, tool_call_grammar
from fireside.chat.tools import check_tool_choice, check_tools
from fireside.errors import ToolError

TOOLS = check_tools(
    [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string", "maxLength": 24},
                        "days": {"type": "integer", "minimum": 1, "maximum": 7},
                        "unit": {"enum": ["celsius", "fahrenheit"]},
                    },
                    "required": ["city", "days"],
                    "additionalProperties": False,
                },
            },
        },
        {
            "type": "function",
            "function": {
                "name": "add",
                "parameters": {
                    "type": "object",
                    "properties": {"a": {"type": "integer"}, "b": {"type": "boolean"}},
                    "required": ["a", "b"],
                    "additionalProperties": False,
                },
            },
        },
    ]
)
PROMPT = "<|im_start|>user\nWhat is the weather in Paris?<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def model(model_path: Path):
    with fireside.Model(str(model_path), n_threads=1) as m:
        yield m


@pytest.mark.parametrize("seed", range(20))
def test_forced_call_parses_and_validates(model, seed: int) -> None:
    family = FAMILIES[seed % len(FAMILIES)]
    named = seed % 2 == 1
    choice = check_tool_choice(
        {"type": "function", "function": {"name": "add"}} if named else "required", TOOLS
    )
    grammar = tool_call_grammar(TOOLS, choice, family, parallel_tool_calls=seed % 3 == 0)
    result = model.generate(PROMPT, grammar=grammar, seed=seed, max_tokens=400, temperature=0.4)
    assert result.finish_reason == "eos", (family, result.text)
    reply = parse_tool_calls(result.text, family, tools=TOOLS)
    assert reply.tool_calls, (family, result.text)
    assert reply.content == ""
    for call in reply.tool_calls:
        if named:
            assert call.name == "add"
        schema = next(t for t in TOOLS if t["function"]["name"] == call.name)["function"]
        jsonschema.validate(json.loads(call.arguments), schema["parameters"])


def test_grammar_needs_a_forcing_choice() -> None:
    with pytest.raises(ToolError, match="does not force a call"):
        tool_call_grammar(TOOLS, check_tool_choice("auto", TOOLS), "hermes")
