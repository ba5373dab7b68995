"""Model.chat: OpenAI-shaped completions and chunk streams; message validation."""

from __future__ import annotations

from typing import Any

import pytest
from fireside.chat.session import validate_messages
from fireside.model import Model

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"},
]


def test_chat_completion_shape(model: Model) -> None:
    reply = model.chat(MESSAGES, max_tokens=40, temperature=0)
    assert reply["object"] == "chat.completion"
    assert reply["id"].startswith("chatcmpl-")
    assert isinstance(reply["created"], int)
    assert reply["model"] == model.name
    (choice,) = reply["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert "Paris" in choice["message"]["content"]
    assert choice["finish_reason"] == "stop"  # end of turn maps to OpenAI's "stop"
    usage = reply["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    expected_prompt = model.tokenize_rendered(model.chat_template.render(MESSAGES))
    assert usage["prompt_tokens"] == len(expected_prompt)


def test_chat_stream_chunks(model: Model) -> None:
    whole = model.chat(MESSAGES, max_tokens=40, temperature=0)
    chunks = list(model.chat(MESSAGES, max_tokens=40, temperature=0, stream=True))
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == whole["choices"][0]["message"]["content"]
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["usage"] == whole["usage"]


def test_chat_length_and_logprobs(model: Model) -> None:
    reply = model.chat(MESSAGES, max_tokens=3, temperature=0, logprobs=2)
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "length"
    content = choice["logprobs"]["content"]
    assert len(content) == 3
    assert all(len(item["top_logprobs"]) == 2 for item in content)
    assert "".join(item["token"] for item in content) == choice["message"]["content"]


def test_chat_accepts_text_parts(model: Model) -> None:
    parts = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is the capital "},
                {"type": "text", "text": "of France?"},
            ],
        }
    ]
    plain = [{"role": "user", "content": "What is the capital of France?"}]
    a = model.chat(parts, max_tokens=8, temperature=0)
    b = model.chat(plain, max_tokens=8, temperature=0)
    assert a["choices"][0]["message"] == b["choices"][0]["message"]


@pytest.mark.parametrize(
    ("messages", "error", "message"),
    [
        ("hello", TypeError, "messages must be a list"),
        ([], ValueError, "messages is empty"),
        (["hello"], TypeError, r"messages\[0\] must be a dict"),
        ([{"role": "robot", "content": "x"}], ValueError, r"messages\[0\] has role 'robot'"),
        ([{"content": "x"}], ValueError, r"messages\[0\] has role None"),
        (
            [{"role": "user", "content": "ok"}, {"role": "user"}],
            ValueError,
            r"messages\[1\] \(user\) has no 'content'",
        ),
        (
            [{"role": "user", "content": 42}],
            ValueError,
            r"messages\[0\] \(user\) content must be a string, got int",
        ),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
            ValueError,
            r"content\[0\] must be a \{'type': 'text'\} part",
        ),
    ],
)
def test_bad_messages(model: Model, messages: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        model.chat(messages)


def test_validate_messages_keeps_extra_keys() -> None:
    checked = validate_messages(
        [
            {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
            {"role": "tool", "content": "42", "tool_call_id": "1"},
        ]
    )
    assert checked[0]["tool_calls"] == [{"id": "1"}]
    assert checked[1]["tool_call_id"] == "1"


def test_bad_sampling_option_in_chat(model: Model) -> None:
    with pytest.raises(ValueError, match="top_p"):
        model.chat(MESSAGES, top_p=3)
    with pytest.raises(TypeError):
        model.chat(MESSAGES, not_an_option=1)
