"""Tool calling through every API shape of a live server, with the official clients.

The test model is SmolLM2-135M; it answers tool calls only when forced, so the server
runs a tool-capable template from the pinned llama.cpp (Qwen 2.5's, the Hermes
``<tool_call>`` format) and the tests force calls (``tool_choice="required"``, a named
function, Anthropic's ``any``/``tool``, Ollama's ``options.tool_choice``): the grammar
makes the call parse and its arguments valid for the schema, which the tests check with
``jsonschema``. Round trips send the call and its result back and get an answer. Bad
input gets each API's own error shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import jsonschema
import ollama
import openai
import pytest
from fireside.chat.tool_calls import merge_deltas
from fireside.server import create_app

from .conftest import LiveServer, serve

TEMPLATES = Path(__file__).resolve().parents[2] / "vendor" / "llama.cpp" / "models" / "templates"
WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 24},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The current weather in a city.",
            "parameters": WEATHER,
        },
    },
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two integers.",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
            },
        },
    },
]
QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]
BAD_SCHEMA = {"type": "object", "properties": {"city": {"type": "no-such-type"}}}


@pytest.fixture(scope="module")
def live(model_path: Path) -> Iterator[LiveServer]:
    """A server whose chat template renders tools (Qwen 2.5's, Hermes-style calls)."""
    template = (TEMPLATES / "Qwen-Qwen2.5-7B-Instruct.jinja").read_text(encoding="utf-8")
    app = create_app(
        model_path, parallel=2, ctx_size=1024, n_threads=1, max_queue=16, chat_template=template
    )
    with serve(app) as server:
        yield server


def schema_of(name: str) -> dict[str, Any]:
    return next(t["function"]["parameters"] for t in TOOLS if t["function"]["name"] == name)


def valid_call(name: str, arguments: str | dict[str, Any]) -> dict[str, Any]:
    """The call's arguments, checked against its tool's parameter schema."""
    args = json.loads(arguments) if isinstance(arguments, str) else dict(arguments)
    jsonschema.validate(args, schema_of(name))
    return args


# -- chat completions --------------------------------------------------------------------


def test_required_tool_choice_gives_a_valid_call(live: LiveServer) -> None:
    reply = live.client().chat.completions.create(
        model=live.model_id,
        messages=QUESTION,  # type: ignore[arg-type]
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=96,
        seed=3,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    call = calls[0]
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name in ("get_weather", "add")
    valid_call(call.function.name, call.function.arguments)
    assert choice.message.content is None  # only a call: no text
    assert "<tool_call>" not in json.dumps(reply.model_dump())


def test_named_function_is_the_one_called(live: LiveServer) -> None:
    reply = live.client().chat.completions.create(
        model=live.model_id,
        messages=[{"role": "user", "content": "What is 2 plus 3?"}],
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice={"type": "function", "function": {"name": "add"}},
        parallel_tool_calls=False,
        max_tokens=64,
        temperature=0,
    )
    (call,) = reply.choices[0].message.tool_calls or []
    assert call.function.name == "add"
    args = valid_call("add", call.function.arguments)
    assert isinstance(args["a"], int) and isinstance(args["b"], int)


def test_streamed_deltas_reassemble_to_the_same_call(live: LiveServer) -> None:
    body: dict[str, Any] = {
        "model": live.model_id,
        "messages": QUESTION,
        "tools": TOOLS,
        "tool_choice": "required",
        "max_tokens": 160,
        "seed": 11,
    }
    whole = live.client().chat.completions.create(**body)
    stream = live.client().chat.completions.create(**body, stream=True)
    deltas, finish, content, chunks_with_calls = [], None, [], 0
    for chunk in stream:
        choice = chunk.choices[0]
        chunks_with_calls += bool(choice.delta.tool_calls)
        for call in choice.delta.tool_calls or []:
            deltas.append(call.model_dump(exclude_none=True))
        content.append(choice.delta.content or "")
        finish = choice.finish_reason or finish
    # OpenAI's way: the call's id and name first, then its arguments in pieces
    assert chunks_with_calls > 1
    first = deltas[0]
    assert first["id"].startswith("call_") and first["function"]["name"]
    later = [d for d in deltas[1:] if d["index"] == first["index"]]
    assert len(later) > 1 and all("id" not in d and "name" not in d["function"] for d in later)
    streamed = merge_deltas(deltas)
    expected = [c.model_dump() for c in whole.choices[0].message.tool_calls or []]
    assert streamed, "the stream carried no tool calls"
    strip = [(c["function"]["name"], c["function"]["arguments"]) for c in streamed]
    assert strip == [(c["function"]["name"], c["function"]["arguments"]) for c in expected]
    assert all(c["id"].startswith("call_") and c["type"] == "function" for c in streamed)
    assert finish == whole.choices[0].finish_reason
    assert "".join(content) == (whole.choices[0].message.content or "")
    for call in streamed:
        valid_call(call["function"]["name"], call["function"]["arguments"])


def test_round_trip_call_result_answer(live: LiveServer) -> None:
    client = live.client()
    first = client.chat.completions.create(
        model=live.model_id,
        messages=QUESTION,  # type: ignore[arg-type]
        tools=TOOLS[:1],  # type: ignore[arg-type]
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=64,
        temperature=0,
    )
    message = first.choices[0].message
    (call,) = message.tool_calls or []
    args = valid_call("get_weather", call.function.arguments)
    result = json.dumps({"city": args["city"], "temperature": 21, "sky": "sunny"})
    conversation = [
        *QUESTION,
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": result},
    ]
    final = client.chat.completions.create(
        model=live.model_id,
        messages=conversation,  # type: ignore[arg-type]
        tools=TOOLS[:1],  # type: ignore[arg-type]
        tool_choice="none",
        max_tokens=24,
        temperature=0,
    )
    answer = final.choices[0]
    assert answer.message.tool_calls is None
    assert answer.finish_reason in ("stop", "length")
    assert answer.message.content
    # the call and its result were rendered into the prompt
    assert final.usage is not None and first.usage is not None
    assert final.usage.prompt_tokens > first.usage.prompt_tokens + 20


def test_auto_without_a_call_is_a_plain_answer(live: LiveServer) -> None:
    """With tools and tool_choice auto the model may answer in words: then the reply is
    its text, streamed or not, and no call."""
    body: dict[str, Any] = {
        "model": live.model_id,
        "messages": [{"role": "user", "content": "Say hello."}],
        "tools": TOOLS,
        "max_tokens": 24,
        "temperature": 0,
    }
    whole = live.client().chat.completions.create(**body)
    choice = whole.choices[0]
    assert choice.message.tool_calls is None and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    pieces = [
        chunk.choices[0].delta.content or ""
        for chunk in live.client().chat.completions.create(**body, stream=True)
        if chunk.choices
    ]
    assert "".join(pieces) == choice.message.content


def test_parallel_calls_are_indexed(live: LiveServer) -> None:
    reply = live.client().chat.completions.create(
        model=live.model_id,
        messages=QUESTION,  # type: ignore[arg-type]
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice="required",
        max_tokens=200,
        temperature=0,
    )
    calls = reply.choices[0].message.tool_calls or []
    assert calls
    assert len({c.id for c in calls}) == len(calls)
    for call in calls:
        valid_call(call.function.name, call.function.arguments)


# -- Responses API -------------------------------------------------------------------------

RESPONSE_TOOLS = [
    {
        "type": "function",
        "name": t["function"]["name"],
        **{k: v for k, v in t["function"].items() if k != "name"},
    }
    for t in TOOLS[:1]
]


def test_responses_function_call_then_output(live: LiveServer) -> None:
    client = live.client()
    first = client.responses.create(
        model=live.model_id,
        input="What is the weather in Paris?",
        tools=RESPONSE_TOOLS,  # type: ignore[arg-type]
        tool_choice="required",
        parallel_tool_calls=False,
        max_output_tokens=64,
        temperature=0,
    )
    assert first.status == "completed"
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and len(first.output) == 1  # no text beside the call
    call = calls[0]
    assert call.name == "get_weather" and call.status == "completed"
    assert call.id.startswith("fc_") and call.call_id.startswith("call_")
    args = valid_call("get_weather", call.arguments)
    assert first.tools and first.tools[0].type == "function"
    second = client.responses.create(
        model=live.model_id,
        previous_response_id=first.id,
        input=[
            {
                "type": "function_call_output",
                "call_id": call.call_id,
                "output": json.dumps({"city": args["city"], "sky": "sunny"}),
            }
        ],
        tools=RESPONSE_TOOLS,  # type: ignore[arg-type]
        tool_choice="none",
        max_output_tokens=24,
        temperature=0,
    )
    assert [item.type for item in second.output] == ["message"]
    assert second.output_text
    assert second.usage is not None and first.usage is not None
    assert second.usage.input_tokens > first.usage.input_tokens + 20
    # stateless: the first output passed back as input items is the same conversation
    output = {"type": "function_call_output", "call_id": call.call_id}
    third = client.responses.create(
        model=live.model_id,
        input=[
            {"role": "user", "content": "What is the weather in Paris?"},
            *[item.model_dump() for item in first.output],
            {**output, "output": json.dumps({"city": args["city"], "sky": "sunny"})},
        ],
        tools=RESPONSE_TOOLS,  # type: ignore[arg-type]
        tool_choice="none",
        max_output_tokens=24,
        temperature=0,
        store=False,
    )
    assert third.usage is not None and third.usage.input_tokens == second.usage.input_tokens
    assert third.output_text == second.output_text


def test_responses_streamed_call_equals_the_response(live: LiveServer) -> None:
    body: dict[str, Any] = {
        "model": live.model_id,
        "input": "What is the weather in Paris?",
        "tools": RESPONSE_TOOLS,
        "tool_choice": {"type": "function", "name": "get_weather"},
        "parallel_tool_calls": False,
        "max_output_tokens": 64,
        "temperature": 0,
        "store": False,
    }
    whole = live.client().responses.create(**body)
    events = list(live.client().responses.create(**body, stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.function_call_arguments.delta" in kinds
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    added = next(e for e in events if e.type == "response.output_item.added")
    assert added.item.type == "function_call" and added.item.arguments == ""  # type: ignore[union-attr]
    final = events[-1].response  # type: ignore[union-attr]
    (item,) = final.output
    (expected,) = whole.output
    assert item.type == expected.type == "function_call"
    assert (item.name, item.arguments) == (expected.name, expected.arguments)  # type: ignore[union-attr]
    assert done.arguments == item.arguments  # type: ignore[union-attr]
    assert [e.sequence_number for e in events] == list(range(len(events)))


# -- Anthropic Messages API ----------------------------------------------------------------

ANTHROPIC_TOOLS = [
    {
        "name": t["function"]["name"],
        "description": t["function"]["description"],
        "input_schema": t["function"]["parameters"],
    }
    for t in TOOLS
]


def claude(live: LiveServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=live.url, api_key="unused", max_retries=0, timeout=120)


def test_anthropic_tool_use_plain_and_streamed(live: LiveServer) -> None:
    body: dict[str, Any] = {
        "model": live.model_id,
        "max_tokens": 64,
        "messages": QUESTION,
        "tools": ANTHROPIC_TOOLS,
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "extra_body": {"temperature": 0},
    }
    reply = claude(live).messages.create(**body)
    assert reply.stop_reason == "tool_use"
    uses = [b for b in reply.content if b.type == "tool_use"]
    assert len(uses) == 1 and [b.type for b in reply.content] == ["tool_use"]
    use = uses[0]
    valid_call(use.name, use.input)  # type: ignore[arg-type]
    with claude(live).messages.stream(**body) as stream:
        kinds = [event.type for event in stream]
        streamed = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "input_json" in kinds  # the SDK's event for an input_json_delta
    assert streamed.stop_reason == "tool_use"
    (block,) = streamed.content
    assert block.type == "tool_use"
    assert (block.name, block.input) == (use.name, use.input)


def test_anthropic_tool_result_round_trip(live: LiveServer) -> None:
    c = claude(live)
    first = c.messages.create(
        model=live.model_id,
        max_tokens=64,
        messages=QUESTION,  # type: ignore[arg-type]
        tools=ANTHROPIC_TOOLS[:1],  # type: ignore[arg-type]
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        extra_body={"temperature": 0},
    )
    (use,) = first.content
    assert use.type == "tool_use" and use.name == "get_weather"
    valid_call("get_weather", use.input)  # type: ignore[arg-type]
    messages: list[Any] = [
        *QUESTION,
        {"role": "assistant", "content": [use.model_dump()]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": use.id, "content": "21 degrees, sunny"},
                {"type": "text", "text": "So, what is it like?"},
            ],
        },
    ]
    final = c.messages.create(
        model=live.model_id,
        max_tokens=24,
        messages=messages,
        tools=ANTHROPIC_TOOLS[:1],  # type: ignore[arg-type]
        tool_choice={"type": "none"},
        extra_body={"temperature": 0},
    )
    assert final.stop_reason in ("end_turn", "max_tokens")
    assert [b.type for b in final.content] == ["text"] and final.content[0].text  # type: ignore[union-attr]
    counted = c.messages.count_tokens(
        model=live.model_id,
        messages=messages,
        tools=ANTHROPIC_TOOLS[:1],  # type: ignore[arg-type]
        tool_choice={"type": "none"},
    )
    assert counted.input_tokens == final.usage.input_tokens


# -- Ollama --------------------------------------------------------------------------------


def get_weather(city: str, unit: str = "celsius") -> str:
    """The current weather in a city.

    Args:
        city: the city's name
        unit: celsius or fahrenheit
    """
    return f"21 degrees {unit} in {city}"


def test_ollama_python_function_as_tool(live: LiveServer) -> None:
    client = ollama.Client(host=live.url, timeout=120)
    reply = client.chat(
        model=live.model_id,
        messages=QUESTION,
        tools=[get_weather],
        options={"tool_choice": "required", "temperature": 0, "num_predict": 160},  # type: ignore[typeddict-unknown-key]
        stream=False,
    )
    calls = reply.message.tool_calls
    assert calls, reply
    call = calls[0]
    assert call.function.name == "get_weather"
    assert isinstance(call.function.arguments["city"], str)
    assert reply.done_reason == "stop"
    # the call goes back with its result (Ollama's tool messages carry no ids)
    result = get_weather(**call.function.arguments)
    final = client.chat(
        model=live.model_id,
        messages=[
            *QUESTION,
            reply.message,
            {"role": "tool", "content": result, "tool_name": "get_weather"},
        ],
        tools=[get_weather],
        options={"tool_choice": "none", "temperature": 0, "num_predict": 16},  # type: ignore[typeddict-unknown-key]
    )
    assert final.message.content and not final.message.tool_calls
    assert (final.prompt_eval_count or 0) > (reply.prompt_eval_count or 0) + 20
    # streamed: the same call, in one piece before the final line
    parts = list(
        client.chat(
            model=live.model_id,
            messages=QUESTION,
            tools=[get_weather],
            options={"tool_choice": "required", "temperature": 0, "num_predict": 160},  # type: ignore[typeddict-unknown-key]
            stream=True,
        )
    )
    streamed = [c for part in parts for c in part.message.tool_calls or []]
    assert [(c.function.name, dict(c.function.arguments)) for c in streamed] == [
        (c.function.name, dict(c.function.arguments)) for c in calls
    ]
    assert parts[-1].done
    # Ollama's clients look for "tools" among a model's capabilities before sending tools
    assert "tools" in (client.show(live.model_id).capabilities or [])


# -- bad input, in each API's shape --------------------------------------------------------


def openai_error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    return error


def anthropic_error(response: httpx.Response) -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    message: str = body["error"]["message"]
    return message


def ollama_error(response: httpx.Response) -> str:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert isinstance(error, str)
    return error


def bad_tool(style: str) -> dict[str, Any]:
    if style == "responses":
        return {"type": "function", "name": "get_weather", "parameters": BAD_SCHEMA}
    if style == "anthropic":
        return {"name": "get_weather", "input_schema": BAD_SCHEMA}
    return {"type": "function", "function": {"name": "get_weather", "parameters": BAD_SCHEMA}}


def test_a_tool_schema_that_is_not_json_schema(live: LiveServer) -> None:
    base = {"model": live.model_id}
    chat = httpx.post(
        live.url + "/v1/chat/completions",
        json={**base, "messages": QUESTION, "tools": [bad_tool("chat")]},
        timeout=60,
    )
    error = openai_error(chat)
    assert error["param"] == "tools" and "not a valid JSON Schema" in error["message"]
    assert "no-such-type" in error["message"]
    responses = httpx.post(
        live.url + "/v1/responses",
        json={**base, "input": "Hi", "tools": [bad_tool("responses")]},
        timeout=60,
    )
    error = openai_error(responses)
    assert error["param"] == "tools" and "not a valid JSON Schema" in error["message"]
    message = anthropic_error(
        httpx.post(
            live.url + "/v1/messages",
            json={**base, "max_tokens": 8, "messages": QUESTION, "tools": [bad_tool("anthropic")]},
            timeout=60,
        )
    )
    assert "not a valid JSON Schema" in message
    message = ollama_error(
        httpx.post(
            live.url + "/api/chat",
            json={**base, "messages": QUESTION, "tools": [bad_tool("ollama")], "stream": False},
            timeout=60,
        )
    )
    assert "not a valid JSON Schema" in message


def test_a_tool_result_that_answers_no_call(live: LiveServer) -> None:
    call = {"id": "call_a", "type": "function", "function": {"name": "add", "arguments": "{}"}}
    messages = [
        *QUESTION,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_nope", "content": "3"},
    ]
    error = openai_error(
        httpx.post(
            live.url + "/v1/chat/completions",
            json={"model": live.model_id, "messages": messages, "tools": TOOLS},
            timeout=60,
        )
    )
    assert error["param"] == "messages" and "call_nope" in error["message"]
    assert "matches no earlier tool call" in error["message"]
    error = openai_error(
        httpx.post(
            live.url + "/v1/responses",
            json={
                "model": live.model_id,
                "input": [
                    {"role": "user", "content": "Add."},
                    {
                        "type": "function_call",
                        "call_id": "call_a",
                        "name": "add",
                        "arguments": "{}",
                    },
                    {"type": "function_call_output", "call_id": "call_nope", "output": "3"},
                ],
            },
            timeout=60,
        )
    )
    assert error["param"] == "input[2].call_id" and "call_nope" in error["message"]
    message = anthropic_error(
        httpx.post(
            live.url + "/v1/messages",
            json={
                "model": live.model_id,
                "max_tokens": 8,
                "messages": [
                    *QUESTION,
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "tool_use", "id": "toolu_a", "name": "add", "input": {}}
                        ],
                    },
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": "toolu_x", "content": "3"}
                        ],
                    },
                ],
            },
            timeout=60,
        )
    )
    assert "toolu_x" in message and "matches no tool_use" in message
    message = ollama_error(
        httpx.post(
            live.url + "/api/chat",
            json={
                "model": live.model_id,
                "stream": False,
                "messages": [*QUESTION, {"role": "tool", "content": "3", "tool_name": "add"}],
            },
            timeout=60,
        )
    )
    assert "no earlier tool call" in message


