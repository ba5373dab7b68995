"""Tool calling through Model.chat and chat sessions, on the real test model with a
tool-capable template from the pinned llama.cpp tree (passed as a .jinja path)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
from fireside import Model
from fireside.chat.tool_calls import merge_deltas
from fireside.errors import ToolError

TEMPLATES = Path(__file__).resolve().parents[2] / "vendor" / "llama.cpp" / "models" / "templates"
QWEN25 = TEMPLATES / "Qwen-Qwen2.5-7B-Instruct.jinja"

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather forecast for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 16},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
                "unit": {"enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "days"],
            "additionalProperties": False,
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The local time in a time zone.",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string", "maxLength": 16}},
            "required": ["zone"],
            "additionalProperties": False,
        },
    },
}
TOOLS = [WEATHER, TIME]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
FORCED = {"max_tokens": 80, "temperature": 0.7, "parallel_tool_calls": False}


@pytest.fixture(scope="module")
def model(model_path: Path) -> Iterator[Model]:
    if not QWEN25.is_file():
        pytest.fail(f"the pinned llama.cpp tree has no {QWEN25}")
    with Model(model_path, n_ctx=1024, n_threads=1, chat_template=str(QWEN25)) as m:
        yield m


def _valid(call: dict) -> dict:
    assert call["type"] == "function" and call["id"].startswith("call_")
    name = call["function"]["name"]
    arguments = json.loads(call["function"]["arguments"])
    jsonschema.validate(arguments, SCHEMAS[name])
    return arguments


def test_the_template_path_is_used(model: Model) -> None:
    assert model.chat_template.name == QWEN25.name
    prompt = model.apply_chat_template(ASK, tools=TOOLS)
    assert isinstance(prompt, str) and "<tools>" in prompt and '"get_time"' in prompt


@pytest.mark.parametrize("seed", range(20))
def test_required_gives_a_valid_call_every_time(model: Model, seed: int) -> None:
    named = seed % 2 == 1
    choice = {"type": "function", "function": {"name": "get_time"}} if named else "required"
    reply = model.chat(ASK, tools=TOOLS, tool_choice=choice, seed=seed, **FORCED)
    choice0 = reply["choices"][0]
    assert choice0["finish_reason"] == "tool_calls", choice0
    message = choice0["message"]
    assert message["content"] is None
    (call,) = message["tool_calls"]
    _valid(call)
    if named:
        assert call["function"]["name"] == "get_time"


def test_streamed_deltas_reassemble_to_the_same_call(model: Model) -> None:
    options = {"tool_choice": "required", "seed": 7, **FORCED}
    whole = model.chat(ASK, tools=TOOLS, **options)["choices"][0]["message"]["tool_calls"]
    chunks = list(model.chat(ASK, tools=TOOLS, stream=True, **options))
    deltas = [d for c in chunks for d in c["choices"][0]["delta"].get("tool_calls", [])]
    assert all("<tool_call>" not in c["choices"][0]["delta"].get("content", "") for c in chunks)
    streamed = merge_deltas(deltas)
    assert [c["function"] for c in streamed] == [c["function"] for c in whole]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["completion_tokens"] > 0


def test_a_round_trip_call_result_answer(model: Model) -> None:
    first = model.chat(ASK, tools=TOOLS, tool_choice="required", seed=1, **FORCED)
    message = first["choices"][0]["message"]
    (call,) = message["tool_calls"]
    arguments = _valid(call)
    result = {"forecast": "sunny", "celsius": 21, "asked": arguments}
    conversation = [
        *ASK,
        message,
        {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(result)},
    ]
    prompt = model.apply_chat_template(conversation, tools=TOOLS)
    assert isinstance(prompt, str) and '"forecast": "sunny"' in prompt
    final = model.chat(conversation, tools=TOOLS, tool_choice="none", max_tokens=24, seed=1)
    answer = final["choices"][0]
    assert answer["finish_reason"] in ("stop", "length")
    assert "tool_calls" not in answer["message"]
    assert answer["message"]["content"].strip()


def test_auto_leaves_a_plain_answer_alone(model: Model) -> None:
    hello = [{"role": "user", "content": "Say hello."}]
    tokens = model.apply_chat_template(hello, tools=TOOLS, tokenize=True)
    raw = model.generate(tokens, max_tokens=12, temperature=0).text  # type: ignore[arg-type]
    assert raw.strip() and "<tool_call>" not in raw
    choice = model.chat(hello, tools=TOOLS, max_tokens=12, temperature=0)["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": raw}
    assert choice["finish_reason"] in ("stop", "length")


def test_a_session_keeps_calls_and_results(model: Model) -> None:
    session = model.chat_session()
    result = session.send(
        "What is the weather in Paris?", tools=TOOLS, tool_choice="required", seed=3, **FORCED
    )
    (call,) = result.tool_calls
    _valid(call)
    assert result.text == ""
    assert result.finish_reason == "eos"
    assert session.history[-1] == {"role": "assistant", "content": None, "tool_calls": [call]}
    with pytest.raises(ValueError, match="add_tool_result"):
        session.send(None)
    with pytest.raises(ToolError, match="no tool call has the id 'call_nope'"):
        session.add_tool_result("call_nope", "x")
    session.add_tool_result(call["id"], {"forecast": "rain"})
    assert session.history[-1] == {
        "role": "tool",
        "tool_call_id": call["id"],
        "name": call["function"]["name"],
        "content": '{"forecast": "rain"}',
    }
    with pytest.raises(ToolError, match="has its result already"):
        session.add_tool_result(call["id"], "again")
    stream = session.send(None, tools=TOOLS, tool_choice="none", max_tokens=16, seed=3, stream=True)
    text = "".join(stream)
    assert stream.result is not None and stream.result.text == text
    assert [m["role"] for m in session.history] == ["user", "assistant", "tool", "assistant"]
    assert session.history[-1]["content"] == text


def test_bad_input_gets_clear_errors(model: Model, tmp_path: Path) -> None:
    bad = {
        "type": "function",
        "function": {"name": "f", "parameters": {"type": "object", "required": "city"}},
    }
    with pytest.raises(ToolError, match=r"tools\[0\] \('f'\).*not a valid JSON Schema"):
        model.chat(ASK, tools=[bad], max_tokens=1)
    orphan = [*ASK, {"role": "tool", "tool_call_id": "call_missing", "content": "x"}]
    with pytest.raises(ToolError, match="'call_missing' matches no earlier tool call"):
        model.chat(orphan, tools=TOOLS, max_tokens=1)
    with pytest.raises(ToolError, match="not in tools"):
        model.chat(ASK, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "x"}})
    with pytest.raises(ValueError, match="forces a tool call with its own grammar"):
        model.chat(ASK, tools=TOOLS, tool_choice="required", json_schema={"type": "object"})
    plain = model.chat_session(chat_template="gemma")
    with pytest.raises(ToolError, match="'gemma' cannot render tools"):
        plain.send("Weather?", tools=TOOLS, max_tokens=1)
    missing = tmp_path / "nowhere" / "tool_use.jinja"
    with pytest.raises(ValueError, match=f"chat template file '{missing}' does not exist"):
        model.chat_session(chat_template=str(missing))
    binary = tmp_path / "binary.jinja"
    binary.write_bytes(b"\xff\xfe{{ messages }}")
    with pytest.raises(ValueError, match="binary.jinja' is not UTF-8 text"):
        model.chat_session(chat_template=str(binary))
    with pytest.raises(ValueError, match="unknown chat template name 'qwen9'"):
        model.chat_session(chat_template="qwen9")
