"""The official ``openai`` client against a live server: every endpoint, plain and streamed."""

from __future__ import annotations

import json

import httpx
import jsonschema
import numpy as np
import pytest
from fireside.generation.engine import CHUNK

from .conftest import ChatPrompts, LiveServer

QUESTION = "Name three colors."


def test_models_lists_the_served_model(server: LiveServer) -> None:
    client = server.client()
    models = client.models.list()
    assert [m.id for m in models.data] == [server.model_id]
    assert models.data[0].owned_by == "fireside"
    assert client.models.retrieve(server.model_id).id == server.model_id


def test_chat_completion(server: LiveServer) -> None:
    reply = server.client().chat.completions.create(
        model=server.model_id,
        messages=[{"role": "user", "content": QUESTION}],
        max_tokens=12,
        temperature=0,
    )
    assert reply.object == "chat.completion"
    assert reply.id.startswith("chatcmpl-")
    assert reply.model == server.model_id
    (choice,) = reply.choices
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in ("stop", "length")
    usage = reply.usage
    assert usage is not None and usage.completion_tokens <= 12
    assert usage.prompt_tokens > 5
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_streamed_chat_equals_plain_greedy_and_reports_usage(server: LiveServer) -> None:
    client = server.client()
    options = {
        "model": server.model_id,
        "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": 16,
        "temperature": 0,
    }
    plain = client.chat.completions.create(**options)  # type: ignore[call-overload]
    chunks = list(
        client.chat.completions.create(
            **options, stream=True, stream_options={"include_usage": True}
        )  # type: ignore[call-overload]
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == plain.choices[0].finish_reason
    assert all(f is None for f in finishes[:-1])
    last = chunks[-1]  # include_usage: a last chunk with no choices and the usage
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens == plain.usage.completion_tokens  # type: ignore[union-attr]
    assert all(c.usage is None for c in chunks[:-1])


def test_sse_stream_ends_with_done(server: LiveServer) -> None:
    body = {
        "model": server.model_id,
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 4,
        "stream": True,
    }
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=120) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events)
    for event in events[:-1]:
        assert json.loads(event[6:])["object"] == "chat.completion.chunk"


def test_completion_plain_and_streamed(server: LiveServer) -> None:
    client = server.client()
    plain = client.completions.create(
        model=server.model_id, prompt="The capital of France is", max_tokens=6, temperature=0
    )
    assert plain.object == "text_completion"
    assert plain.choices[0].text
    assert plain.usage is not None and plain.usage.completion_tokens <= 6
    streamed = list(
        client.completions.create(
            model=server.model_id,
            prompt="The capital of France is",
            max_tokens=6,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].text for c in streamed if c.choices)
    assert text == plain.choices[0].text
    assert streamed[-1].usage is not None
    assert streamed[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_completion_from_token_ids_matches_text_prompt(server: LiveServer) -> None:
    client = server.client()
    core = server.app.state.service.core
    ids = core.tokenize("Once upon a time", add_special=True)
    by_text = client.completions.create(
        model=server.model_id, prompt="Once upon a time", max_tokens=5, temperature=0
    )
    by_ids = client.completions.create(
        model=server.model_id, prompt=ids, max_tokens=5, temperature=0
    )
    assert by_ids.choices[0].text == by_text.choices[0].text


def test_completion_logprobs(server: LiveServer) -> None:
    reply = server.client().completions.create(
        model=server.model_id, prompt="1, 2, 3, 4,", max_tokens=3, temperature=0, logprobs=2
    )
    lp = reply.choices[0].logprobs
    assert lp is not None and lp.tokens and lp.token_logprobs and lp.top_logprobs
    assert "".join(lp.tokens) == reply.choices[0].text
    for token, logprob, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert logprob <= 0
        assert len(top) == 2
        assert max(top.values()) == pytest.approx(logprob)  # greedy picks the best
        assert token in top


def test_chat_logprobs(server: LiveServer) -> None:
    reply = server.client().chat.completions.create(
        model=server.model_id,
        messages=[{"role": "user", "content": "Count: 1, 2, 3"}],
        max_tokens=4,
        temperature=0,
        logprobs=True,
        top_logprobs=3,
    )
    content = reply.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content
    assert "".join(t.token for t in content) == reply.choices[0].message.content
    for entry in content:
        assert len(entry.top_logprobs) == 3
        assert entry.top_logprobs[0].logprob == pytest.approx(entry.logprob)


def test_stop_sequence_ends_the_reply_before_it(server: LiveServer) -> None:
    client = server.client()
    options = {"model": server.model_id, "prompt": "1, 2, 3, 4, 5, 6,", "temperature": 0}
    full = client.completions.create(**options, max_tokens=12).choices[0].text  # type: ignore[call-overload]
    assert " 9" in full, full  # the model counts on
    cut = client.completions.create(**options, max_tokens=12, stop=[" 9"])  # type: ignore[call-overload]
    assert cut.choices[0].text == full[: full.index(" 9")]
    assert cut.choices[0].finish_reason == "stop"


def test_seed_makes_sampling_reproducible(server: LiveServer) -> None:
    client = server.client()

    def sample(seed: int) -> str:
        reply = client.chat.completions.create(
            model=server.model_id,
            messages=[{"role": "user", "content": "Write a word."}],
            max_tokens=8,
            temperature=1.0,
            seed=seed,
        )
        return reply.choices[0].message.content or ""

    assert sample(1234) == sample(1234)


def test_json_schema_response_validates(server: LiveServer) -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 12},
            "age": {"type": "integer", "minimum": 0, "maximum": 120},
        },
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    reply = server.client().chat.completions.create(
        model=server.model_id,
        messages=[{"role": "user", "content": "Invent a person."}],
        max_tokens=40,
        temperature=0,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": schema, "strict": True},
        },
    )
    assert reply.choices[0].finish_reason == "stop"
    data = json.loads(reply.choices[0].message.content or "")
    jsonschema.validate(data, schema)