def test_unknown_previous_response_with_a_function_output(live: LiveServer) -> None:
    error = openai_error(
        httpx.post(
            live.url + "/v1/responses",
            json={
                "model": live.model_id,
                "previous_response_id": "resp_gone",
                "input": [{"type": "function_call_output", "call_id": "call_a", "output": "3"}],
            },
            timeout=60,
        )
    )
    assert error["param"] == "previous_response_id" and "resp_gone" in error["message"]
    assert error["code"] == "previous_response_not_found"


def test_forced_call_with_response_format_is_refused(live: LiveServer) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        live.client().chat.completions.create(
            model=live.model_id,
            messages=QUESTION,  # type: ignore[arg-type]
            tools=TOOLS,  # type: ignore[arg-type]
            tool_choice="required",
            response_format={"type": "json_object"},
        )
    assert info.value.body["param"] == "response_format"  # type: ignore[index]


def test_tools_on_a_template_that_cannot_render_them(server: LiveServer) -> None:
    """The shared server runs SmolLM2's own template, which never shows tools."""
    base = {"model": server.model_id}
    error = openai_error(
        httpx.post(
            server.url + "/v1/chat/completions",
            json={**base, "messages": QUESTION, "tools": TOOLS},
            timeout=60,
        )
    )
    assert error["param"] == "tools" and "cannot render tools" in error["message"]
    error = openai_error(
        httpx.post(
            server.url + "/v1/responses",
            json={**base, "input": "Hi", "tools": RESPONSE_TOOLS},
            timeout=60,
        )
    )
    assert error["param"] == "tools" and "cannot render tools" in error["message"]
    message = anthropic_error(
        httpx.post(
            server.url + "/v1/messages",
            json={**base, "max_tokens": 8, "messages": QUESTION, "tools": ANTHROPIC_TOOLS},
            timeout=60,
        )
    )
    assert "cannot render tools" in message
    message = ollama_error(
        httpx.post(
            server.url + "/api/chat",
            json={"model": server.model_id, "messages": QUESTION, "tools": TOOLS, "stream": False},
            timeout=60,
        )
    )
    assert "cannot render tools" in message
    # think: false asks nothing of a template that cannot think (Ollama's clients send it)
    plain = httpx.post(
        server.url + "/api/chat",
        json={
            "model": server.model_id,
            "messages": QUESTION,
            "think": False,
            "stream": False,
            "options": {"num_predict": 2},
        },
        timeout=60,
    )
    assert plain.status_code == 200 and "thinking" not in plain.json()["message"], plain.text
    # without tools the same server answers as ever
    ok = httpx.post(
        server.url + "/v1/chat/completions",
        json={**base, "messages": QUESTION, "max_tokens": 2, "tool_choice": "none"},
        timeout=60,
    )
    assert ok.status_code == 200, ok.text


