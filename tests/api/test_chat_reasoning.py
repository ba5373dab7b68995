"""Reasoning split from the answer on the real generation path: the test model does not
think by itself, so a grammar (the ordinary ``grammar=`` sampling option) makes it write
a thinking block in the shape each template family uses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fireside import Model

TEMPLATES = Path(__file__).resolve().parents[2] / "vendor" / "llama.cpp" / "models" / "templates"
QWEN3 = TEMPLATES / "Qwen-Qwen3-0.6B.jinja"
R1 = TEMPLATES / "deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja"
THINKS = 'root ::= "<think>" [a-z] [a-z ]{0,19} "</think>" [a-z] [a-z ]{0,19}'
# DeepSeek-R1's prompt opens the block itself: the reply starts inside it
CLOSES = 'root ::= [a-z] [a-z ]{0,19} "</think>" [a-z] [a-z ]{0,19}'
ASK = [{"role": "user", "content": "Is the sky blue?"}]


def _template(path: Path) -> str:
    if not path.is_file():
        pytest.fail(f"the pinned llama.cpp tree has no {path}")
    return str(path)


@pytest.fixture(scope="module")
def qwen3(model_path: Path) -> Iterator[Model]:
    with Model(model_path, n_ctx=512, n_threads=1, chat_template=_template(QWEN3)) as m:
        yield m


@pytest.fixture(scope="module")
def r1(model_path: Path) -> Iterator[Model]:
    with Model(model_path, n_ctx=512, n_threads=1, chat_template=_template(R1)) as m:
        yield m


def _raw(model: Model, grammar: str, seed: int) -> str:
    """What the model writes for this grammar, without the chat layer reading it."""
    prompt = model.apply_chat_template(ASK, tokenize=True)
    return model.generate(prompt, grammar=grammar, seed=seed, max_tokens=48).text


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_think_text_is_reasoning_not_content(qwen3: Model, seed: int) -> None:
    raw = _raw(qwen3, THINKS, seed)
    thought, _, answer = raw.removeprefix("<think>").partition("</think>")
    assert thought.strip()  # the grammar made the model think
    reply = qwen3.chat(ASK, grammar=THINKS, seed=seed, max_tokens=48)
    message = reply["choices"][0]["message"]
    assert message["reasoning_content"] == thought.strip()
    assert message["content"] == answer.lstrip()
    assert "<think>" not in message["content"] and "</think>" not in message["content"]

    chunks = list(qwen3.chat(ASK, grammar=THINKS, seed=seed, max_tokens=48, stream=True))
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == thought.strip()
    assert "".join(d.get("content", "") for d in deltas) == answer.lstrip()
    assert all("think>" not in d.get("content", "") for d in deltas)


def test_reasoning_format_none_keeps_the_text(qwen3: Model) -> None:
    raw = _raw(qwen3, THINKS, 4)
    reply = qwen3.chat(ASK, grammar=THINKS, seed=4, max_tokens=48, reasoning_format="none")
    message = reply["choices"][0]["message"]
    assert message["content"] == raw and "reasoning_content" not in message


def test_a_session_keeps_reasoning_out_of_the_answer(qwen3: Model) -> None:
    session = qwen3.chat_session()
    stream = session.send("Is the sky blue?", grammar=THINKS, seed=5, max_tokens=48, stream=True)
    answer = "".join(stream)  # iterating gives the answer only
    result = stream.result
    assert result is not None and result.reasoning
    assert result.text == answer and "think>" not in answer
    assert session.history[-1]["content"] == answer
    assert session.history[-1]["reasoning_content"] == result.reasoning
    again = qwen3.chat_session().send("Is the sky blue?", grammar=THINKS, seed=5, max_tokens=48)
    assert (again.text, again.reasoning) == (result.text, result.reasoning)


def test_the_thinking_switch(qwen3: Model) -> None:
    off = qwen3.apply_chat_template(ASK, think=False)
    assert isinstance(off, str) and off.endswith("<think>\n\n</think>\n\n")
    reply = qwen3.chat(ASK, think=False, max_tokens=8, temperature=0)
    assert "reasoning_content" not in reply["choices"][0]["message"]
    with pytest.raises(ValueError, match="reasoning_effort must be one of"):
        qwen3.chat(ASK, reasoning_effort="max")


@pytest.mark.parametrize("seed", [0, 1])
def test_a_prompt_that_opens_the_block(r1: Model, seed: int) -> None:
    prompt = r1.apply_chat_template(ASK)
    assert isinstance(prompt, str) and prompt.endswith("<think>\n")
    raw = _raw(r1, CLOSES, seed)
    thought, _, answer = raw.partition("</think>")
    reply = r1.chat(ASK, grammar=CLOSES, seed=seed, max_tokens=48)
    message = reply["choices"][0]["message"]
    assert message["reasoning_content"] == thought.strip()
    assert message["content"] == answer.lstrip()
    chunks = list(r1.chat(ASK, grammar=CLOSES, seed=seed, max_tokens=48, stream=True))
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == thought.strip()
    assert "".join(d.get("content", "") for d in deltas) == answer.lstrip()
    with pytest.raises(ValueError, match="thinking cannot be turned off"):
        r1.chat(ASK, think=False)
