"""ChatSession: history, KV reuse across turns, overflow, fork, reset, save/load."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fireside.chat.session import ChatSession
from fireside.errors import ContextLengthError
from fireside.generation.engine import CHUNK
from fireside.model import Model

SYSTEM = "You are a helpful assistant. Answer briefly."
QUESTIONS = [
    "What is the capital of France?",
    "And of Germany?",
    "Which one is bigger?",
    "Name a river in the first one.",
    "How long is it?",
    "Tell me a fun fact about it.",
    "What language do they speak there?",
    "Say hello in that language.",
    "Thanks! What is 2 + 2?",
    "Goodbye!",
]


@pytest.fixture(scope="module")
def model(model_path: Path) -> Iterator[Model]:
    with Model(model_path, n_ctx=2048, n_threads=1) as m:
        yield m


def test_history_records_each_exchange(model: Model) -> None:
    session = ChatSession(model, SYSTEM)
    assert session.history == [{"role": "system", "content": SYSTEM}]
    result = session.send(QUESTIONS[0], max_tokens=24, temperature=0)
    assert session.history == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": QUESTIONS[0]},
        {"role": "assistant", "content": result.text},
    ]
    assert session.last_result is result
    assert session.system_prompt == SYSTEM


def test_follow_up_turns_evaluate_only_new_tokens(model: Model) -> None:
    session = model.chat_session(SYSTEM)
    model.reset()
    for turn, question in enumerate(QUESTIONS):
        stream = session.send(question, max_tokens=16, temperature=0, stream=True)
        text = "".join(stream)
        assert stream.result is not None
        stats = model.stats
        new_tokens = model.count_tokens(question)
        print(
            f"turn {turn + 1}: prompt {stats.last_prompt_tokens} tokens, evaluated "
            f"{stats.last_prompt_tokens_evaluated}, reused {stats.last_prompt_tokens_reused}, "
            f"TTFT {stream.result.timings.time_to_first_token_ms:.0f} ms"
        )
        assert session.history[-1] == {"role": "assistant", "content": text}
        if turn == 0:
            assert stats.last_prompt_tokens_reused == 0
            continue
        # the question, the template's markers around two turns, the previous reply
        # (generated tokens are evaluated again, as a prompt) and up to a chunk before it
        # (reuse stops at a chunk boundary: fireside.generation.engine, "Determinism")
        limit = new_tokens + 16 + 16 + CHUNK
        assert stats.last_prompt_tokens_evaluated <= limit
        assert stats.last_prompt_tokens_reused >= stats.last_prompt_tokens - limit
    assert len(session.history) == 1 + 2 * len(QUESTIONS)


def test_streamed_reply_joins_history_when_it_ends(model: Model) -> None:
    session = model.chat_session(SYSTEM)
    stream = session.send(QUESTIONS[0], max_tokens=12, temperature=0, stream=True)
    assert len(session.history) == 1  # nothing yet
    text = "".join(stream)
    assert session.history[-1] == {"role": "assistant", "content": text}


def test_broken_off_reply_is_recorded_truncated(model: Model) -> None:
    session = model.chat_session(SYSTEM)
    full = session.fork().send(QUESTIONS[0], max_tokens=24, temperature=0).text
    stream = session.send(QUESTIONS[0], max_tokens=24, temperature=0, stream=True)
    first = next(stream)
    stream.close()
    assert stream.result is not None
    assert stream.result.finish_reason == "cancelled"
    assert session.history[-1] == {"role": "assistant", "content": first}
    assert full.startswith(first)


def test_history_is_settable_and_validated(model: Model) -> None:
    session = model.chat_session()
    seeded = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Nice to meet you, Ada!"},
    ]
    session.history = seeded
    assert session.history == seeded
    assert session.system_prompt == SYSTEM
    copy = session.history
    copy.append({"role": "user", "content": "not sent"})
    assert len(session.history) == 3  # history returns a copy
    with pytest.raises(ValueError, match=r"messages\[0\] has role 'bot'"):
        session.history = [{"role": "bot", "content": "x"}]
    with pytest.raises(TypeError, match="messages must be a list"):
        session.history = "hello"  # type: ignore[assignment]
    assert session.history == seeded
    with pytest.raises(TypeError, match="message must be a str"):
        session.send(["hello"])  # type: ignore[call-overload]


def test_reset_keeps_the_system_prompt(model: Model) -> None:
    session = model.chat_session(SYSTEM)
    session.send("Hi", max_tokens=4, temperature=0)
    session.reset()
    assert session.history == [{"role": "system", "content": SYSTEM}]
    assert session.last_result is None
    bare = model.chat_session()
    bare.send("Hi", max_tokens=4, temperature=0)
    bare.reset()
    assert bare.history == []


def test_fork_is_independent(model: Model) -> None:
    session = model.chat_session(SYSTEM)
    session.send(QUESTIONS[0], max_tokens=12, temperature=0)
    twin = session.fork()
    assert twin.history == session.history
    a = session.send("And of Italy?", max_tokens=12, temperature=0).text
    b = twin.send("And of Spain?", max_tokens=12, temperature=0).text
    assert session.history[-2]["content"] == "And of Italy?"
    assert twin.history[-2]["content"] == "And of Spain?"
    assert session.history[-1]["content"] == a
    assert twin.history[-1]["content"] == b
    assert len(session.history) == len(twin.history) == 5


def test_save_and_load_round_trip(model: Model, tmp_path: Path) -> None:
    session = model.chat_session(SYSTEM)
    session.send(QUESTIONS[0], max_tokens=12, temperature=0)
    session.send("And of Japan? 日本", max_tokens=12, temperature=0)
    path = tmp_path / "chat.json"
    session.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["messages"] == session.history
    restored = ChatSession.load(path, model)
    assert restored.history == session.history
    assert restored.overflow == session.overflow
    # both continue identically
    a = session.send(QUESTIONS[2], max_tokens=16, temperature=0)
    b = restored.send(QUESTIONS[2], max_tokens=16, temperature=0)
    assert a.text == b.text
    assert restored.history == session.history


def test_load_rejects_other_files(model: Model, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not a saved chat session"):
        ChatSession.load(bad, model)
    bad.write_text(json.dumps({"messages": []}), encoding="utf-8")
    with pytest.raises(ValueError, match="not a saved chat session"):
        ChatSession.load(bad, model)
    bad.write_text(
        json.dumps(
            {
                "format": "fireside.chat_session",
                "version": 1,
                "messages": [{"role": "x", "content": "y"}],
            }
        ),
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match="has role 'x'"):
        ChatSession.load(bad, model)


def test_overflow_drops_oldest_turns_and_warns(model_path: Path) -> None:
    with Model(model_path, n_ctx=256, n_threads=1) as small:
        session = small.chat_session(SYSTEM)
        long_turns = []
        for i in range(6):
            long_turns += [
                {"role": "user", "content": f"Question {i}: " + "tell me more " * 8},
                {"role": "assistant", "content": f"Answer {i}: " + "here is more " * 8},
            ]
        session.history = [{"role": "system", "content": SYSTEM}, *long_turns]
        with pytest.warns(UserWarning, match="dropped its .* oldest messages"):
            result = session.send("Last question?", max_tokens=8, temperature=0)
        history = session.history
        assert history[0] == {"role": "system", "content": SYSTEM}
        assert history[-2] == {"role": "user", "content": "Last question?"}
        assert history[-1]["content"] == result.text
        assert len(history) < 2 + len(long_turns)
        assert history[1]["role"] == "user"  # whole exchanges are dropped
        assert result.usage.prompt_tokens + 8 <= 256


def test_overflow_error(model_path: Path) -> None:
    with Model(model_path, n_ctx=256, n_threads=1) as small:
        session = small.chat_session(SYSTEM, overflow="error")
        session.history = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "tell me more " * 80},
            {"role": "assistant", "content": "ok"},
        ]
        with pytest.raises(ContextLengthError) as info:
            session.send("Next?", max_tokens=8)
        assert info.value.n_ctx == 256
        assert len(session.history) == 3  # unchanged
        huge = small.chat_session(SYSTEM)
        with pytest.raises(ContextLengthError, match="does not fit"):
            huge.send("tell me more " * 100, max_tokens=8)
    with pytest.raises(ValueError, match="overflow must be"):
        ChatSession(small, overflow="ignore")  # type: ignore[arg-type]


def test_custom_template(model: Model) -> None:
    session = model.chat_session(SYSTEM, chat_template="chatml")
    assert session.send("Hi", max_tokens=4, temperature=0).usage.completion_tokens >= 1