CALL = {"id": "call_a", "type": "function", "function": {"name": "add", "arguments": "{}"}}


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/v1/chat/completions", {"tools": [{"type": "function", "function": {}}]}, "name"),
        ("/v1/chat/completions", {"tools": [TOOLS[0], TOOLS[0]]}, "defined twice"),
        ("/v1/chat/completions", {"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
        (
            "/v1/chat/completions",
            {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "nope",
        ),
        (
            "/v1/chat/completions",
            {
                "messages": [
                    *QUESTION,
                    {
                        "role": "assistant",
                        "tool_calls": [{**CALL, "function": {"name": "add", "arguments": "{oops"}}],
                    },
                ]
            },
            "not JSON",
        ),
        ("/v1/chat/completions", {"reasoning_effort": "extreme"}, "reasoning_effort"),
        (
            "/v1/chat/completions",
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "pick",
                            "parameters": {
                                "type": "object",
                                "properties": {"n": {"type": "integer", "multipleOf": 3}},
                            },
                        },
                    }
                ],
                "tool_choice": "required",
            },
            "multipleOf",
        ),
        ("/v1/chat/completions", {"tools": TOOLS, "parallel_tool_calls": "maybe"}, "parallel"),
        ("/v1/responses", {"tools": [{"type": "function"}]}, "name"),
        (
            "/v1/responses",
            {"input": [{"type": "function_call", "call_id": "c", "name": "add"}]},
            "arguments",
        ),
        ("/v1/responses", {"tool_choice": {"type": "file_search"}}, "tool_choice"),
        (
            "/v1/messages",
            {"tools": [{"name": "add", "input_schema": {"type": "object"}, "extra": 1}]},
            "unknown fields",
        ),
        ("/v1/messages", {"tools": [{"name": "add"}]}, "input_schema"),
        ("/v1/messages", {"tool_choice": {"type": "sometimes"}}, "tool_choice"),
        (
            "/v1/messages",
            {
                "messages": [
                    *QUESTION,
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t", "name": "add", "input": [1]}],
                    },
                    {"role": "user", "content": "Hi"},
                ]
            },
            "input must be an object",
        ),
        (
            "/v1/messages",
            {
                "messages": [
                    {"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "a"}]}
                ]
            },
            "belongs in an assistant message",
        ),
        ("/api/chat", {"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "name"),
        ("/api/generate", {"prompt": "Hi", "options": {"tool_choice": "required"}}, "tool_choice"),
    ],
)
def test_bad_tool_requests_name_what_is_wrong(
    live: LiveServer, path: str, body: dict[str, Any], needle: str
) -> None:
    request: dict[str, Any] = {"model": live.model_id, **body}
    if path == "/v1/responses":
        request.setdefault("input", "Hi")
    elif path == "/v1/messages":
        request.setdefault("max_tokens", 8)
        request.setdefault("messages", QUESTION)
    elif path.startswith("/api/"):
        request.setdefault("stream", False)
        if path == "/api/chat":
            request.setdefault("messages", QUESTION)
    else:
        request.setdefault("messages", QUESTION)
    response = httpx.post(live.url + path, json=request, timeout=60)
    assert response.status_code == 400, response.text
    data = response.json()
    if path == "/v1/messages":
        message = anthropic_error(response)
    elif path.startswith("/api/"):
        message = ollama_error(response)
    else:
        error = openai_error(response)
        message = error["message"] + " " + str(error["param"])
    assert needle.lower() in message.lower(), data