def test_json_object_response_is_an_object(server: LiveServer) -> None:
    reply = server.client().chat.completions.create(
        model=server.model_id,
        messages=[{"role": "user", "content": "Give me a JSON object describing a cat."}],
        max_tokens=24,
        temperature=0,
        response_format={"type": "json_object"},
    )
    if reply.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)
    else:  # cut by max_tokens: still the start of an object
        assert (reply.choices[0].message.content or "").lstrip().startswith("{")


def test_embeddings_float_and_base64(server: LiveServer) -> None:
    client = server.client()
    texts = ["The cat sat on the mat.", "A kitten rested on the rug.", "Stock markets fell."]
    floats = client.embeddings.create(model=server.model_id, input=texts, encoding_format="float")
    encoded = client.embeddings.create(model=server.model_id, input=texts)  # base64 by default
    n_embd = server.app.state.service.core.n_embd
    assert [d.index for d in floats.data] == [0, 1, 2]
    for a, b in zip(floats.data, encoded.data):
        assert len(a.embedding) == n_embd
        assert np.allclose(a.embedding, b.embedding, atol=1e-6)
    vectors = np.array([d.embedding for d in floats.data])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]  # similar texts are closer
    core = server.app.state.service.core
    assert floats.usage.prompt_tokens == sum(len(core.tokenize(t)) for t in texts)
    single = client.embeddings.create(
        model=server.model_id, input=texts[0], encoding_format="float"
    )
    # alone or in a batch: the same vector up to the kernels' rounding (see tests/api/test_embeddings)
    alone = np.array(single.data[0].embedding)
    assert alone @ vectors[0] > 0.998
    assert int(np.argmax(vectors @ alone)) == 0


def test_prompt_prefix_is_reused_from_the_slot_cache(
    server: LiveServer, chat_prompts: ChatPrompts
) -> None:
    client = server.client()
    messages = [
        {"role": "system", "content": "You are a terse assistant who answers in one word. " * 8},
        {"role": "user", "content": "What color is the sky on a clear day?"},
    ]
    client.chat.completions.create(
        model=server.model_id, messages=messages, max_tokens=2, temperature=0
    )
    before = server.wait_idle()
    reply = client.chat.completions.create(
        model=server.model_id, messages=messages, max_tokens=2, temperature=0
    )
    after = server.wait_idle()
    n_prompt = reply.usage.prompt_tokens  # type: ignore[union-attr]
    reused = (
        after["fireside_prompt_tokens_cached_total"] - before["fireside_prompt_tokens_cached_total"]
    )
    # everything but the last token (evaluated for its logits), down to a chunk boundary
    # (exact reuse: fireside.generation.engine, "Determinism")
    assert n_prompt > CHUNK
    assert reused == chat_prompts.reusable(messages) > n_prompt - CHUNK


def test_health_and_metrics(server: LiveServer) -> None:
    health = httpx.get(server.url + "/health", timeout=30)
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["slots_total"] == 8 and body["model"] == server.model_id
    text = httpx.get(server.url + "/metrics", timeout=30).text
    for name in (
        "fireside_requests_total",
        "fireside_prompt_tokens_total",
        "fireside_completion_tokens_total",
        "fireside_queue_depth",
        "fireside_slots_active",
        "fireside_time_to_first_token_seconds_bucket",
        "fireside_decode_sequences_max",
    ):
        assert f"\n{name}" in "\n" + text, name
    assert "# TYPE fireside_time_to_first_token_seconds histogram" in text


def test_chat_page_is_served(server: LiveServer) -> None:
    page = httpx.get(server.url + "/", timeout=30)
    assert page.status_code == 200
    assert "<html" in page.text.lower()
    script = httpx.get(server.url + "/static/app.js", timeout=30)
    assert script.status_code == 200


def test_every_documented_parameter_is_accepted(server: LiveServer) -> None:
    reply = server.client().chat.completions.create(
        model=server.model_id,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Name a fruit."}]},
        ],
        max_completion_tokens=5,
        temperature=0.7,
        top_p=0.9,
        presence_penalty=0.5,
        frequency_penalty=0.5,
        seed=7,
        stop=["\n\n"],
        n=1,
        logit_bias={"42": -100},
        user="tester",
        extra_body={"top_k": 20, "min_p": 0.1, "repeat_penalty": 1.1},
    )
    assert reply.usage is not None and 1 <= reply.usage.completion_tokens <= 5


def test_max_completion_tokens_limits_the_reply(server: LiveServer) -> None:
    reply = server.client().chat.completions.create(
        model=server.model_id,
        messages=[{"role": "user", "content": "Write a long story about a dragon."}],
        max_completion_tokens=3,
        temperature=0,
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 3
