"""OpenAI's Responses API with the official ``openai`` client against a live server: plain,
streamed, chained with ``previous_response_id``, structured output, the store's bounds, and
every refusal in OpenAI's error shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fireside.server import create_app
from fireside.server.responses_store import (
    MissingResponseError,
    ResponseStore,
    StoredResponse,
    json_size,
)

from .conftest import LiveServer, serve

QUESTION = "Name three colors."


@pytest.fixture(scope="module")
def live(model_path: Path) -> Iterator[LiveServer]:
    """A server of its own: tests here swap its response store."""
    app = create_app(model_path, parallel=4, ctx_size=512, n_threads=1, max_queue=16)
    with serve(app) as server:
        yield server


def greedy_chat(live: LiveServer, messages: list[dict[str, str]], max_tokens: int) -> Any:
    return live.client().chat.completions.create(
        model=live.model_id, messages=messages, max_tokens=max_tokens, temperature=0
    )  # type: ignore[call-overload]


def fresh_store(live: LiveServer, **bounds: int) -> ResponseStore:
    store = ResponseStore(**bounds)
    live.app.state.responses = store
    return store


def test_create_equals_greedy_chat_completion(live: LiveServer) -> None:
    store = fresh_store(live)
    reply = live.client().responses.create(
        model=live.model_id,
        input=QUESTION,
        instructions="You are terse.",
        max_output_tokens=16,
        temperature=0,
    )
    chat = greedy_chat(
        live,
        [{"role": "system", "content": "You are terse."}, {"role": "user", "content": QUESTION}],
        16,
    )
    assert reply.object == "response"
    assert reply.id.startswith("resp_")
    assert reply.model == live.model_id
    assert reply.output_text == chat.choices[0].message.content
    assert reply.output_text
    (item,) = reply.output
    assert item.type == "message" and item.role == "assistant"
    assert item.content[0].type == "output_text"
    assert reply.instructions == "You are terse."
    assert reply.temperature == 0
    assert reply.store is True and reply.id in store
    usage = reply.usage
    assert usage is not None and chat.usage is not None
    assert usage.input_tokens == chat.usage.prompt_tokens
    assert usage.output_tokens == chat.usage.completion_tokens
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    # length: incomplete, with the reason
    if chat.choices[0].finish_reason == "length":
        assert reply.status == "incomplete"
        assert reply.incomplete_details is not None
        assert reply.incomplete_details.reason == "max_output_tokens"
    else:
        assert reply.status == "completed"
    short = live.client().responses.create(
        model=live.model_id, input=QUESTION, max_output_tokens=2, temperature=0
    )
    assert short.status == "incomplete"
    assert short.usage is not None and short.usage.output_tokens == 2
    # retrieved as returned
    again = live.client().responses.retrieve(reply.id)
    assert again.output_text == reply.output_text
    assert again.id == reply.id


def test_stream_reassembles_to_the_plain_answer(live: LiveServer) -> None:
    fresh_store(live)
    client = live.client()
    options: dict[str, Any] = {
        "model": live.model_id,
        "input": QUESTION,
        "max_output_tokens": 24,
        "temperature": 0,
    }
    plain = client.responses.create(**options)
    events = list(client.responses.create(**options, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    last = "response.incomplete" if plain.status == "incomplete" else "response.completed"
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        last,
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1
    text = "".join(deltas)
    assert text == plain.output_text
    done = events[-4]
    assert done.type == "response.output_text.done" and done.text == text
    final = events[-1].response  # type: ignore[union-attr]
    assert final.output_text == text
    assert final.usage is not None and plain.usage is not None
    assert final.usage.output_tokens == plain.usage.output_tokens
    assert events[0].response.status == "in_progress"  # type: ignore[union-attr]
    # a streamed response is stored too: it can be continued
    follow = client.responses.create(
        model=live.model_id,
        input="And three more?",
        previous_response_id=final.id,
        max_output_tokens=4,
        temperature=0,
    )
    assert follow.previous_response_id == final.id


def test_chained_responses_rebuild_the_conversation(live: LiveServer) -> None:
    fresh_store(live)
    client = live.client()
    first = client.responses.create(
        model=live.model_id,
        input="My name is Ada. Say hello.",
        instructions="You are terse.",
        max_output_tokens=12,
        temperature=0,
    )
    second = client.responses.create(
        model=live.model_id,
        input="What is my name?",
        previous_response_id=first.id,
        max_output_tokens=12,
        temperature=0,
    )
    third = client.responses.create(
        model=live.model_id,
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Spell it."}]}],
        previous_response_id=second.id,
        max_output_tokens=12,
        temperature=0,
    )
    assert second.previous_response_id == first.id
    # instructions are not carried over (as in OpenAI's API): the conversation is
    conversation = [
        {"role": "user", "content": "My name is Ada. Say hello."},
        {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": "What is my name?"},
        {"role": "assistant", "content": second.output_text},
        {"role": "user", "content": "Spell it."},
    ]
    chat = greedy_chat(live, conversation, 12)
    assert third.output_text == chat.choices[0].message.content
    assert third.usage is not None and chat.usage is not None
    assert third.usage.input_tokens == chat.usage.prompt_tokens
    # the same conversation sent as items (the earlier output passed back as it came)
    items: list[Any] = [
        {"role": "user", "content": "My name is Ada. Say hello."},
        *[o.model_dump() for o in first.output],
        {"type": "message", "role": "user", "content": "What is my name?"},
        {"role": "assistant", "content": second.output_text},
        {"role": "user", "content": "Spell it."},
    ]
    stateless = client.responses.create(
        model=live.model_id, input=items, max_output_tokens=12, temperature=0, store=False
    )
    assert stateless.output_text == third.output_text


def test_store_false_is_not_kept(live: LiveServer) -> None:
    store = fresh_store(live)
    client = live.client()
    reply = client.responses.create(
        model=live.model_id, input="Hi", max_output_tokens=3, temperature=0, store=False
    )
    assert reply.store is False
    assert len(store) == 0 and reply.id not in store
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(
            model=live.model_id, input="Again", previous_response_id=reply.id, max_output_tokens=2
        )
    error = info.value.body
    assert isinstance(error, dict)
    assert error["code"] == "previous_response_not_found"
    assert error["param"] == "previous_response_id"
    assert reply.id in error["message"]
    streamed = list(
        client.responses.create(
            model=live.model_id, input="Hi", max_output_tokens=3, store=False, stream=True
        )
    )
    assert streamed[-1].response.store is False  # type: ignore[union-attr]
    assert len(store) == 0


def test_store_bounds_count_and_bytes(live: LiveServer) -> None:
    client = live.client()

    def create(text: str, previous: str | None = None) -> Any:
        return client.responses.create(
            model=live.model_id,
            input=text,
            max_output_tokens=3,
            temperature=0,
            **({"previous_response_id": previous} if previous else {}),
        )

    store = fresh_store(live, max_responses=2)
    a, b, c = create("One"), create("Two"), create("Three")
    assert len(store) == 2 and store.evicted == 1
    assert a.id not in store and b.id in store and c.id in store
    with pytest.raises(openai.BadRequestError, match="not found"):
        create("Go on", a.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(a.id)
    # a continued chain is recently used: its first turn outlives newer responses
    store = fresh_store(live, max_responses=3)
    root = create("Root")
    child = create("Child", root.id)
    create("Other")
    create("Grandchild", child.id)  # uses root and child: "Other" is the oldest now
    assert root.id in store and child.id in store and len(store) == 3
    # a chain whose earlier turn was dropped names it
    store.delete(root.id)
    with pytest.raises(openai.BadRequestError) as info:
        create("More", child.id)
    assert root.id in info.value.message and "no longer stored" in info.value.message

    # bytes: room for about two responses
    probe = fresh_store(live)
    size = probe.get(create("Sized").id).size  # type: ignore[union-attr]
    store = fresh_store(live, max_bytes=int(size * 2.5))
    first, second, third = create("Sized"), create("Sized"), create("Sized")
    assert store.bytes <= store.max_bytes
    assert first.id not in store and second.id in store and third.id in store
    # a response larger than the whole store is answered, but not kept
    store = fresh_store(live, max_bytes=size // 2)
    big = create("Sized")
    assert big.store is False and len(store) == 0


def test_store_unit_bounds() -> None:
    def entry(i: int, text: str = "x") -> StoredResponse:
        return StoredResponse.of(f"resp_{i}", None, [{"role": "user", "content": text}], {})

    store = ResponseStore(max_responses=3, max_bytes=10_000)
    for i in range(5):
        assert store.put(entry(i))
    assert [f"resp_{i}" in store for i in range(5)] == [False, False, True, True, True]
    assert store.evicted == 2
    store.get("resp_2")  # now the most recently used
    store.put(entry(5))
    assert "resp_2" in store and "resp_3" not in store
    assert store.bytes == sum(store.get(f"resp_{i}").size for i in (2, 4, 5))  # type: ignore[union-attr]
    one = entry(9, "y" * 100)
    assert one.size == json_size(one.messages) + json_size({})
    small = ResponseStore(max_responses=100, max_bytes=one.size * 2)
    assert small.put(one)
    assert small.put(StoredResponse.of("resp_10", None, one.messages, {}))
    assert small.put(StoredResponse.of("resp_11", None, one.messages, {}))
    assert len(small) == 2 and small.bytes <= small.max_bytes
    assert not small.put(StoredResponse.of("huge", None, [{"c": "z" * 1000}], {}))
    assert small.delete("resp_11") and not small.delete("resp_11")
    chained = ResponseStore()
    chained.put(StoredResponse.of("a", None, [{"role": "user", "content": "1"}], {}))
    chained.put(StoredResponse.of("b", "a", [{"role": "user", "content": "2"}], {}))
    assert [m["content"] for m in chained.conversation("b")] == ["1", "2"]
    with pytest.raises(MissingResponseError) as info:
        chained.conversation("nope")
    assert info.value.response_id == "nope"
    with pytest.raises(ValueError, match="max_bytes"):
        ResponseStore(max_bytes=0)


def test_text_format_json_schema(live: LiveServer) -> None:
    fresh_store(live)
    schema = {
        "type": "object",
        "properties": {"color": {"type": "string", "enum": ["red", "green", "blue"]}},
        "required": ["color"],
        "additionalProperties": False,
    }
    reply = live.client().responses.create(
        model=live.model_id,
        input="Pick a color.",
        max_output_tokens=32,
        temperature=0,
        text={"format": {"type": "json_schema", "name": "pick", "schema": schema}},
    )
    assert json.loads(reply.output_text)["color"] in ("red", "green", "blue")
    assert reply.text is not None and reply.text.format is not None
    assert reply.text.format.type == "json_schema"
    with pytest.raises(openai.BadRequestError) as info:
        live.client().responses.create(
            model=live.model_id,
            input="Pick a number.",
            max_output_tokens=8,
            text={
                "format": {
                    "type": "json_schema",
                    "name": "n",
                    "schema": {"type": "integer", "multipleOf": 3},
                }
            },
        )
    assert info.value.body["param"] == "text.format"  # type: ignore[index]
    assert "multipleOf" in info.value.message


@pytest.mark.parametrize(
    ("body", "param", "needle"),
    [
        (
            {"tools": [{"type": "function", "name": "f", "parameters": {}}]},
            "tools",
            "cannot render tools",
        ),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type", "function tools only"),
        ({"tool_choice": "required"}, "tool_choice", "needs at least one tool"),
        (
            {"input": [{"type": "function_call_output", "call_id": "c", "output": "1"}]},
            "input[0].call_id",
            "matches no function_call",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
            "input[0].content[0]",
            "only text",
        ),
        ({"input": [{"type": "reasoning", "summary": []}]}, "input", "no message"),
        (
            {"input": [{"type": "reasoning", "summary": [], "encrypted_content": "x"}]},
            "input[0].encrypted_content",
            "only OpenAI",
        ),
        ({"input": [{"type": "computer_call", "id": "x"}]}, "input[0]", "message"),
        ({"input": [{"role": "robot", "content": "hi"}]}, "input[0].role", "robot"),
        ({"input": []}, "input", "empty"),
        ({"model": "no-such-model"}, "model", "no-such-model"),
        ({"previous_response_id": "resp_unknown"}, "previous_response_id", "resp_unknown"),
        ({"max_output_tokens": 100_000}, "max_output_tokens", "at most"),
        ({"temperature": 3}, "temperature", "temperature"),
        ({"reasoning": {"effort": "low"}}, "reasoning.effort", "no reasoning switch"),
        ({"reasoning": {"summary": "auto"}}, "reasoning", "none"),
        ({"text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format", "name"),
    ],
)
def test_bad_requests_get_openai_errors(
    live: LiveServer, body: dict[str, Any], param: str, needle: str
) -> None:
    request = {"model": live.model_id, "input": "Hi", "max_output_tokens": 4, **body}
    r = httpx.post(live.url + "/v1/responses", json=request, timeout=60)
    error = r.json()["error"]
    assert r.status_code == (404 if param == "model" else 400), error
    assert error["type"] == "invalid_request_error"
    assert (error["param"] or "").startswith(param), error
    assert needle.lower() in error["message"].lower(), error


def test_context_overflow_names_input(live: LiveServer) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        live.client().responses.create(
            model=live.model_id, input="word " * 2000, max_output_tokens=4
        )
    assert info.value.body["code"] == "context_length_exceeded"  # type: ignore[index]
    assert info.value.body["param"] == "input"  # type: ignore[index]


def test_delete_and_unknown_ids(live: LiveServer) -> None:
    store = fresh_store(live)
    client = live.client()
    reply = client.responses.create(model=live.model_id, input="Hi", max_output_tokens=2)
    client.responses.delete(reply.id)
    assert reply.id not in store
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.delete(reply.id)
    assert info.value.body["code"] == "response_not_found"  # type: ignore[index]


def test_an_error_mid_stream_is_an_error_event_then_failed(model_path: Path) -> None:
    """The engine stops while a response streams: the stream says so and ends."""
    app = create_app(model_path, parallel=1, ctx_size=256, n_threads=1)
    with serve(app) as live:
        stream = live.client().responses.create(
            model=live.model_id, input="Tell a long story.", max_output_tokens=200, stream=True
        )
        kinds = []
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta" and kinds.count(event.type) == 1:
                live.app.state.service.engine.stop()
        assert kinds[-2:] == ["error", "response.failed"], kinds
        assert event.type == "response.failed"
        assert event.response.status == "failed"
        assert event.response.error is not None and event.response.error.message
        assert len(live.app.state.responses) == 0  # a failed response is not kept
