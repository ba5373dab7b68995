"""Ollama's REST API on a real server on loopback, driven by the official ``ollama`` client.

Greedy answers must equal what the server's own OpenAI endpoints give for the same
request (the same engine, reached through Ollama's field names). Pulls come from a local
fake Hugging Face Hub serving the real test model's bytes under the catalog's repository,
into a fresh model store; the served model is a copy of the test model inside that store,
so deleting it can be tried (and must be refused).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import ollama
import pytest
from fireside.hub import get_entry, store
from fireside.server import create_app

from tests.hub.fakehub import FakeHub
from tests.stores import fresh_store, hub_serving_the_test_model, place

from .conftest import LiveServer, serve

SERVED_REPO = "fireside-tests/served"
SLOT_CTX = 512
ENTRY = get_entry("smollm2-135m-instruct")
assert ENTRY is not None


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[FakeHub]:
    """A fresh model store and a fake Hub serving the test model as the catalog's file."""
    root = tmp_path_factory.mktemp("ollama")
    with fresh_store(root) as mp, hub_serving_the_test_model(mp, model_path) as fake:
        yield fake


@pytest.fixture(scope="module")
def live(hub: FakeHub, model_path: Path) -> Iterator[LiveServer]:
    served = place(model_path, store.hub_path(SERVED_REPO, ENTRY.file))
    app = create_app(served, parallel=4, ctx_size=SLOT_CTX, n_threads=1, max_queue=16)
    with serve(app) as server:
        yield server


@pytest.fixture
def client(live: LiveServer) -> ollama.Client:
    return ollama.Client(host=live.url, timeout=120)


def openai_post(live: LiveServer, path: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = httpx.post(live.url + path, json=body, timeout=120)
    assert reply.status_code == 200, reply.text
    result: dict[str, Any] = reply.json()
    return result


def stats_are_measured(answer: Any) -> None:
    assert answer.done is True
    assert answer.prompt_eval_count > 0 and answer.eval_count > 0
    assert answer.prompt_eval_duration > 0 and answer.eval_duration > 0
    assert answer.load_duration >= 0
    assert answer.total_duration >= answer.eval_duration


MESSAGES = [{"role": "user", "content": "Name three colors of the rainbow."}]


# -- generation ----------------------------------------------------------------------------


def test_chat_equals_the_servers_own_greedy_answer(live: LiveServer, client: ollama.Client) -> None:
    reply = client.chat(
        model="smollm2:135m", messages=MESSAGES, options={"temperature": 0, "num_predict": 24}
    )
    own = openai_post(
        live,
        "/v1/chat/completions",
        {"model": live.model_id, "messages": MESSAGES, "temperature": 0, "max_tokens": 24},
    )
    assert reply.message.role == "assistant"
    assert reply.message.content == own["choices"][0]["message"]["content"]
    assert reply.model == "smollm2:135m"  # echoed as asked
    assert reply.done_reason == own["choices"][0]["finish_reason"]
    assert reply.eval_count == own["usage"]["completion_tokens"]
    assert reply.prompt_eval_count == own["usage"]["prompt_tokens"]
    stats_are_measured(reply)


def test_streamed_chat_is_the_same_answer_in_pieces(client: ollama.Client) -> None:
    options = {"temperature": 0, "num_predict": 20}
    whole = client.chat(model="smollm2", messages=MESSAGES, options=options)
    parts = list(
        client.chat(model="smollm2:latest", messages=MESSAGES, options=options, stream=True)
    )
    assert len(parts) > 2
    assert all(not p.done for p in parts[:-1]) and parts[-1].done
    assert "".join(p.message.content or "" for p in parts) == whole.message.content
    assert parts[-1].message.content == ""
    assert parts[-1].eval_count == whole.eval_count
    stats_are_measured(parts[-1])


def test_options_map_to_the_same_sampling(live: LiveServer, client: ollama.Client) -> None:
    options = {
        "temperature": 0.9,
        "top_k": 20,
        "top_p": 0.9,
        "min_p": 0.02,
        "seed": 7,
        "num_predict": 16,
        "repeat_penalty": 1.2,
        "repeat_last_n": 32,
        "presence_penalty": 0.3,
        "frequency_penalty": 0.2,
        "stop": ["\n\n"],
    }
    reply = client.chat(model="smollm2:135m", messages=MESSAGES, options=options)
    fields = {k: v for k, v in options.items() if k != "num_predict"}
    own = openai_post(
        live,
        "/v1/chat/completions",
        {"model": live.model_id, "messages": MESSAGES, "max_tokens": 16, **fields},
    )
    assert reply.message.content == own["choices"][0]["message"]["content"]


def test_generate_templated_and_raw(live: LiveServer, client: ollama.Client) -> None:
    options = {"temperature": 0, "num_predict": 16}
    templated = client.generate(
        model="smollm2:135m", prompt="Say hello.", system="You are terse.", options=options
    )
    chat = client.chat(
        model="smollm2:135m",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hello."},
        ],
        options=options,
    )
    assert templated.response == chat.message.content
    assert templated.context is None  # only raw answers carry their tokens
    stats_are_measured(templated)

    prompt = "The capital of France is"
    raw = client.generate(model="smollm2:135m", prompt=prompt, raw=True, options=options)
    own = openai_post(
        live,
        "/v1/completions",
        {"model": live.model_id, "prompt": prompt, "temperature": 0, "max_tokens": 16},
    )
    assert raw.response == own["choices"][0]["text"]
    assert raw.context is not None
    assert len(raw.context) == raw.prompt_eval_count + raw.eval_count
    # the context leads the next raw prompt, as token ids
    more = client.generate(
        model="smollm2:135m", prompt=" Its", raw=True, context=raw.context, options=options
    )
    tail = live.app.state.service.core.tokenize(" Its", add_special=False, parse_special=True)
    own_more = openai_post(
        live,
        "/v1/completions",
        {
            "model": live.model_id,
            "prompt": [*raw.context, *tail],
            "temperature": 0,
            "max_tokens": 16,
        },
    )
    assert more.response == own_more["choices"][0]["text"]
    streamed = list(
        client.generate(model="smollm2:135m", prompt=prompt, raw=True, options=options, stream=True)
    )
    assert "".join(p.response for p in streamed) == raw.response
    assert streamed[-1].context == raw.context


