"""Anthropic's Messages API with the official ``anthropic`` client (``base_url`` pointed at a
live server): plain and streamed replies equal to fireside's own greedy chat, stop
sequences, ``count_tokens``, the API key in ``x-api-key``, and every error in Anthropic's
shape with Anthropic's status codes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from fireside.server import create_app

from .conftest import LiveServer, serve

API_KEY = "sk-anthropic-test"
QUESTION = "Name three colors."
SYSTEM = "You are terse."
GREEDY = {"temperature": 0}
"""Sent in the body: this client version has no ``temperature`` argument."""


def client(live: LiveServer, api_key: str = "unused") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=live.url, api_key=api_key, max_retries=0, timeout=120)


def greedy_chat(
    live: LiveServer, messages: list[dict[str, str]], max_tokens: int, **extra: Any
) -> Any:
    return live.client().chat.completions.create(
        model=live.model_id, messages=messages, max_tokens=max_tokens, temperature=0, **extra
    )  # type: ignore[call-overload]


def anthropic_error(response: httpx.Response, status: int, kind: str) -> str:
    """The message of an Anthropic-shaped error answer (checking its status and type)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error", body
    assert set(body) == {"type", "error"} and set(body["error"]) == {"type", "message"}, body
    assert body["error"]["type"] == kind, body
    message: str = body["error"]["message"]
    assert message
    return message


def test_create_equals_greedy_chat_and_count_tokens(server: LiveServer) -> None:
    c = client(server)
    messages = [
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": "Hi. How can I help?"},
        {"role": "user", "content": [{"type": "text", "text": QUESTION}]},
    ]
    reply = c.messages.create(
        model=server.model_id,
        system=SYSTEM,
        messages=messages,  # type: ignore[arg-type]
        max_tokens=16,
        extra_body=GREEDY,
    )
    chat_messages = [
        {"role": "system", "content": SYSTEM},
        *messages[:2],
        {"role": "user", "content": QUESTION},
    ]
    chat = greedy_chat(server, chat_messages, 16)  # type: ignore[arg-type]
    assert reply.type == "message" and reply.role == "assistant"
    assert reply.id.startswith("msg_")
    assert reply.model == server.model_id
    (block,) = reply.content
    assert block.type == "text"
    assert block.text == chat.choices[0].message.content and block.text
    expected = {"stop": "end_turn", "length": "max_tokens"}[chat.choices[0].finish_reason]
    assert reply.stop_reason == expected and reply.stop_sequence is None
    assert reply.usage.input_tokens == chat.usage.prompt_tokens
    assert reply.usage.output_tokens == chat.usage.completion_tokens
    counted = c.messages.count_tokens(
        model=server.model_id,
        system=[{"type": "text", "text": SYSTEM}],
        messages=messages,  # type: ignore[arg-type]
    )
    assert counted.input_tokens == reply.usage.input_tokens
    short = c.messages.create(
        model=server.model_id,
        messages=[{"role": "user", "content": QUESTION}],
        max_tokens=2,
        extra_body=GREEDY,
    )
    assert short.stop_reason == "max_tokens" and short.usage.output_tokens == 2


