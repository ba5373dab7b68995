"""A reasoning model's thinking through every API shape of a live server, end to end.

The server runs DeepSeek-R1-Distill's chat template from the pinned llama.cpp: with
thinking on (its ``enable_thinking`` switch) the generation prompt opens ``<think>``, so
everything the model writes up to ``</think>`` is reasoning. SmolLM2 never writes
``</think>`` by itself, so where the tests need both parts they make the model write it
through the HTTP API's own structured output (``response_format`` / ``text.format`` /
Ollama's ``format``: a JSON string whose ``pattern`` contains ``</think>``); the grammar
shapes the text, the server's reply reader splits it. Without that constraint the block
never closes and the whole reply is reasoning, which the tests check too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import ollama
import openai
import pytest
from fireside.server import create_app

from .conftest import LiveServer, serve

TEMPLATES = Path(__file__).resolve().parents[2] / "vendor" / "llama.cpp" / "models" / "templates"
PATTERN = "^[a-z ]{8,40}</think>[A-Za-z ]{8,40}$"
SCHEMA = {"type": "string", "pattern": PATTERN}
RESPONSE_FORMAT = {"type": "json_schema", "json_schema": {"name": "thought", "schema": SCHEMA}}
QUESTION = [{"role": "user", "content": "Name a color."}]


@pytest.fixture(scope="module")
def live(model_path: Path) -> Iterator[LiveServer]:
    source = TEMPLATES / "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja"
    app = create_app(
        model_path,
        parallel=2,
        ctx_size=2048,
        n_threads=1,
        max_queue=16,
        chat_template=str(source),  # a .jinja path, as `fireside serve --chat-template FILE`
    )
    with serve(app) as server:
        yield server


def chat(live: LiveServer, **extra: Any) -> Any:
    body: dict[str, Any] = {"model": live.model_id, "messages": QUESTION, "temperature": 0}
    body.update(extra)
    return live.client().chat.completions.create(**body)


def split_raw(raw: str) -> tuple[str, str]:
    """What the reader should make of the raw text: (reasoning, content)."""
    reasoning, _, content = raw.partition("</think>")
    return reasoning.strip(), content.lstrip()


def test_reasoning_content_is_apart_from_content(live: LiveServer) -> None:
    raw = chat(
        live,
        max_tokens=64,
        response_format=RESPONSE_FORMAT,
        extra_body={"think": True, "reasoning_format": "none"},
    )
    text = raw.choices[0].message.content
    assert "</think>" in text  # the model wrote the marker (the grammar made it)
    assert raw.choices[0].message.model_extra.get("reasoning_content") is None
    reply = chat(live, max_tokens=64, response_format=RESPONSE_FORMAT, extra_body={"think": True})
    message = reply.choices[0].message
    reasoning, content = split_raw(text)
    assert message.model_extra["reasoning_content"] == reasoning
    assert message.content == content
    assert "</think>" not in message.content and "</think>" not in reasoning
    assert reply.usage.completion_tokens == raw.usage.completion_tokens


def test_streamed_reasoning_deltas_come_first_and_add_up(live: LiveServer) -> None:
    options: dict[str, Any] = {
        "max_tokens": 64,
        "response_format": RESPONSE_FORMAT,
        "extra_body": {"think": True},
    }
    whole = chat(live, **options).choices[0].message
    reasoning: list[str] = []
    content: list[str] = []
    for chunk in chat(live, stream=True, **options):
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        thought = (delta.model_extra or {}).get("reasoning_content")
        if thought:
            assert not content, "reasoning arrived after the answer had begun"
            reasoning.append(thought)
        if delta.content:
            content.append(delta.content)
    assert len(reasoning) > 1  # streamed in pieces, not held to the end
    assert "".join(reasoning) == whole.model_extra["reasoning_content"]
    assert "".join(content) == whole.content


def test_an_unclosed_block_is_all_reasoning(live: LiveServer) -> None:
    reply = chat(live, max_tokens=12, extra_body={"think": True})
    message = reply.choices[0].message
    assert reply.choices[0].finish_reason == "length"
    assert message.model_extra["reasoning_content"]
    assert message.content == ""


def test_reasoning_tokens_are_the_tokens_inside_the_block(live: LiveServer) -> None:
    options: dict[str, Any] = {
        "max_tokens": 64,
        "response_format": RESPONSE_FORMAT,
        "extra_body": {"think": True},
    }
    reply = chat(live, logprobs=True, **options)
    texts = [t.token for t in reply.choices[0].logprobs.content]  # every generated token
    assert len(texts) == reply.usage.completion_tokens
    so_far = ""
    for n, text in enumerate(texts, 1):  # up to the token that completes </think>
        so_far += text
        if "</think>" in so_far:
            break
    assert 0 < n < len(texts)  # some answer came after the block
    assert reply.usage.completion_tokens_details.reasoning_tokens == n
    usage = [
        c.usage
        for c in chat(live, stream=True, stream_options={"include_usage": True}, **options)
        if c.usage
    ]
    assert usage[-1].completion_tokens_details.reasoning_tokens == n
    responses = live.client().responses.create(
        model=live.model_id,
        input="Name a color.",
        reasoning={"effort": "high"},
        text={"format": {"type": "json_schema", "name": "thought", "schema": SCHEMA}},
        max_output_tokens=64,
        temperature=0,
    )
    assert responses.usage.output_tokens_details.reasoning_tokens == n
    cut = chat(live, max_tokens=12, extra_body={"think": True})  # never closed: all of it
    assert cut.usage.completion_tokens_details.reasoning_tokens == 12
    off = chat(live, max_tokens=8)
    assert off.usage.completion_tokens_details.reasoning_tokens == 0


def test_thinking_switches(live: LiveServer) -> None:
    off = chat(live, max_tokens=8)  # this template thinks only when asked
    assert off.choices[0].message.model_extra.get("reasoning_content") is None
    assert off.choices[0].message.content
    on = chat(live, max_tokens=8, extra_body={"think": True})
    high = chat(live, max_tokens=8, reasoning_effort="high")
    none = chat(live, max_tokens=8, reasoning_effort="none")
    assert high.usage.prompt_tokens == on.usage.prompt_tokens
    assert high.choices[0].message.model_extra == on.choices[0].message.model_extra
    assert none.choices[0].message.content == off.choices[0].message.content
    assert none.usage.prompt_tokens == off.usage.prompt_tokens
    # llama-server's and vLLM's way: the template's own variable
    kwargs = chat(
        live, max_tokens=8, extra_body={"chat_template_kwargs": {"enable_thinking": True}}
    )
    assert kwargs.usage.prompt_tokens == on.usage.prompt_tokens
    assert kwargs.choices[0].message.model_extra == on.choices[0].message.model_extra
    with pytest.raises(openai.BadRequestError) as info:
        chat(live, max_tokens=8, extra_body={"chat_template_kwargs": {"messages": []}})
    assert info.value.body["param"] == "chat_template_kwargs"  # type: ignore[index]
    assert "set by the server" in info.value.body["message"]  # type: ignore[index]


def test_responses_reasoning_item(live: LiveServer) -> None:
    body: dict[str, Any] = {
        "model": live.model_id,
        "input": "Name a color.",
        "reasoning": {"effort": "high"},
        "text": {"format": {"type": "json_schema", "name": "thought", "schema": SCHEMA}},
        "max_output_tokens": 64,
        "temperature": 0,
    }
    expected = chat(live, max_tokens=64, response_format=RESPONSE_FORMAT, reasoning_effort="high")
    message = expected.choices[0].message
    reply = live.client().responses.create(**body)
    assert [item.type for item in reply.output] == ["reasoning", "message"]
    thinking = reply.output[0]
    assert thinking.content[0].text == message.model_extra["reasoning_content"]  # type: ignore[union-attr,index]
    assert reply.output_text == message.content
    events = list(live.client().responses.create(**body, stream=True))
    pieces = [e.delta for e in events if e.type == "response.reasoning_text.delta"]  # type: ignore[union-attr]
    assert "".join(pieces) == message.model_extra["reasoning_content"]
    final = events[-1].response  # type: ignore[union-attr]
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output_text == reply.output_text
    # the reasoning of a stored response goes back with the chain
    follow = live.client().responses.create(
        model=live.model_id,
        input="And another?",
        previous_response_id=reply.id,
        max_output_tokens=4,
        temperature=0,
    )
    assert follow.status in ("completed", "incomplete")


def test_anthropic_thinking_block(live: LiveServer) -> None:
    expected = chat(live, max_tokens=16, extra_body={"think": True}).choices[0].message
    claude = anthropic.Anthropic(base_url=live.url, api_key="unused", max_retries=0, timeout=120)
    body: dict[str, Any] = {
        "model": live.model_id,
        "max_tokens": 1040,
        "messages": QUESTION,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "stop_sequences": [":"],
        "extra_body": {"temperature": 0},
    }
    # the block never closes here (no grammar on this API): all of it is thinking, cut by
    # the stop sequence; compare with chat completions' reasoning for the same tokens
    reply = claude.messages.create(**body)
    assert reply.content[0].type == "thinking"
    thought = reply.content[0].thinking  # type: ignore[union-attr]
    assert thought and expected.model_extra["reasoning_content"].startswith(thought)
    with claude.messages.stream(**body) as stream:
        kinds = [event.type for event in stream]
        streamed = stream.get_final_message()
    assert "thinking" in kinds  # the SDK's event for a thinking_delta
    assert streamed.content[0].type == "thinking"
    assert streamed.content[0].thinking == thought  # type: ignore[union-attr]
    counted = claude.messages.count_tokens(
        model=live.model_id, messages=QUESTION, thinking={"type": "enabled", "budget_tokens": 1024}
    )
    assert counted.input_tokens == reply.usage.input_tokens


def test_ollama_think_and_thinking(live: LiveServer) -> None:
    client = ollama.Client(host=live.url, timeout=120)
    expected = chat(
        live, max_tokens=64, response_format=RESPONSE_FORMAT, extra_body={"think": True}
    )
    message = expected.choices[0].message
    reply = client.chat(
        model=live.model_id,
        messages=QUESTION,
        think=True,
        format=SCHEMA,
        options={"temperature": 0, "num_predict": 64},
        stream=False,
    )
    assert reply.message.thinking == message.model_extra["reasoning_content"]
    assert reply.message.content == message.content
    parts = list(
        client.chat(
            model=live.model_id,
            messages=QUESTION,
            think=True,
            format=SCHEMA,
            options={"temperature": 0, "num_predict": 64},
            stream=True,
        )
    )
    assert "".join(p.message.thinking or "" for p in parts) == reply.message.thinking
    assert "".join(p.message.content or "" for p in parts) == reply.message.content
    off = client.chat(
        model=live.model_id,
        messages=QUESTION,
        think=False,
        options={"temperature": 0, "num_predict": 4},
    )
    assert off.message.thinking is None
    # the thinking of an earlier turn goes back as the assistant's reasoning
    again = client.chat(
        model=live.model_id,
        messages=[*QUESTION, reply.message, {"role": "user", "content": "Another?"}],
        options={"temperature": 0, "num_predict": 4},
    )
    assert json.loads(again.model_dump_json())["done"] is True
    capabilities = client.show(live.model_id).capabilities or []
    assert "thinking" in capabilities and "tools" not in capabilities


def test_ollama_generate_think_and_thinking(live: LiveServer) -> None:
    """/api/generate with think reads the reply as /api/chat does: thinking apart."""
    client = ollama.Client(host=live.url, timeout=120)
    options = {"temperature": 0, "num_predict": 64}
    chat_reply = client.chat(
        model=live.model_id, messages=QUESTION, think=True, format=SCHEMA, options=options
    )
    prompt = QUESTION[0]["content"]
    reply = client.generate(
        model=live.model_id, prompt=prompt, think=True, format=SCHEMA, options=options
    )
    assert reply.thinking and reply.thinking == chat_reply.message.thinking
    assert reply.response == chat_reply.message.content
    assert "</think>" not in reply.response + reply.thinking
    parts = list(
        client.generate(
            model=live.model_id,
            prompt=prompt,
            think=True,
            format=SCHEMA,
            options=options,
            stream=True,
        )
    )
    assert sum(1 for p in parts if p.thinking) > 1  # streamed in pieces
    assert "".join(p.thinking or "" for p in parts) == reply.thinking
    assert "".join(p.response for p in parts) == reply.response
    assert parts[-1].done and parts[-1].eval_count == reply.eval_count
    off = client.generate(model=live.model_id, prompt=prompt, think=False, options=options)
    assert off.thinking is None and off.response
    effort = client.generate(model=live.model_id, prompt=prompt, think="high", options=options)
    assert effort.thinking  # the block opened by the prompt never closes here
    with pytest.raises(ollama.ResponseError) as caught:
        client.generate(model=live.model_id, prompt="<think>", raw=True, think=True)
    assert caught.value.status_code == 400 and "raw" in caught.value.error
