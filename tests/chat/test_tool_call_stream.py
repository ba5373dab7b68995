"""Hermes/Qwen tool calls stream while they are written: the id and name first, then the
arguments in pieces; whatever the cut, the deltas add up to the finished result."""

from __future__ import annotations

import json

import pytest
from fireside.chat.json_echo import JsonEcho
from fireside.chat.tool_calls import ToolCallStream, merge_deltas, parse_tool_calls
from fireside.chat.tools import check_tools

TOOLS = check_tools(
    [
        {"type": "function", "function": {"name": "get_weather"}},
        {"type": "function", "function": {"name": "add"}},
    ]
)
WEATHER = '{"name": "get_weather", "arguments": {"city":"Par\\u00eds \\ud83d\\ude00", "days" : 2}}'
COMPLETE = [
    f"<tool_call>\n{WEATHER}\n</tool_call>",
    f"Let me look.<tool_call>{WEATHER}</tool_call>",
    f"<tool_call>\n{WEATHER}",  # the closing tag was a stop string
    (
        '<tool_call>{"name":"add","parameters":{"a":1.50,"b":[true,null,{}],"c":-2e3}}</tool_call>'
        f"\n<tool_call>{WEATHER}</tool_call>"
    ),
    # not streamed (another key first, an unknown name), or the call after such a one
    '<tool_call>{"arguments": {"a": 1}, "name": "add"}</tool_call>',
    (
        '<tool_call>{"name": "lookup", "arguments": {}}</tool_call>'
        '<tool_call>{"name": "add", "arguments": {"a": 1}}</tool_call>'
    ),
    '<tool_call>{"name": "add", "arguments": "{\\"a\\": 1}"}</tool_call>',
    "No call here, <tool_box> nor there.",
]
BROKEN = [
    f"<tool_call>\n{WEATHER}\nand then some more text",  # no closing tag
    '<tool_call>{"name": "add", "arguments": {"a": 1, "a": 2}}</tool_call>',  # repeated key
    '<tool_call>{"name": "add", "arguments": {"a": 1 2}}</tool_call>',  # bad JSON inside
]


def run(pieces: list[str], *, max_calls: int | None = None):
    stream = ToolCallStream(
        "hermes", tools=TOOLS, make_id=lambda: "id", max_calls=max_calls, stream_calls=True
    )
    content, deltas = "", []
    for piece in pieces:
        delta = stream.feed(piece)
        content += delta.content
        deltas.append(delta.tool_calls)
    last = stream.finish()
    return content + last.content, deltas + [last.tool_calls], stream.result


def calls_of(result) -> list[dict]:
    return [c.to_openai() for c in result.tool_calls]


def test_a_call_streams_its_name_then_its_arguments_in_pieces() -> None:
    text = COMPLETE[0]
    content, deltas, result = run(list(text))
    head = text.index('"arguments"')
    named = next(i for i, d in enumerate(deltas) if d)
    assert named < len(text) and text.index("get_weather") < named < head + len('"arguments": {')
    assert deltas[named] == [  # one delta per call and piece: the name, the first "{"
        {
            "index": 0,
            "id": "id",
            "type": "function",
            "function": {"name": "get_weather", "arguments": "{"},
        }
    ]
    fragments = [d for piece in deltas[named:] for d in piece][1:]
    assert len(fragments) > 5 and all(set(d) == {"index", "function"} for d in fragments)
    assert deltas[-1] == []  # nothing left for the end
    assert content == ""
    assert calls_of(result) == calls_of(
        parse_tool_calls(text, "hermes", tools=TOOLS, make_id=lambda: "id")
    )
    assert json.loads(result.tool_calls[0].arguments) == {"city": "París 😀", "days": 2}


@pytest.mark.parametrize("text", COMPLETE)
def test_cut_anywhere_the_stream_equals_the_one_shot_parse(text) -> None:
    whole = parse_tool_calls(text, "hermes", tools=TOOLS, make_id=lambda: "id")
    splits = [[text[:i], text[i:]] for i in range(len(text) + 1)] + [list(text)]
    for pieces in splits:
        content, deltas, result = run(pieces)
        assert result == whole, pieces
        assert content == whole.content
        assert merge_deltas(d for piece in deltas for d in piece) == calls_of(whole), pieces
        for piece in deltas:
            assert len({d["index"] for d in piece}) == len(piece)  # one delta per call


@pytest.mark.parametrize("text", COMPLETE + BROKEN)
def test_a_reply_cut_off_anywhere_adds_up_to_its_result(text) -> None:
    """max_tokens or a stop string may end the reply at any point: the deltas sent,
    streamed calls included, are exactly the result's calls and content."""
    for end in range(len(text) + 1):
        for pieces in ([text[:end]], list(text[:end])):
            content, deltas, result = run(pieces)
            assert content == result.content, (text[:end], pieces)
            merged = merge_deltas(d for piece in deltas for d in piece)
            assert merged == calls_of(result), text[:end]


def test_a_streamed_call_cut_off_keeps_what_was_sent() -> None:
    text = COMPLETE[1][: COMPLETE[1].index('"days"')]
    content, _, result = run(list(text))
    assert content == "Let me look."
    assert [(c.name, c.arguments) for c in result.tool_calls] == [
        ("get_weather", '{"city": "París 😀", ')
    ]


def test_one_call_when_parallel_calls_are_off() -> None:
    text = COMPLETE[3]
    _, deltas, _ = run(list(text), max_calls=1)
    assert {d["index"] for piece in deltas[:-1] for d in piece} == {0}


@pytest.mark.parametrize(
    "options",
    [{"make_id": str}, {"tools": TOOLS}, {"tools": TOOLS, "family": "llama3"}],
    ids=["no tools", "not asked", "not hermes"],
)
def test_otherwise_calls_come_whole(options) -> None:
    options = {"stream_calls": "tools" in options and "family" in options, **options}
    family = options.pop("family", "hermes")
    text = COMPLETE[0] if family == "hermes" else '{"name": "add", "parameters": {"a": 1}}'
    stream = ToolCallStream(family, **options)
    assert all(not stream.feed(ch).tool_calls for ch in text)
    assert len(stream.finish().tool_calls) == 1


def test_a_cut_call_without_streaming_stays_content() -> None:
    text = COMPLETE[1][: COMPLETE[1].index('"days"')]
    stream = ToolCallStream("hermes", tools=TOOLS)
    sent = stream.feed(text).content
    assert sent + stream.finish().content == text and stream.result.tool_calls == []


@pytest.mark.parametrize(
    "value",
    [
        '{"a":1}',
        '{ "s" : "x\\u00e9\\ud83d\\ude00\\n\\"\\/q", "n": [0, -1.5e+3, 1E400, 2.50], "o": {}, "l": []}',
        '{"t":true,"f":false,"z":null,"nan":NaN,"inf":-Infinity}',
    ],
)
def test_json_echo_writes_what_json_dumps_writes(value) -> None:
    want = json.dumps(json.loads(value), ensure_ascii=False)
    for i in range(len(value) + 1):
        echo = JsonEcho()
        assert echo.feed(value[:i]) + echo.feed(value[i:] + " after") == want
        assert echo.done and echo.end == len(value)
    echo = JsonEcho()
    assert "".join(echo.feed(ch) for ch in value + " ") == want


@pytest.mark.parametrize("bad", ['{"a" 1}', '{"a": tru}', '{"a": 01}', "[1,]", '{"a": "\x01"}'])
def test_json_echo_stops_at_what_is_not_json(bad) -> None:
    echo = JsonEcho()
    echo.feed(bad + " ")
    assert echo.failed and not echo.done