def test_format_json_schema(client: ollama.Client) -> None:
    schema = {
        "type": "object",
        "properties": {"color": {"type": "string", "enum": ["red", "green", "blue"]}},
        "required": ["color"],
        "additionalProperties": False,
    }
    reply = client.chat(
        model="smollm2:135m",
        messages=[{"role": "user", "content": "Pick a color. Answer in JSON."}],
        format=schema,
        options={"temperature": 0, "num_predict": 40},
    )
    assert json.loads(reply.message.content or "")["color"] in ("red", "green", "blue")
    loose = client.generate(
        model="smollm2:135m",
        prompt="Give a JSON object with a name.",
        format="json",
        options={"temperature": 0, "num_predict": 60},
    )
    assert loose.response.lstrip().startswith("{")


def test_num_ctx_limits_the_request(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="smollm2:135m", messages=MESSAGES, options={"num_ctx": 8})
    assert caught.value.status_code == 400
    assert "maximum context length is 8 tokens" in caught.value.error
    n_prompt = client.chat(
        model="smollm2:135m", messages=MESSAGES, options={"num_predict": 1}
    ).prompt_eval_count
    reply = client.chat(model="smollm2:135m", messages=MESSAGES, options={"num_ctx": n_prompt + 3})
    assert (reply.prompt_eval_count, reply.eval_count) == (n_prompt, 3)
    assert reply.done_reason == "length"


