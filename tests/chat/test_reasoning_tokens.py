"""The reply reader counts the generated tokens that fell inside the thinking block (its
markers included), whatever way the markers are cut into tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
from fireside.chat.reply import plan_chat
from fireside.chat.templates import ChatTemplate

TEMPLATES = Path(__file__).resolve().parents[2] / "vendor" / "llama.cpp" / "models" / "templates"
ASK = [{"role": "user", "content": "Name a color."}]


def _plan(name: str, **options):
    source = (TEMPLATES / f"{name}.jinja").read_text("utf-8")
    return plan_chat(ChatTemplate(source, name=name), ASK, **options)


def _count(plan, tokens: list[str]) -> int:
    reader = plan.reader()
    for token in tokens:
        reader.feed(token, 1)
    reader.finish()
    assert reader.reply is not None
    return reader.reply.reasoning_tokens


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        (["\n", "<", "think", ">", "Hm", ", red", ".", "</", "think", ">", "\n\n", "Red", "."], 10),
        (["<think>", "Hm", "</think>", "Red"], 3),
        (["<think>", "Hm", "</think>Red", "."], 3),  # the token that closes it counts
        ([" ", "<thi", "nk>", "Hm"], 4),  # never closed: all of it
        (["Red", " <think>", "no"], 0),  # a marker inside the answer is not a block
        ([" ", "", "Red"], 0),
    ],
)
def test_tokens_inside_a_block_the_model_opens(tokens, expected) -> None:
    plan = _plan("Qwen-Qwen3-0.6B", think=True)
    assert not plan.thinking_started
    assert _count(plan, tokens) == expected


def test_a_block_the_prompt_opened() -> None:
    plan = _plan("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", think=True)
    assert plan.thinking_started
    assert _count(plan, ["\n", "So", " red", "</think>", "\n\n", "Red"]) == 4
    assert _count(plan, ["", "\n", "", "So"]) == 4  # empty pieces: tokens that began a character
    off = _plan("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", think=False)
    assert _count(off, ["Red", "."]) == 0


def test_several_tokens_in_one_piece() -> None:
    plan = _plan("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", think=True)
    reader = plan.reader()
    reader.feed("So red</th", 5)
    reader.feed("ink>\n\nRed", 3)
    reader.feed(".", 1)
    reader.finish()
    assert reader.reply is not None and reader.reply.reasoning_tokens == 8
