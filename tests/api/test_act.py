"""session.act: the model calls plain Python functions, fireside runs them and feeds the
results back until the model answers (the real test model, a tool-capable template)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fireside import Model
from fireside.chat.act import run_tool_call
from fireside.errors import ToolError

TEMPLATE = (
    Path(__file__).resolve().parents[2]
    / "vendor"
    / "llama.cpp"
    / "models"
    / "templates"
    / "Qwen-Qwen2.5-7B-Instruct.jinja"
)
OPTIONS = {"max_tokens": 40, "temperature": 0, "parallel_tool_calls": False}


def force(name: str) -> dict:
    return {"type": "function", "function": {"name": name}}


class Calculator:
    """Two tools that record how they were called."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def add(self, a: int, b: int) -> int:
        """Add two whole numbers.

        Args:
            a: The first number.
            b: The second number.
        """
        self.calls.append(("add", a, b))
        return a + b

    def square(self, x: int) -> int:
        """Square a whole number.

        Args:
            x: The number to square.
        """
        self.calls.append(("square", x))
        return x * x


@pytest.fixture(scope="module")
def model(model_path: Path) -> Iterator[Model]:
    if not TEMPLATE.is_file():
        pytest.fail(f"the pinned llama.cpp tree has no {TEMPLATE}")
    with Model(model_path, n_ctx=2048, n_threads=1, chat_template=str(TEMPLATE)) as m:
        yield m


def test_act_runs_two_tools_and_feeds_the_results_back(model: Model) -> None:
    calc = Calculator()
    session = model.chat_session()
    seen = []
    done = session.act(
        "Add 2 and 3, then square the result.",
        [calc.add, calc.square],
        tool_choice=[force("add"), force("square"), "none"],
        on_call=seen.append,
        **OPTIONS,
    )
    # the real functions ran, with the arguments the model wrote
    assert [c[0] for c in calc.calls] == ["add", "square"]
    assert [r.name for r in done.runs] == ["add", "square"] and seen == done.runs
    for run, call in zip(done.runs, calc.calls, strict=True):
        assert tuple(run.arguments.values()) == call[1:]
        assert run.error is None and run.output == json.dumps(run.value)
    assert done.rounds == 3 and not done.exhausted
    assert done.text == done.result.text and done.result.tool_calls == []
    # the history has each call and its result, in order
    history = session.history
    assert [m["role"] for m in history] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]
    for i, run in ((1, done.runs[0]), (3, done.runs[1])):
        (call,) = history[i]["tool_calls"]
        assert call["id"] == run.call_id and call["function"]["name"] == run.name
        assert json.loads(call["function"]["arguments"]) == run.arguments
        assert history[i + 1] == {
            "role": "tool",
            "tool_call_id": run.call_id,
            "name": run.name,
            "content": run.output,
        }
    # the results were fed to the model: the prompt of its last reply shows them
    assert f"\n{done.runs[0].output}\n" in model.apply_chat_template(history)  # type: ignore[operator]


def test_a_tool_that_raises_gives_the_model_the_error(model: Model) -> None:
    def lookup(city: str) -> str:
        """Look a city up.

        Args:
            city: The city.
        """
        raise KeyError(f"no data for {city}")

    session = model.chat_session()
    done = session.act(
        "Look up Paris.", [lookup], tool_choice=["required", "none"], max_rounds=2, **OPTIONS
    )
    (run,) = done.runs
    assert run.error is not None and run.error.startswith("KeyError: ")
    assert session.history[2]["content"] == f"Error: {run.error}"
    assert done.rounds == 2 and done.exhausted  # the last round could not call tools


def test_max_rounds_ends_with_an_answer(model: Model) -> None:
    calc = Calculator()
    done = model.chat_session().act(
        "Keep adding.", [calc.add], tool_choice="required", max_rounds=3, **OPTIONS
    )
    assert len(calc.calls) == 2 and done.rounds == 3 and done.exhausted
    assert done.result.tool_calls == []


def test_calls_that_cannot_run_are_reported_to_the_model() -> None:
    def add(a: int, b: int) -> int:
        return a + b

    def call(name: str, arguments: str) -> dict:
        return {
            "id": "call_1",
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }

    assert run_tool_call(call("add", '{"a": 1, "b": 2}'), {"add": add}).output == "3"
    unknown = run_tool_call(call("sub", "{}"), {"add": add})
    assert unknown.output == "Error: there is no tool named 'sub' (tools: add)"
    wrong = run_tool_call(call("add", '{"a": 1, "c": 2}'), {"add": add})
    assert wrong.error is not None and wrong.error.startswith("TypeError: ")
    assert "unexpected keyword argument 'c'" in wrong.output
    assert run_tool_call(call("add", "{nope"), {"add": add}).output.startswith(
        "Error: the arguments are not JSON"
    )


def test_act_checks_its_input(model: Model) -> None:
    session = model.chat_session()

    def spread(*values: int) -> int:
        return sum(values)

    with pytest.raises(ToolError, match=r"\*args and \*\*kwargs"):
        session.act("x", [spread])
    with pytest.raises(ValueError, match="max_rounds must be a positive integer"):
        session.act("x", [len], max_rounds=0)
    with pytest.raises(TypeError, match="must be a Python function"):
        session.act("x", ["add"])  # type: ignore[list-item]
    assert session.history == []  # nothing was sent
