"""Tool-call parsing per family: fixtures in each family's documented output format
(as in the pinned llama.cpp's tests/test-chat.cpp), plain answers, and streaming."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from fireside.chat.tool_calls import (
    FAMILIES,
    ToolCallStream,
    detect_family,
    merge_deltas,
    new_call_id,
    parse_tool_calls,
)
from fireside.chat.tools import check_tools

ARG1 = '{"arg1": 1}'
# (family, reply, expected content, expected [(name, arguments as an object)])
FIXTURES = [
    (
        "hermes",
        '<tool_call>\n{"name": "special_function", "arguments": {"arg1": 1}}\n</tool_call>',
        "",
        [("special_function", {"arg1": 1})],
    ),
    (
        "hermes",
        'Hello, world!\nWhat\'s up?<tool_call>\n{"name": "special_function", "arguments": {"arg1": 1}}</tool_call>',
        "Hello, world!\nWhat's up?",
        [("special_function", {"arg1": 1})],
    ),
    (
        "hermes",
        '<tool_call>{"name": "a", "arguments": {}}</tool_call>\n<tool_call>{"name": "b", "arguments": {"x": [1, "é"]}}</tool_call>',
        "",
        [("a", {}), ("b", {"x": [1, "é"]})],
    ),
    (
        "hermes",
        '<tool_call>\n{"name": "special_function", "arguments": {"arg1": 1}}',
        "",
        [("special_function", {"arg1": 1})],
    ),
    (
        "llama3",
        '{"type": "function", "name": "special_function", "parameters": {"arg1": 1}}',
        "",
        [("special_function", {"arg1": 1})],
    ),
    (
        "llama3",
        '{"name": "a", "parameters": {"x": 1}}; {"name": "b", "parameters": {}}',
        "",
        [("a", {"x": 1}), ("b", {})],
    ),
    (
        "llama3",
        '<|python_tag|>brave_search.call(query="today\'s news", count=3)',
        "",
        [("brave_search", {"query": "today's news", "count": 3})],
    ),
    (
        "llama3",
        "Let me run it.<|python_tag|>print('hey')",
        "Let me run it.",
        [("python", {"code": "print('hey')"})],
    ),
    (
        "llama3",
        '<|python_tag|>{"name": "special_function", "parameters": {"arg1": 1}}<|eom_id|>',
        "",
        [("special_function", {"arg1": 1})],
    ),
    (
        "mistral",
        '[TOOL_CALLS][{"name": "special_function", "arguments": {"arg1": 1}, "id": "123456789"}]',
        "",
        [("special_function", {"arg1": 1})],
    ),
    (
        "mistral",
        'Sure. [TOOL_CALLS][{"name": "a", "arguments": {}}, {"name": "b", "arguments": {"y": null}}]',
        "Sure.",
        [("a", {}), ("b", {"y": None})],
    ),
    (
        "mistral-args",
        '[TOOL_CALLS]special_function[ARGS]{"arg1":1}',
        "",
        [("special_function", {"arg1": 1})],
    ),
    (
        "mistral-args",
        '[TOOL_CALLS]special_function[ARGS]{"arg1": 1}[TOOL_CALLS]special_function_with_opt[ARGS]{"arg1": 1, "arg2": 2}',
        "",
        [("special_function", {"arg1": 1}), ("special_function_with_opt", {"arg1": 1, "arg2": 2})],
    ),
    (
        "functionary-v3.1",
        '<function=special_function>{"arg1": 1}</function>',
        "",
        [("special_function", {"arg1": 1})],
    ),
    (
        "functionary-v3.1",
        'Checking.<function=a>{"x": 1}</function><function=b>{}</function>',
        "Checking.",
        [("a", {"x": 1}), ("b", {})],
    ),
    ("functionary-v3.1", "<|python_tag|>print(1)", "", [("python", {"code": "print(1)"})]),
    ("functionary-v3.2", 'special_function\n{"arg1": 1}', "", [("special_function", {"arg1": 1})]),
    (
        "functionary-v3.2",
        'all\nLet me check.>>>special_function\n{"arg1": 1}>>>other\n{}',
        "Let me check.",
        [("special_function", {"arg1": 1}), ("other", {})],
    ),
    ("functionary-v3.2", "all\nHello, world!\nWhat's up?", "Hello, world!\nWhat's up?", []),
    (
        "generic",
        '{"tool_calls": [{"name": "special_function", "arguments": {"arg1": 1}, "id": "123456789"}]}',
        "",
        [("special_function", {"arg1": 1})],
    ),
    (
        "generic",
        '```json\n{"name": "special_function", "arguments": {"arg1": 1}}\n```',
        "",
        [("special_function", {"arg1": 1})],
    ),
    (
        "generic",
        '[{"name": "a", "arguments": {}}, {"name": "b", "arguments": "{\\"z\\": 2}"}]',
        "",
        [("a", {}), ("b", {"z": 2})],
    ),
]
FIXTURES += [  # (indexed above) max_tokens cut the closing tag
    (
        "hermes",
        '<tool_call>\n{"name": "special_function", "arguments": {"arg1": 1}}\n</tool',
        "",
        [("special_function", {"arg1": 1})],
    ),
]
PLAIN = [
    "Hello, world!\nWhat's up?",
    "",
    "  leading and trailing space  \n",
    '{"answer": 42}',
    '{"name": "Bob", "age": 3}',
    "[1, 2, 3]",
    "I'd use <tool_call> tags, like <tool_call>this</tool_call>.",
    "Use [TOOL_CALLS] carefully.",
    "a <function=x>not json</function>",
    "x >>> y",
    "```python\nprint(1)\n```",
    '<tool_call>\n{"name": "special_function", "arguments": {"arg1": 1}} and more',
]


def _calls(reply) -> list[tuple[str, object]]:
    return [(c.name, json.loads(c.arguments)) for c in reply.tool_calls]


@pytest.mark.parametrize(("family", "text", "content", "calls"), FIXTURES)
def test_each_family_parses_its_calls(family, text, content, calls) -> None:
    reply = parse_tool_calls(text, family)
    assert reply.content == content
    assert _calls(reply) == calls
    assert reply.finish_reason == ("tool_calls" if calls else None)
    for call in reply.tool_calls:
        assert isinstance(call.arguments, str)
        assert call.to_openai()["function"]["name"] == call.name


def test_ids_are_fresh_or_the_models_own() -> None:
    reply = parse_tool_calls(FIXTURES[0][1] * 1, "hermes")
    assert reply.tool_calls[0].id.startswith("call_") and len(reply.tool_calls[0].id) == 29
    mistral = parse_tool_calls(FIXTURES[9][1], "mistral")
    assert mistral.tool_calls[0].id == "123456789"
    fresh = new_call_id("mistral")
    assert len(fresh) == 9 and fresh.isalnum()
    ids = {new_call_id() for _ in range(100)}
    assert len(ids) == 100


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("text", PLAIN)
def test_plain_answers_are_left_alone(family, text) -> None:
    reply = parse_tool_calls(text, family)
    assert reply.content == text
    assert reply.tool_calls == []


def test_calls_to_unknown_functions_stay_content() -> None:
    tools = check_tools([{"type": "function", "function": {"name": "special_function"}}])
    text = '{"name": "lookup", "parameters": {"q": 1}}'
    assert parse_tool_calls(text, "llama3", tools=tools).content == text
    assert _calls(parse_tool_calls(FIXTURES[4][1], "llama3", tools=tools)) == FIXTURES[4][3]


def _stream(family: str, pieces: list[str]):
    stream = ToolCallStream(family, make_id=lambda: "id")
    content, deltas = "", []
    for piece in pieces:
        delta = stream.feed(piece)
        content += delta.content
        deltas += delta.tool_calls
    last = stream.finish()
    return content + last.content, merge_deltas(deltas + last.tool_calls), stream


def _all_cases():
    for family, text, _, _ in FIXTURES:
        yield family, text
    for family, text in itertools.product(FAMILIES, PLAIN):
        yield family, text


@pytest.mark.parametrize(("family", "text"), list(_all_cases()))
def test_streaming_equals_one_shot_at_every_split(family, text) -> None:
    whole = parse_tool_calls(text, family, make_id=lambda: "id")
    expected_calls = [c.to_openai() for c in whole.tool_calls]
    for i in range(len(text) + 1):
        content, calls, stream = _stream(family, [text[:i], text[i:]])
        assert (content, calls) == (whole.content, expected_calls), (family, text, i)
        assert stream.result == whole
    content, calls, _ = _stream(family, list(text))  # one character at a time
    assert (content, calls) == (whole.content, expected_calls)


def test_streaming_sends_plain_text_early_and_holds_back_markers() -> None:
    stream = ToolCallStream("hermes")
    assert stream.feed("Hello there").content == "Hello there"
    assert stream.feed(" <tool_").content == ""  # could be a call: held back
    assert stream.feed('call>{"name": "f", "arguments": {}}').content == ""
    end = stream.finish()
    assert end.content == "" and end.tool_calls[0]["function"]["name"] == "f"
    stream = ToolCallStream("hermes")
    stream.feed("a <tool_")
    assert stream.feed("box> b").content == " <tool_box> b"


TEMPLATES = Path(__file__).resolve().parents[2] / "vendor" / "llama.cpp" / "models" / "templates"
KNOWN_FAMILIES = {
    "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use": "hermes",
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use": "hermes",
    "Qwen-Qwen2.5-7B-Instruct": "hermes",
    "Qwen-Qwen3-0.6B": "hermes",
    "meta-llama-Llama-3.1-8B-Instruct": "llama3",
    "meta-llama-Llama-3.2-3B-Instruct": "llama3",
    "meta-llama-Llama-3.3-70B-Instruct": "llama3",
    "mistralai-Mistral-Nemo-Instruct-2407": "mistral",
    "Mistral-Small-3.2-24B-Instruct-2506": "mistral-args",
    "unsloth-mistral-Devstral-Small-2507": "mistral-args",
    "meetkai-functionary-medium-v3.1": "functionary-v3.1",
    "meetkai-functionary-medium-v3.2": "functionary-v3.2",
    "google-gemma-2-2b-it": "generic",
}


@pytest.mark.parametrize(("name", "family"), sorted(KNOWN_FAMILIES.items()))
def test_family_detected_from_the_pinned_templates(name, family) -> None:
    path = TEMPLATES / f"{name}.jinja"
    if not path.is_file():
        pytest.fail(f"the pinned llama.cpp tree has no {path}")
    assert detect_family(path.read_text("utf-8")) == family


def test_family_from_metadata_when_the_template_says_nothing() -> None:
    assert detect_family("{{ messages }}", {"general.name": "Hermes 3"}) == "hermes"
    assert detect_family("{{ messages }}") == "generic"
    with pytest.raises(ValueError, match="unknown tool-call family 'nope'"):
        parse_tool_calls("x", "nope")  # type: ignore[arg-type]
