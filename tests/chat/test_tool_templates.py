"""Every tool-capable template in the pinned llama.cpp tree renders tools, a call and its
result; templates that cannot get clear errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fireside.chat.templates import ChatTemplate
from fireside.errors import ToolError

TEMPLATES = Path(__file__).resolve().parents[2] / "vendor" / "llama.cpp" / "models" / "templates"
# Templates that change their own lists (Kimi keeps a queue of call ids with append/pop):
# the sandbox allows it, since a render works on copies in a worker process.
MUTATING = {"Kimi-K2-Instruct", "Kimi-K2-Thinking"}

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "The city."}},
                "required": ["city"],
            },
        },
    }
]


def _conversation(call_id: str = "abcDE1234") -> list[dict]:
    return [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "sunny, 21 C"},
    ]


def _tool_templates() -> list[str]:
    if not TEMPLATES.is_dir():
        pytest.fail(f"the pinned llama.cpp templates are missing at {TEMPLATES}")
    return sorted(
        p.stem for p in TEMPLATES.glob("*.jinja") if re.search(r"\btools\b", p.read_text("utf-8"))
    )


def _template(name: str) -> ChatTemplate:
    source = (TEMPLATES / f"{name}.jinja").read_text("utf-8")
    return ChatTemplate(source, bos_token="<s>", eos_token="</s>", name=name)


def test_the_pinned_tree_has_tool_templates() -> None:
    assert len(_tool_templates()) >= 50
    assert set(_tool_templates()) >= MUTATING


@pytest.mark.parametrize("name", _tool_templates())
def test_renders_tools_a_call_and_its_result(name) -> None:
    template = _template(name)
    conversation = _conversation()
    prompt = template.render_tools(conversation, tools=TOOLS)
    assert conversation == _conversation()  # the caller's messages are never changed
    assert "get_weather" in prompt
    assert "Paris" in prompt
    assert "sunny, 21 C" in prompt
    caps = template.capabilities
    assert caps.supports_tools
    if not caps.supports_tool_calls:  # the call was given to it as JSON text in content
        assert '"tool_calls": [' in prompt and '"city": "Paris"' in prompt


def test_arguments_reach_each_template_as_it_needs_them() -> None:
    """Templates that apply tojson to the arguments get an object (no double encoding);
    templates that print them get JSON text."""
    as_object = _template("Qwen-Qwen2.5-7B-Instruct")
    assert as_object.capabilities.requires_object_arguments
    prompt = as_object.render_tools(_conversation(), tools=TOOLS)
    assert '{"city": "Paris"}' in prompt and '\\"city\\"' not in prompt
    as_text = _template("meetkai-functionary-medium-v3.2")
    assert not as_text.capabilities.requires_object_arguments
    assert '>>>get_weather\n{"city": "Paris"}' in as_text.render_tools(_conversation(), tools=TOOLS)


def test_python_functions_render_as_tools() -> None:
    def get_weather(city: str) -> str:
        """The weather in a city.

        Args:
            city: The city.
        """
        return city

    prompt = _template("Qwen-Qwen2.5-7B-Instruct").render_tools(
        _conversation(), tools=[get_weather]
    )
    assert '"description": "The city."' in prompt


@pytest.mark.parametrize("name", ["google-gemma-2-2b-it", "microsoft-Phi-3.5-mini-instruct"])
def test_template_without_tools_is_a_clear_error(name) -> None:
    with pytest.raises(ToolError, match=f"chat template '{name}' cannot render tools"):
        _template(name).render_tools([{"role": "user", "content": "hi"}], tools=TOOLS)


def test_unknown_tool_call_id_is_a_clear_error() -> None:
    conversation = _conversation()
    conversation[3]["tool_call_id"] = "nope12345"
    with pytest.raises(ToolError, match="tool_call_id 'nope12345' matches no earlier tool call"):
        _template("Qwen-Qwen2.5-7B-Instruct").render_tools(conversation, tools=TOOLS)


def test_invalid_schema_is_a_clear_error() -> None:
    bad = [{"type": "function", "function": {"name": "f", "parameters": {"type": 5}}}]
    with pytest.raises(ToolError, match="'parameters' is not a valid JSON Schema"):
        _template("Qwen-Qwen2.5-7B-Instruct").render_tools(
            [{"role": "user", "content": "hi"}], tools=bad
        )