def test_load_and_unload_requests(live: LiveServer, client: ollama.Client) -> None:
    assert client.generate(model="smollm2:135m").done_reason == "load"
    assert client.chat(model="smollm2:135m", messages=[]).done_reason == "load"
    assert [m.model for m in client.ps().models] == [live.model_id]
    assert client.generate(model="smollm2:135m", keep_alive=0).done_reason == "unload"
    assert client.ps().models == []  # unloaded before the answer
    assert client.generate(model="smollm2:135m").done_reason == "load"
    assert [m.model for m in client.ps().models] == [live.model_id]


def test_embed_equals_the_servers_embeddings(live: LiveServer, client: ollama.Client) -> None:
    texts = ["a cat sat on the mat", "quarterly stock market report"]
    reply = client.embed(model="smollm2:135m", input=texts)
    own = openai_post(live, "/v1/embeddings", {"model": live.model_id, "input": texts})
    assert len(reply.embeddings) == 2
    for got, want in zip(reply.embeddings, own["data"], strict=True):
        assert np.allclose(got, want["embedding"], atol=1e-5)
        assert np.isclose(np.linalg.norm(got), 1.0, atol=1e-4)
    assert reply.prompt_eval_count > 0 and reply.total_duration > 0
    old = client.embeddings(model="smollm2:135m", prompt=texts[0]).embedding
    raw = np.asarray(old)
    assert not np.isclose(np.linalg.norm(raw), 1.0)  # the older endpoint is not normalized
    assert np.allclose(raw / np.linalg.norm(raw), reply.embeddings[0], atol=1e-5)
    assert client.embed(model="smollm2:135m", input="").embeddings == []


# -- models --------------------------------------------------------------------------------


def test_list_show_ps(live: LiveServer, client: ollama.Client) -> None:
    listed = client.list().models
    assert listed[0].model == live.model_id
    assert listed[0].details.family == "llama" and listed[0].details.parameter_size
    shown = client.show("smollm2:135m")
    assert shown.modelinfo["llama.context_length"] == 8192
    assert shown.modelinfo["general.architecture"] == "llama"
    assert shown.capabilities == ["completion"]
    assert shown.template == live.app.state.service.model.chat_template.source
    assert shown.details.quantization_level == "Q4_1"
    running = client.ps().models
    assert [m.model for m in running] == [live.model_id]
    assert running[0].context_length == SLOT_CTX
    assert running[0].size > live.app.state.service.model.path.stat().st_size  # + KV cache
    assert httpx.get(live.url + "/api/version").json()["version"]


def test_pull_with_progress_then_delete(hub: FakeHub, client: ollama.Client) -> None:
    dest = store.hub_path(ENTRY.repo, ENTRY.file)
    assert not dest.exists()
    gets = len(hub.requests("GET", "/cdn/"))
    events = list(client.pull("smollm2:135m", stream=True))
    assert events[0].status == "pulling manifest"
    progress = [e for e in events if e.total]
    assert progress and progress[-1].completed == progress[-1].total == ENTRY.size
    done = [e.completed for e in progress]
    assert done == sorted(done)
    assert progress[0].digest == f"sha256:{ENTRY.sha256}"
    assert [e.status for e in events[-3:]] == [
        "verifying sha256 digest",
        "writing manifest",
        "success",
    ]
    assert len(hub.requests("GET", "/cdn/")) == gets + 1
    assert dest.is_file()
    assert "smollm2-135m-instruct" in [m.model for m in client.list().models]
    # pulling again finds it on disk: nothing is downloaded
    assert client.pull("smollm2:135m").status == "success"
    assert len(hub.requests("GET", "/cdn/")) == gets + 1

    assert client.delete("smollm2:135m").status == "success"
    assert not dest.exists()
    assert "smollm2-135m-instruct" not in [m.model for m in client.list().models]
    with pytest.raises(ollama.ResponseError) as caught:
        client.delete("smollm2:135m")
    assert caught.value.status_code == 404 and "not downloaded" in caught.value.error


