"""plan_chat and the reply reader: real templates from the pinned llama.cpp tree, replies
in each template's own formats, streamed in every cut and read whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fireside.chat.reply import ChatReply, plan_chat
from fireside.chat.templates import ChatTemplate
from fireside.chat.tool_calls import merge_deltas
from fireside.errors import ToolError

TEMPLATES = Path(__file__).resolve().parents[2] / "vendor" / "llama.cpp" / "models" / "templates"
USER = [{"role": "user", "content": "Weather in Paris?"}]


def get_weather(city: str, days: int = 1) -> str:
    """The weather forecast for a city.

    Args:
        city: The city.
        days: How many days ahead.
    """
    return f"sunny in {city} for {days} days"


def _template(name: str) -> ChatTemplate:
    path = TEMPLATES / f"{name}.jinja"
    if not path.is_file():
        pytest.fail(f"the pinned llama.cpp tree has no {path}")
    return ChatTemplate(path.read_text("utf-8"), name=name)


@pytest.fixture(scope="module")
def qwen25() -> ChatTemplate:
    return _template("Qwen-Qwen2.5-7B-Instruct")


@pytest.fixture(scope="module")
def qwen3() -> ChatTemplate:
    return _template("Qwen-Qwen3-0.6B")


@pytest.fixture(scope="module")
def r1() -> ChatTemplate:
    return _template("deepseek-ai-DeepSeek-R1-Distill-Llama-8B")


def _streamed(plan, text: str, step: int) -> tuple[ChatReply, str, str, list]:
    reader = plan.reader()
    deltas = [reader.feed(text[i : i + step]) for i in range(0, len(text), step)]
    deltas.append(reader.finish())
    calls = merge_deltas([c for d in deltas for c in d.tool_calls])
    content = "".join(d.content for d in deltas)
    reasoning = "".join(d.reasoning for d in deltas)
    return reader.reply, content, reasoning, calls


CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


def test_tools_are_rendered_by_the_template(qwen25: ChatTemplate) -> None:
    plan = plan_chat(qwen25, USER, tools=[get_weather])
    assert "get_weather" in plan.text and "<tools>" in plan.text
    assert plan.family == "hermes"
    assert plan.grammar is None  # auto: the model chooses
    assert plan.tool_choice.mode == "auto"
    assert plan.tools[0]["function"]["parameters"]["required"] == ["city"]


@pytest.mark.parametrize("step", [1, 2, 5, 1000])
def test_a_call_is_parsed_streamed_and_whole(qwen25: ChatTemplate, step: int) -> None:
    plan = plan_chat(qwen25, USER, tools=[get_weather])
    text = "Let me check.\n" + CALL
    reply, content, reasoning, calls = _streamed(plan, text, step)
    assert reply.content == content == "Let me check."
    assert reply.reasoning is None and reasoning == ""
    assert len(reply.tool_calls) == 1
    call = reply.tool_calls[0]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert calls == reply.tool_calls
    assert reply.finish_reason("eos") == "tool_calls"
    assert reply.finish_reason("length") == "length"
    whole = plan.parse(text)
    assert whole.content == reply.content
    assert [c["function"] for c in whole.tool_calls] == [c["function"] for c in reply.tool_calls]


def test_plain_answers_and_none_are_left_alone(qwen25: ChatTemplate) -> None:
    plan = plan_chat(qwen25, USER, tools=[get_weather])
    assert plan.parse("It is sunny.") == ChatReply("It is sunny.")
    assert plan.parse("It is sunny.").finish_reason("eos") == "stop"
    # tool_choice="none": call markup stays content
    none = plan_chat(qwen25, USER, tools=[get_weather], tool_choice="none")
    assert none.grammar is None and not none.parses_calls
    assert none.parse(CALL).content == CALL
    # a call to a function not in tools is not a call
    assert plan.parse(CALL.replace("get_weather", "launch")).tool_calls == []


def test_parallel_tool_calls_false_keeps_one_call(qwen25: ChatTemplate) -> None:
    two = CALL + "\n" + CALL.replace("Paris", "Rome")
    assert len(plan_chat(qwen25, USER, tools=[get_weather]).parse(two).tool_calls) == 2
    one = plan_chat(qwen25, USER, tools=[get_weather], parallel_tool_calls=False)
    assert len(one.parse(two).tool_calls) == 1
    assert "{0,3}" not in (
        plan_chat(
            qwen25, USER, tools=[get_weather], tool_choice="required", parallel_tool_calls=False
        ).grammar
        or "{0,3}"
    )


def test_forced_calls_have_a_grammar(qwen25: ChatTemplate) -> None:
    required = plan_chat(qwen25, USER, tools=[get_weather], tool_choice="required")
    assert required.grammar is not None and "<tool_call>" in required.grammar
    named = plan_chat(
        qwen25,
        USER,
        tools=[get_weather, {"type": "function", "function": {"name": "other"}}],
        tool_choice={"type": "function", "function": {"name": "other"}},
    )
    assert named.grammar is not None
    assert '\\"other\\"' in named.grammar and "get_weather" not in named.grammar


def test_a_conversation_with_calls_and_results_renders(qwen25: ChatTemplate) -> None:
    reply = plan_chat(qwen25, USER, tools=[get_weather]).parse(CALL)
    call_id = reply.tool_calls[0]["id"]
    messages = [
        *USER,
        reply.message(),
        {"role": "tool", "tool_call_id": call_id, "content": "21 C"},
    ]
    assert reply.message()["content"] is None
    plan = plan_chat(qwen25, messages, tools=[get_weather], tool_choice="none")
    assert "21 C" in plan.text and '"city": "Paris"' in plan.text
    assert plan.messages[-1]["name"] == "get_weather"


def test_bad_input_names_what_is_wrong(qwen25: ChatTemplate) -> None:
    bad_schema = {
        "type": "function",
        "function": {"name": "f", "parameters": {"type": "object", "properties": 3}},
    }
    with pytest.raises(ToolError, match="not a valid JSON Schema"):
        plan_chat(qwen25, USER, tools=[bad_schema])
    orphan = [*USER, {"role": "tool", "tool_call_id": "call_nothing", "content": "x"}]
    with pytest.raises(ToolError, match="'call_nothing' matches no earlier tool call"):
        plan_chat(qwen25, orphan, tools=[get_weather])
    with pytest.raises(ToolError, match="cannot render tools"):
        plan_chat(_template("google-gemma-2-2b-it"), USER, tools=[get_weather])
    with pytest.raises(ToolError, match="not in tools"):
        plan_chat(
            qwen25,
            USER,
            tools=[get_weather],
            tool_choice={"type": "function", "function": {"name": "nope"}},
        )
    with pytest.raises(ValueError, match="reasoning_format"):
        plan_chat(qwen25, USER, reasoning_format="raw")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no enable_thinking switch"):
        plan_chat(qwen25, USER, think=False)
    with pytest.raises(ValueError, match="reasoning_effort must be one of"):
        plan_chat(qwen25, USER, reasoning_effort="extreme")


THOUGHT = "<think>\nThe user wants the weather.\n</think>\n\nIt is sunny."


@pytest.mark.parametrize("step", [1, 3, 7, 1000])
def test_reasoning_never_reaches_content(qwen3: ChatTemplate, step: int) -> None:
    plan = plan_chat(qwen3, USER)
    assert plan.markers is not None and not plan.thinking_started
    reply, content, reasoning, _ = _streamed(plan, THOUGHT, step)
    assert reply.reasoning == reasoning == "The user wants the weather."
    assert reply.content == content == "It is sunny."
    assert reply.message()["reasoning_content"] == "The user wants the weather."
    raw = plan_chat(qwen3, USER, reasoning_format="none")
    assert raw.parse(THOUGHT) == ChatReply(THOUGHT)


def test_reasoning_and_a_call(qwen3: ChatTemplate) -> None:
    plan = plan_chat(qwen3, USER, tools=[get_weather])
    reply, content, reasoning, calls = _streamed(plan, "<think>\nneed data\n</think>\n" + CALL, 4)
    assert reply.reasoning == reasoning == "need data"
    assert reply.content == content == ""
    assert [c["function"]["name"] for c in calls] == ["get_weather"]


def test_the_thinking_switch(qwen3: ChatTemplate) -> None:
    off = plan_chat(qwen3, USER, think=False)
    assert off.text.endswith("<think>\n\n</think>\n\n")
    assert plan_chat(qwen3, USER, reasoning_effort="none").text == off.text
    on = plan_chat(qwen3, USER, think=True)
    assert not on.text.rstrip().endswith("</think>")


@pytest.mark.parametrize("step", [1, 4, 1000])
def test_a_prompt_that_opens_the_thinking_block(r1: ChatTemplate, step: int) -> None:
    plan = plan_chat(r1, USER)
    assert plan.thinking_started
    reply, content, reasoning, _ = _streamed(plan, "Let me think.\n</think>\n\nSunny.", step)
    assert reply.reasoning == reasoning == "Let me think."
    assert reply.content == content == "Sunny."
    # it always thinks: think=True is fine, think=False cannot be done
    assert plan_chat(r1, USER, think=True).text == plan.text
    with pytest.raises(ValueError, match="cannot be turned off"):
        plan_chat(r1, USER, think=False)


def test_a_forced_call_after_an_opened_thinking_block_closes_it() -> None:
    template = _template("llama-cpp-deepseek-r1")
    plan = plan_chat(template, USER, tools=[get_weather], tool_choice="required")
    assert plan.thinking_started and plan.grammar is not None
    assert plan.grammar.startswith('root ::= "</think>\\n\\n" (')
    assert plan.family == "generic"
    call = {"name": "get_weather", "arguments": {"city": "Oslo"}}
    reply = plan.parse("</think>\n\n" + json.dumps([call]))
    assert reply.reasoning == "" and reply.content == ""
    assert [c["function"]["arguments"] for c in reply.tool_calls] == ['{"city": "Oslo"}']


# One template per thinking-marker family in the pinned tree, and its markers.
THINKING = {
    "Qwen-Qwen3-0.6B": ("<think>", "</think>"),
    "deepseek-ai-DeepSeek-R1-Distill-Llama-8B": ("<think>", "</think>"),
    "ByteDance-Seed-OSS": ("<seed:think>", "</seed:think>"),
    "MiniMax-M3": ("<mm:think>", "</mm:think>"),
    "Cohere2MoE": ("<|START_THINKING|>", "<|END_THINKING|>"),
    "mistralai-Ministral-3-14B-Reasoning-2512": ("[THINK]", "[/THINK]"),
    "google-gemma-4-31B-it": ("<|channel>thought", "<channel|>"),
}


@pytest.mark.parametrize("name", sorted(THINKING))
@pytest.mark.parametrize("step", [1, 3, 1000])
def test_each_thinking_family_keeps_reasoning_out_of_content(name: str, step: int) -> None:
    start, end = THINKING[name]
    plan = plan_chat(_template(name), USER)
    assert plan.markers is not None and (plan.markers.start, plan.markers.end) == (start, end)
    text = ("" if plan.thinking_started else start) + "\nweighing it up\n" + end + "\n\nIt is."
    reply, content, reasoning, _ = _streamed(plan, text, step)
    assert reply.reasoning == reasoning == "weighing it up"
    assert reply.content == content == "It is."
    assert start not in content and end not in content


@pytest.mark.parametrize("stream_calls", [False, True])
def test_a_forced_reply_cut_short_leaves_no_call_text_as_content(
    qwen25: ChatTemplate, stream_calls: bool
) -> None:
    """max_tokens may cut a forced reply inside its next call: that text is not an answer."""
    plan = plan_chat(qwen25, USER, tools=[get_weather], tool_choice="required")
    cut = CALL + '\n<tool_call>\n{"name": "get_we'
    for end in range(len(cut) + 1):
        reader = plan.reader(stream_calls=stream_calls)
        deltas = [reader.feed(ch) for ch in cut[:end]] + [reader.finish()]
        assert reader.reply is not None
        assert reader.reply.content == "" and all(not d.content for d in deltas), end
        calls = merge_deltas([c for d in deltas for c in d.tool_calls])
        assert calls == reader.reply.tool_calls
        expected = 1 if end >= CALL.index("}}") + 2 else 0  # its JSON is whole
        if stream_calls and end >= CALL.index('"arguments": {') + len('"arguments": {'):
            expected = 1  # begun in the stream: kept with what was sent
        assert len(calls) == expected, end
    auto = plan_chat(qwen25, USER, tools=[get_weather])  # not forced: the text stays
    assert auto.parse(cut[: len(CALL) - 20]).content == cut[: len(CALL) - 20]
