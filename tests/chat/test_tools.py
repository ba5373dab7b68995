"""Tool definitions, tool_choice, tool messages and Python functions as tools."""

from __future__ import annotations

import enum
from typing import Literal, Optional

import jsonschema
import pytest
from fireside.chat.tools import (
    MAX_TOOLS,
    ToolChoice,
    check_tool_choice,
    check_tool_messages,
    check_tools,
    function_to_tool,
)
from fireside.errors import ToolError

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


class Unit(enum.Enum):
    C = "celsius"
    F = "fahrenheit"


def forecast(
    city: str,
    days: int = 1,
    unit: Unit = Unit.C,
    tags: list[str] | None = None,
    mode: Literal["brief", "full"] = "brief",
    ratio: Optional[float] = None,  # noqa: UP045 - the old spelling must work too
    extra: dict[str, int] | None = None,
    exact: bool = False,
) -> str:
    """Forecast the weather
    for a city.

    Args:
        city: The city name,
            for example Paris.
        days (int): How many days.
        unit: The temperature unit.

    Returns:
        The forecast.
    """
    return city


def numpy_style(city: str, flag: bool) -> None:
    """NumPy style.

    Parameters
    ----------
    city : str
        The city.
    flag : bool
        A flag.

    Returns
    -------
    None
    """


def rest_style(city: str, n: int) -> None:
    """reST style.

    :param city: The city.
    :param int n: A number,
        continued.
    :returns: nothing
    """


def test_function_to_tool_google_style() -> None:
    tool = function_to_tool(forecast)
    function = tool["function"]
    assert function["name"] == "forecast"
    assert function["description"] == "Forecast the weather for a city."
    props = function["parameters"]["properties"]
    assert props["city"] == {"type": "string", "description": "The city name, for example Paris."}
    assert props["days"] == {"type": "integer", "description": "How many days."}
    assert props["unit"]["enum"] == ["celsius", "fahrenheit"]
    assert props["tags"] == {
        "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]
    }
    assert props["mode"] == {"type": "string", "enum": ["brief", "full"]}
    assert props["ratio"] == {"type": ["number", "null"]}
    assert props["exact"] == {"type": "boolean"}
    assert function["parameters"]["required"] == ["city"]
    jsonschema.Draft202012Validator.check_schema(function["parameters"])
    jsonschema.validate(
        {"city": "Paris", "unit": "celsius", "extra": {"a": 1}}, function["parameters"]
    )


@pytest.mark.parametrize(
    ("fn", "summary", "described"),
    [
        (numpy_style, "NumPy style.", {"city": "The city.", "flag": "A flag."}),
        (rest_style, "reST style.", {"city": "The city.", "n": "A number, continued."}),
    ],
)
def test_function_to_tool_numpy_and_rest(fn, summary, described) -> None:
    function = function_to_tool(fn)["function"]
    assert function["description"] == summary
    for name, text in described.items():
        assert function["parameters"]["properties"][name]["description"] == text


def test_check_tools_accepts_functions_and_dicts() -> None:
    tools = check_tools([WEATHER, forecast])
    assert [t["function"]["name"] for t in tools] == ["get_weather", "forecast"]
    assert check_tools(None) == []


@pytest.mark.parametrize(
    ("tools", "message"),
    [
        (
            [{"type": "function", "function": {"name": "f", "parameters": {"type": "objekt"}}}],
            "not a valid JSON Schema",
        ),
        (
            [{"type": "function", "function": {"name": "f", "parameters": {"properties": 3}}}],
            "not a valid JSON Schema at properties",
        ),
        (
            [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}],
            "must describe an object",
        ),
        ([{"type": "function", "function": {"name": "bad name!"}}], "function name 'bad name!'"),
        ([{"type": "retrieval"}], "only tools of type 'function'"),
        ([{"name": "f"}], "needs a 'function' object"),
        ([WEATHER, WEATHER], "defined twice"),
        ([42], "must be a dict or a function"),
        ("get_weather", "must be a list"),
        ([WEATHER] * (MAX_TOOLS + 1), f"at most {MAX_TOOLS}"),
    ],
)
def test_bad_tools_are_clear_errors(tools, message) -> None:
    with pytest.raises(ToolError, match=message):
        check_tools(tools)


def test_unsupported_hint_is_a_clear_error() -> None:
    def f(x: complex) -> None: ...

    def g(*args: int) -> None: ...

    with pytest.raises(ToolError, match="parameter 'x'.*no JSON Schema"):
        function_to_tool(f)
    with pytest.raises(ToolError, match=r"\*args"):
        function_to_tool(g)


def test_tool_choice() -> None:
    tools = check_tools([WEATHER])
    assert check_tool_choice(None, tools) == ToolChoice("auto")
    assert check_tool_choice("auto", []) == ToolChoice("none")
    assert check_tool_choice("required", tools).forced
    named = check_tool_choice({"type": "function", "function": {"name": "get_weather"}}, tools)
    assert named == ToolChoice("required", "get_weather")
    with pytest.raises(ToolError, match="'nope', which is not in tools"):
        check_tool_choice({"type": "function", "function": {"name": "nope"}}, tools)
    with pytest.raises(ToolError, match="needs at least one tool"):
        check_tool_choice("required", [])
    with pytest.raises(ToolError, match="tool_choice must be"):
        check_tool_choice("always", tools)


def _conversation(result_id: str) -> list[dict]:
    return [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                }
            ],
        },
        {"role": "tool", "tool_call_id": result_id, "content": {"temp": 21}},
    ]


def test_tool_messages_are_matched_and_normalised() -> None:
    out = check_tool_messages(_conversation("call_1"))
    assert out[1]["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris"}'
    assert out[2]["name"] == "get_weather"
    assert out[2]["content"] == '{"temp": 21}'
    missing_id = _conversation("call_1")
    del missing_id[2]["tool_call_id"]
    assert check_tool_messages(missing_id)[2]["tool_call_id"] == "call_1"


def test_unknown_tool_call_id_is_a_clear_error() -> None:
    with pytest.raises(
        ToolError,
        match=r"messages\[2\]: tool_call_id 'call_9' matches no earlier tool call.*'call_1'",
    ):
        check_tool_messages(_conversation("call_9"))
    with pytest.raises(ToolError, match="no earlier tool call is waiting"):
        check_tool_messages([{"role": "tool", "content": "x"}])


def test_bad_call_arguments_are_clear_errors() -> None:
    bad = _conversation("call_1")
    bad[1]["tool_calls"][0]["function"]["arguments"] = "{not json"
    with pytest.raises(ToolError, match="arguments of 'get_weather' are not JSON"):
        check_tool_messages(bad)
    bad[1]["tool_calls"][0]["function"]["arguments"] = "[1]"
    with pytest.raises(ToolError, match="must be a JSON object"):
        check_tool_messages(bad)