def wait_for(condition: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_two_clients_share_one_download(live: LiveServer, hub: FakeHub) -> None:
    dest = store.hub_path(ENTRY.repo, ENTRY.file)
    dest.unlink(missing_ok=True)
    pulls = live.app.state.pulls
    gets = len(hub.requests("GET", "/cdn/"))
    hub.faults.gate = threading.Event()
    try:
        first = ollama.Client(host=live.url, timeout=120).pull("smollm2:135m", stream=True)
        second = ollama.Client(host=live.url, timeout=120).pull("smollm2:135m", stream=True)
        assert next(first).status == "pulling manifest"
        assert next(second).status == "pulling manifest"
        assert pulls.following("smollm2-135m-instruct") == 2
        hub.faults.gate.set()
        a, b = list(first), list(second)
    finally:
        hub.faults.gate.set()
        hub.faults.gate = None
    for events in (a, b):
        assert events[-1].status == "success"
        assert max(e.completed or 0 for e in events) == ENTRY.size
    assert len(hub.requests("GET", "/cdn/")) == gets + 1
    assert dest.is_file()
    dest.unlink()


def test_a_pull_whose_client_leaves_is_cancelled(live: LiveServer, hub: FakeHub) -> None:
    dest = store.hub_path(ENTRY.repo, ENTRY.file)
    dest.unlink(missing_ok=True)
    pulls = live.app.state.pulls
    hub.faults.gate = threading.Event()
    try:
        with httpx.stream(
            "POST",
            live.url + "/api/pull",
            json={"model": "smollm2:135m"},
            timeout=60,
        ) as reply:
            assert reply.status_code == 200
            assert reply.headers["content-type"].startswith("application/x-ndjson")
            line = next(reply.iter_lines())
            assert json.loads(line) == {"status": "pulling manifest"}
        wait_for(lambda: pulls.following("smollm2-135m-instruct") == 0, "the client to leave")
        hub.faults.gate.set()
        assert pulls.wait_idle(60)
    finally:
        hub.faults.gate.set()
        hub.faults.gate = None
    assert not dest.exists()  # stopped: nothing was completed


def test_deleting_the_served_model_is_refused(live: LiveServer, client: ollama.Client) -> None:
    served = live.app.state.service.model.path
    stream = client.chat(
        model="smollm2:135m", messages=MESSAGES, options={"num_predict": 24}, stream=True
    )
    assert next(stream).done is False  # a request is being served
    for name in (live.model_id, f"hf:{SERVED_REPO}/{ENTRY.file}"):
        with pytest.raises(ollama.ResponseError) as caught:
            client.delete(name)
        assert caught.value.status_code == 409
        assert "serving requests" in caught.value.error
    assert list(stream)[-1].done
    assert served.is_file()


# -- errors --------------------------------------------------------------------------------


def test_unknown_models_are_404_in_each_apis_shape(live: LiveServer, client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="smollm2:1b", messages=MESSAGES)
    assert caught.value.status_code == 404
    message = caught.value.error
    assert "model 'smollm2:1b' not found" in message
    assert live.model_id in message and "smollm2-1.7b-instruct" in message
    for call in (
        lambda: client.generate(model="llama9", prompt="hi"),
        lambda: client.embed(model="llama9", input="hi"),
        lambda: client.show("llama9"),
    ):
        with pytest.raises(ollama.ResponseError) as caught:
            call()
        assert caught.value.status_code == 404 and "llama9" in caught.value.error
    reply = httpx.post(
        live.url + "/v1/chat/completions", json={"model": "llama9", "messages": MESSAGES}
    )
    assert reply.status_code == 404
    error = reply.json()["error"]
    assert error["code"] == "model_not_found" and live.model_id in error["message"]


def test_pulling_an_unknown_name_is_a_clear_error(client: ollama.Client) -> None:
    for stream in (False, True):
        with pytest.raises(ollama.ResponseError) as caught:
            result = client.pull("no-such-model:7b", stream=stream)
            if stream:
                list(result)  # type: ignore[arg-type]
        assert caught.value.status_code == 404
        assert "no-such-model:7b" in caught.value.error


def test_bad_requests_name_what_was_wrong(live: LiveServer, client: ollama.Client) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"options": {"num_gpu": 1}}, "'num_gpu' sets how the model is loaded"),
        ({"options": {"tfs_z": 1.0}}, "'tfs_z' is not an option fireside supports"),
        ({"options": {"temperature": -1}}, "options.temperature"),
        ({"options": {"num_predict": 0}}, "num_predict must be at least 1"),
        ({"format": "xml"}, "format"),
        ({"keep_alive": "soon"}, "keep_alive 'soon' is not a duration"),
        ({"think": True}, "thinking cannot be turned on"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "cannot render tools"),
    ]
    for extra, expected in cases:
        body = {"model": "smollm2:135m", "messages": MESSAGES, "stream": False, **extra}
        reply = httpx.post(live.url + "/api/chat", json=body, timeout=60)
        assert reply.status_code == 400, (extra, reply.text)
        error = reply.json()["error"]
        assert isinstance(error, str) and expected in error, (extra, error)
    with pytest.raises(ollama.ResponseError) as caught:
        client.generate(model="smollm2:135m", prompt="hi", template="{{ .Prompt }}")
    assert caught.value.status_code == 400 and "Go templates" in caught.value.error