def test_stream_reassembles_to_the_plain_answer(server: LiveServer) -> None:
    c = client(server)
    options: dict[str, Any] = {
        "model": server.model_id,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": 24,
        "extra_body": GREEDY,
    }
    plain = c.messages.create(**options)
    events = list(c.messages.create(**options, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(kinds[2:-3]) == {"content_block_delta"}
    start = events[0].message  # type: ignore[union-attr]
    assert start.id.startswith("msg_") and start.content == []
    assert start.usage.input_tokens == plain.usage.input_tokens
    deltas = [e.delta.text for e in events if e.type == "content_block_delta"]  # type: ignore[union-attr]
    assert len(deltas) > 1
    assert "".join(deltas) == plain.content[0].text  # type: ignore[union-attr]
    end = events[-2]
    assert end.type == "message_delta"
    assert end.delta.stop_reason == plain.stop_reason
    assert end.usage.output_tokens == plain.usage.output_tokens
    # the client's own stream helper accumulates the same message
    with c.messages.stream(**options) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == plain.content[0].text  # type: ignore[union-attr]
    assert final.content[0].text == text  # type: ignore[union-attr]
    assert final.stop_reason == plain.stop_reason


def test_stop_sequences_name_the_one_that_matched(server: LiveServer) -> None:
    c = client(server)
    question = [{"role": "user", "content": "Count from one to ten in words."}]
    full = greedy_chat(server, question, 40).choices[0].message.content  # type: ignore[arg-type]
    words = list(dict.fromkeys(full.split()))
    assert len(words) >= 4, full
    early, late = sorted((words[1], words[3]), key=full.index)  # early's first use comes first
    assert full.index(early) < full.index(late), full
    reply = c.messages.create(
        model=server.model_id,
        messages=question,  # type: ignore[arg-type]
        max_tokens=40,
        stop_sequences=[late, early],
        extra_body=GREEDY,
    )
    assert reply.stop_reason == "stop_sequence"
    assert reply.stop_sequence == early
    assert reply.content[0].text == full[: full.index(early)]  # type: ignore[union-attr]
    events = list(
        c.messages.create(
            model=server.model_id,
            messages=question,  # type: ignore[arg-type]
            max_tokens=40,
            stop_sequences=[late],
            stream=True,
            extra_body=GREEDY,
        )
    )
    end = events[-2]
    assert end.type == "message_delta"
    assert end.delta.stop_reason == "stop_sequence" and end.delta.stop_sequence == late


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"tools": [{"name": "f", "input_schema": {"type": "object"}}]}, "cannot render tools"),
        ({"tools": [{"type": "bash_20250124", "name": "bash"}]}, "server tools"),
        ({"tool_choice": {"type": "any"}}, "needs at least one tool"),
        (
            {
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
                    },
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "u", "content": "1"}],
                    },
                ]
            },
            "matches no tool_use",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image", "source": {"type": "base64", "data": "x"}}],
                    }
                ]
            },
            "'image' block",
        ),
        ({"messages": [{"role": "system", "content": "Hi"}]}, "messages[0].role"),
        ({"messages": []}, "messages"),
        (
            {
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "A"},
                ]
            },
            "prefill",
        ),
        ({"temperature": 1.5}, "temperature"),
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "thinking"),
        ({"stop_sequences": [""]}, "stop"),
        ({"max_tokens": 100_000}, "max_tokens"),
    ],
)
def test_bad_requests_get_anthropic_errors(
    server: LiveServer, body: dict[str, Any], needle: str
) -> None:
    request = {
        "model": server.model_id,
        "max_tokens": 4,
        "messages": [{"role": "user", "content": "Hi"}],
        **body,
    }
    request = {k: v for k, v in request.items() if v is not None}
    r = httpx.post(server.url + "/v1/messages", json=request, timeout=60)
    message = anthropic_error(r, 400, "invalid_request_error")
    assert needle.lower() in message.lower()


