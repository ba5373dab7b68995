"""Every error a client can meet, in OpenAI's shape with the right HTTP status."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fireside.server import create_app

from .conftest import SLOT_CTX, LiveServer, chat_body, serve

API_KEY = "sk-test-0123456789"
BODY_LIMIT = 8192


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The ``error`` object of an answer that must have ``status`` and OpenAI's shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    return error


def post(live: LiveServer, path: str, body: Any = None, **options: Any) -> httpx.Response:
    headers = options.pop("headers", {})
    if live.api_key and options.pop("auth", True) and "Authorization" not in headers:
        headers["Authorization"] = f"Bearer {live.api_key}"
    if isinstance(body, (dict, list)):
        options["json"] = body
    elif body is not None:
        options["content"] = body
        headers.setdefault("Content-Type", "application/json")  # a (malformed) JSON body
    return httpx.post(live.url + path, headers=headers, timeout=120, **options)


# -- 400: the request cannot be parsed or is invalid --------------------------------------


def test_malformed_json_is_400(server: LiveServer) -> None:
    error = error_of(post(server, "/v1/chat/completions", '{"model": "x", "messages": ['), 400)
    assert error["type"] == "invalid_request_error"
    assert "JSON" in error["message"]
    error_of(post(server, "/v1/chat/completions", "[1, 2]"), 400)
    error_of(post(server, "/v1/chat/completions", ""), 400)


@pytest.mark.parametrize(
    ("change", "param", "words"),
    [
        ({"messages": None}, "messages", "Missing required parameter"),
        ({"messages": "hello"}, "messages", "messages"),
        ({"messages": []}, "messages", "at least 1"),
        ({"temperature": 5}, "temperature", "temperature must be in [0, 2]"),
        ({"top_p": -1}, "top_p", "top_p must be in [0, 1]"),
        ({"mirostat_tau": 0}, "mirostat_tau", "mirostat_tau must be > 0"),
        ({"dry_base": 0.5}, "dry_base", "dry_base must be >= 1"),
        ({"mirostat": 3}, "mirostat", "mirostat must be 0 (off), 1 or 2"),
        ({"n": 2}, "n", "only n=1"),
        ({"max_tokens": 0}, "max_tokens", "greater than or equal to 1"),
        ({"frobnicate": True}, "frobnicate", "Unrecognized request argument"),
        ({"stop": ["a"] * 17}, "stop", "at most 16"),
        ({"logit_bias": {"abc": 1}}, "logit_bias", "token ids"),
        ({"stream_options": {"include_usage": True}}, "stream_options", "stream is true"),
        ({"top_logprobs": 2}, "top_logprobs", "logprobs"),
        ({"response_format": {"type": "xml"}}, "response_format", "response_format"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages", "robot"),
    ],
)
def test_invalid_chat_fields_are_400_naming_the_field(
    server: LiveServer, change: dict[str, Any], param: str, words: str
) -> None:
    body = chat_body(server, "Hi", max_tokens=2)
    for key, value in change.items():
        if value is None:
            del body[key]
        else:
            body[key] = value
    error = error_of(post(server, "/v1/chat/completions", body), 400)
    assert error["param"] == param
    assert words in error["message"]


def test_openai_client_raises_bad_request(server: LiveServer) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        server.client().chat.completions.create(
            model=server.model_id, messages=[{"role": "user", "content": "x"}], temperature=9
        )
    assert caught.value.status_code == 400
    assert caught.value.body["param"] == "temperature"  # type: ignore[index]


def test_prompt_longer_than_the_context_is_400_naming_the_counts(server: LiveServer) -> None:
    long_text = "tell me about the weather " * 80
    with pytest.raises(openai.BadRequestError) as caught:
        server.client().chat.completions.create(
            model=server.model_id, messages=[{"role": "user", "content": long_text}], max_tokens=4
        )
    error = caught.value.body
    assert error["code"] == "context_length_exceeded"  # type: ignore[index]
    n_prompt = len(
        server.app.state.service.model.apply_chat_template(
            [{"role": "user", "content": long_text}], tokenize=True
        )
    )
    message = error["message"]  # type: ignore[index]
    assert str(SLOT_CTX) in message and str(n_prompt) in message
    with pytest.raises(openai.BadRequestError) as caught:
        server.client().completions.create(model=server.model_id, prompt=long_text, max_tokens=2)
    assert caught.value.body["param"] == "prompt"  # type: ignore[index]


def test_max_tokens_is_bounded(server: LiveServer) -> None:
    error = error_of(
        post(server, "/v1/chat/completions", chat_body(server, "Hi", max_tokens=10**9)), 400
    )
    assert error["param"] == "max_tokens"
    assert str(SLOT_CTX - 1) in error["message"]


def test_invalid_json_schema_is_400(server: LiveServer) -> None:
    body = chat_body(
        server,
        "Hi",
        max_tokens=2,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "bad", "schema": {"type": "object", "minProperties": 2}},
        },
    )
    error = error_of(post(server, "/v1/chat/completions", body), 400)
    assert error["param"] == "response_format"


def test_completion_prompt_errors(server: LiveServer) -> None:
    base = {"model": server.model_id, "max_tokens": 2}
    error = error_of(post(server, "/v1/completions", {**base, "prompt": ["a", "b"]}), 400)
    assert error["param"] == "prompt" and "one prompt" in error["message"]
    error = error_of(post(server, "/v1/completions", {**base, "prompt": [1, 10**8]}), 400)
    assert error["param"] == "prompt" and "token id" in error["message"]
    error_of(post(server, "/v1/completions", {**base, "prompt": ""}), 400)
    error_of(post(server, "/v1/completions", {**base, "prompt": "x", "logprobs": 9}), 400)


def test_embedding_input_errors(server: LiveServer) -> None:
    base = {"model": server.model_id}
    for bad in ("", [], ["fine", ""], [1, 2, 3], [[1, 2]]):
        error = error_of(post(server, "/v1/embeddings", {**base, "input": bad}), 400)
        assert error["param"] == "input", bad
    error = error_of(post(server, "/v1/embeddings", {**base, "input": "x", "dimensions": 3}), 400)
    assert error["param"] == "dimensions"
    error = error_of(post(server, "/v1/embeddings", {**base, "input": "word " * 2000}), 400)
    assert error["code"] == "context_length_exceeded"


# -- 404 ---------------------------------------------------------------------------------


def test_unknown_model_is_404(server: LiveServer) -> None:
    client = server.client()
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}], max_tokens=2
        )
    assert caught.value.body["code"] == "model_not_found"  # type: ignore[index]
    assert "gpt-4o" in caught.value.body["message"]  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="gpt-4o", prompt="x", max_tokens=2)
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="gpt-4o", input="x")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_unknown_route_and_wrong_method(server: LiveServer) -> None:
    error_of(httpx.get(server.url + "/v1/nothing-here", timeout=30), 404)
    error_of(httpx.get(server.url + "/v1/chat/completions", timeout=30), 405)


# -- a guarded server: API key, small queue, small body limit ---------------------------


@pytest.fixture(scope="module")
def guarded(model_path: Path) -> Iterator[LiveServer]:
    app = create_app(
        model_path,
        parallel=1,
        ctx_size=512,
        n_threads=1,
        max_queue=0,
        api_key=API_KEY,
        max_body_bytes=BODY_LIMIT,
    )
    with serve(app, api_key=API_KEY) as live:
        yield live


def test_missing_or_wrong_api_key_is_401(guarded: LiveServer) -> None:
    body = chat_body(guarded, "Hi", max_tokens=1)
    error = error_of(post(guarded, "/v1/chat/completions", body, auth=False), 401)
    assert "API key" in error["message"]
    error = error_of(
        post(guarded, "/v1/chat/completions", body, headers={"Authorization": "Bearer nope"}),
        401,
    )
    assert error["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=guarded.url + "/v1", api_key="wrong", max_retries=0).models.list()
    error_of(httpx.get(guarded.url + "/metrics", timeout=30), 401)
    # the right key works; /health stays open for probes
    assert [m.id for m in guarded.client().models.list().data] == [guarded.model_id]
    assert post(guarded, "/v1/chat/completions", body).status_code == 200
    assert httpx.get(guarded.url + "/health", timeout=30).status_code == 200


def test_body_over_the_limit_is_413(guarded: LiveServer) -> None:
    big = chat_body(guarded, "x" * (BODY_LIMIT + 100), max_tokens=1)
    error = error_of(post(guarded, "/v1/chat/completions", big), 413)
    assert error["code"] == "request_too_large"

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"model": "m", "messages": [{"role": "user", "content": "'
        for _ in range(20):
            yield b"y" * 1000
        yield b'"}]}'

    error_of(post(guarded, "/v1/chat/completions", chunked()), 413)


def test_full_queue_is_503_with_retry_after(guarded: LiveServer) -> None:
    """One slot, no queue: while a long stream runs, another request is refused."""
    body = chat_body(guarded, "Write a long story about a dragon.", max_tokens=400, stream=True)
    started = threading.Event()
    stop = threading.Event()

    def hold_the_slot() -> None:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        with httpx.stream(
            "POST", guarded.url + "/v1/chat/completions", json=body, headers=headers, timeout=120
        ) as r:
            for _ in r.iter_lines():
                started.set()
                if stop.is_set():
                    break

    holder = threading.Thread(target=hold_the_slot, daemon=True)
    holder.start()
    try:
        assert started.wait(120), "the first stream never started"
        response = post(guarded, "/v1/chat/completions", chat_body(guarded, "Hi", max_tokens=1))
        error = error_of(response, 503)
        assert error["code"] == "queue_full"
        assert int(response.headers["Retry-After"]) >= 1
        with pytest.raises(openai.InternalServerError) as caught:
            guarded.client().chat.completions.create(
                model=guarded.model_id, messages=[{"role": "user", "content": "x"}], max_tokens=1
            )
        assert caught.value.status_code == 503
    finally:
        stop.set()
        holder.join(120)
    deadline = time.monotonic() + 60  # the slot frees once the stream is closed
    while guarded.metrics()["fireside_slots_active"] != 0:
        assert time.monotonic() < deadline, "the slot was not freed"
        time.sleep(0.05)
    assert (
        post(guarded, "/v1/chat/completions", chat_body(guarded, "Hi", max_tokens=1)).status_code
        == 200
    )