def test_errors_outside_the_routes_are_ollama_shaped(live: LiveServer) -> None:
    def error(reply: httpx.Response) -> str:
        body = reply.json()
        assert set(body) == {"error"} and isinstance(body["error"], str), body
        return str(body["error"])

    reply = httpx.post(
        live.url + "/api/chat",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert reply.status_code == 400 and "JSON" in error(reply)
    assert httpx.get(live.url + "/api/nothing").status_code == 404
    evil = {"Origin": "http://evil.example"}
    for method, path in (("GET", "/api/tags"), ("DELETE", "/api/delete")):
        reply = httpx.request(method, live.url + path, headers=evil, json={"model": "x"})
        assert reply.status_code == 403 and "evil.example" in error(reply)
    reply = httpx.post(
        live.url + "/api/chat", content=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert reply.status_code == 415 and "application/json" in error(reply)


def test_api_key_and_management_switch(live: LiveServer) -> None:
    model = live.app.state.service.model
    app = create_app(
        model,
        parallel=1,
        ctx_size=128,
        n_threads=1,
        api_key="sesame",
        manage_models=False,
        allowed_origins=("http://localhost:3000",),
    )
    with serve(app, api_key="sesame") as guarded:
        anonymous = ollama.Client(host=guarded.url, timeout=60)
        with pytest.raises(ollama.ResponseError) as caught:
            anonymous.list()
        assert caught.value.status_code == 401 and "API key" in caught.value.error
        with pytest.raises(ollama.ResponseError) as caught:
            anonymous.pull("smollm2:135m")
        assert caught.value.status_code == 401
        assert httpx.get(guarded.url + "/api/version").status_code == 200
        keyed = ollama.Client(
            host=guarded.url, timeout=60, headers={"Authorization": "Bearer sesame"}
        )
        assert keyed.list().models[0].model == guarded.model_id
        for call in (lambda: keyed.pull("smollm2:135m"), lambda: keyed.delete("smollm2:135m")):
            with pytest.raises(ollama.ResponseError) as caught:
                call()
            assert caught.value.status_code == 403
            assert "Downloading and deleting models is off" in caught.value.error
        # a page that may use the server may delete too (after its CORS preflight)
        page = {"Origin": "http://localhost:3000"}
        preflight = httpx.options(
            guarded.url + "/api/delete",
            headers={**page, "Access-Control-Request-Method": "DELETE"},
        )
        assert preflight.status_code == 204
        assert "DELETE" in preflight.headers["access-control-allow-methods"]
        reply = httpx.request(
            "DELETE",
            guarded.url + "/api/delete",
            headers={**page, "Authorization": "Bearer sesame"},
            json={"model": "smollm2:135m"},
        )
        assert reply.status_code == 403  # the switch, not the page, refuses it
        assert reply.headers["access-control-allow-origin"] == page["Origin"]
        assert "models is off" in reply.json()["error"]