def test_client_errors_unknown_model_and_paths(server: LiveServer) -> None:
    c = client(server)
    with pytest.raises(anthropic.NotFoundError) as info:
        c.messages.create(
            model="claude-nonexistent", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
        )
    assert info.value.status_code == 404
    assert info.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    assert "claude-nonexistent" in info.value.body["error"]["message"]  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError):
        c.messages.count_tokens(model="nope", messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(anthropic.BadRequestError) as bad:
        c.messages.count_tokens(
            model=server.model_id,
            messages=[{"role": "user", "content": "Hi"}],
            tools=[{"name": "f", "input_schema": {"type": "object"}}],
        )
    assert "cannot render tools" in bad.value.body["error"]["message"]  # type: ignore[index]
    # answered before any route runs: still Anthropic's shape
    anthropic_error(
        httpx.post(server.url + "/v1/messages/nope", json={}, timeout=30), 404, "not_found_error"
    )
    anthropic_error(
        httpx.get(server.url + "/v1/messages", timeout=30), 405, "invalid_request_error"
    )
    r = httpx.post(
        server.url + "/v1/messages",
        content=b'{"model": "x"}',
        headers={"Content-Type": "text/plain"},
        timeout=30,
    )
    assert "application/json" in anthropic_error(r, 415, "invalid_request_error")
    r = httpx.post(
        server.url + "/v1/messages",
        json={},
        headers={"Origin": "https://evil.example"},
        timeout=30,
    )
    anthropic_error(r, 403, "permission_error")
    anthropic_error(
        httpx.post(
            server.url + "/v1/messages",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
            timeout=30,
        ),
        400,
        "invalid_request_error",
    )
    # other paths keep OpenAI's shape
    r = httpx.post(server.url + "/v1/chat/completions", json={}, timeout=30)
    assert r.status_code == 400 and "error" in r.json() and "type" not in r.json()


# -- a guarded server: an API key, one slot, no queue -----------------------------------


@pytest.fixture(scope="module")
def guarded(model_path: Path) -> Iterator[LiveServer]:
    app = create_app(
        model_path, parallel=1, ctx_size=512, n_threads=1, max_queue=0, api_key=API_KEY
    )
    with serve(app, api_key=API_KEY) as live:
        yield live


def test_api_key_in_x_api_key(guarded: LiveServer) -> None:
    body = {
        "model": guarded.model_id,
        "max_tokens": 1,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    url = guarded.url + "/v1/messages"
    assert httpx.post(url, json=body, headers={"x-api-key": API_KEY}, timeout=60).status_code == 200
    r = httpx.post(url, json=body, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60)
    assert r.status_code == 200
    message = anthropic_error(httpx.post(url, json=body, timeout=60), 401, "authentication_error")
    assert "x-api-key" in message
    r = httpx.post(url, json=body, headers={"x-api-key": "wrong"}, timeout=60)
    anthropic_error(r, 401, "authentication_error")
    r = httpx.post(url + "/count_tokens", json=body, headers={"x-api-key": "wrong"}, timeout=60)
    anthropic_error(r, 401, "authentication_error")
    assert client(guarded, API_KEY).messages.create(**body).usage.output_tokens == 1
    with pytest.raises(anthropic.AuthenticationError):
        client(guarded, "wrong").messages.create(**body)
    # x-api-key opens only the Messages API: the OpenAI routes keep their Bearer check
    r = httpx.get(guarded.url + "/v1/models", headers={"x-api-key": API_KEY}, timeout=30)
    assert r.status_code == 401


def test_full_queue_is_529_overloaded(guarded: LiveServer) -> None:
    """One slot, no queue: while a long stream runs, another request is overloaded."""
    body = {
        "model": guarded.model_id,
        "max_tokens": 400,
        "messages": [{"role": "user", "content": "Write a long story about a dragon."}],
        "stream": True,
    }
    started = threading.Event()
    stop = threading.Event()

    def hold_the_slot() -> None:
        headers = {"x-api-key": API_KEY}
        with httpx.stream(
            "POST", guarded.url + "/v1/messages", json=body, headers=headers, timeout=120
        ) as r:
            for line in r.iter_lines():
                if "content_block_delta" in line:
                    started.set()
                if stop.is_set():
                    break

    holder = threading.Thread(target=hold_the_slot, daemon=True)
    holder.start()
    try:
        assert started.wait(120), "the first stream never started"
        with pytest.raises(anthropic.APIStatusError) as info:
            client(guarded, API_KEY).messages.create(
                model=guarded.model_id, max_tokens=1, messages=[{"role": "user", "content": "x"}]
            )
        assert info.value.status_code == 529
        assert info.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
        assert int(info.value.response.headers["Retry-After"]) >= 1
    finally:
        stop.set()
        holder.join(120)


def test_an_error_mid_stream_is_an_error_event(model_path: Path) -> None:
    """The engine stops while a reply streams: an ``error`` event, which the client raises."""
    app = create_app(model_path, parallel=1, ctx_size=256, n_threads=1)
    with serve(app) as live:
        stream = client(live).messages.create(
            model=live.model_id,
            max_tokens=200,
            messages=[{"role": "user", "content": "Tell a long story."}],
            stream=True,
        )
        kinds = []
        with pytest.raises(anthropic.APIStatusError) as info:
            for event in stream:
                kinds.append(event.type)
                if event.type == "content_block_delta" and kinds.count(event.type) == 1:
                    live.app.state.service.engine.stop()
        assert "content_block_delta" in kinds and "message_stop" not in kinds
        body = info.value.body
        assert isinstance(body, dict) and body["type"] == "error"
        assert body["error"]["type"] == "api_error" and body["error"]["message"]
