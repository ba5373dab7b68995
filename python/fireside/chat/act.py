"""The tool loop: a model uses plain Python functions until it has answered.

:func:`act` (also :meth:`fireside.chat.session.ChatSession.act`) sends the prompt with the
functions as tools (their schemas from :func:`~fireside.chat.tools.function_to_tool`);
each call in the reply is run with its parsed arguments and its result is added to the
conversation as a ``role: "tool"`` message, then the model replies again, until a reply
makes no call. A function that raises, arguments that do not fit its signature, and a
call of a function that is not among the tools give the model the error text as the
result (never an exception in the caller). The last of ``max_rounds`` replies is made
with ``tool_choice="none"``, so the loop always ends with an answer
(:attr:`ActResult.exhausted` says when that cut it short).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fireside.chat.tools import check_tools

if TYPE_CHECKING:
    from fireside.chat.reply import ToolChoiceSpec
    from fireside.chat.session import ChatSession
    from fireside.generation.results import GenerationResult

MAX_RESULT_CHARS = 16_384
"""The longest tool result fed back to the model; longer ones are cut and say so."""


@dataclass(frozen=True)
class ToolRun:
    """One call the loop ran: what the model asked for and what it got back."""

    call_id: str
    name: str
    arguments: dict[str, Any]
    output: str
    """The text fed back to the model (the result, or the error)."""
    error: str | None = None
    """Why the call failed (``None``: it ran)."""
    value: Any = None
    """What the function returned (``None`` if it failed)."""


@dataclass
class ActResult:
    """The outcome of :func:`act`: ``text`` is the final answer."""

    text: str
    result: GenerationResult
    """The last reply's result (usage, timings, finish reason, reasoning)."""
    runs: list[ToolRun] = field(default_factory=list)
    """Every call run, in order."""
    rounds: int = 0
    """Replies the model made (each a round)."""
    exhausted: bool = False
    """Whether ``max_rounds`` cut the loop short: every earlier reply made calls, and the
    last one was made with ``tool_choice="none"``."""


def run_tool_call(call: Mapping[str, Any], functions: Mapping[str, Callable[..., Any]]) -> ToolRun:
    """Run one OpenAI-shaped ``call`` with the function of its name; errors become text."""
    function = call.get("function") or {}
    name = str(function.get("name", ""))
    call_id = str(call.get("id", ""))
    try:
        arguments = json.loads(function.get("arguments") or "{}")
    except json.JSONDecodeError as e:
        return _failed(call_id, name, {}, f"the arguments are not JSON: {e}")
    if not isinstance(arguments, dict):
        return _failed(call_id, name, {}, "the arguments must be a JSON object")
    fn = functions.get(name)
    if fn is None:
        known = ", ".join(functions) or "none"
        return _failed(
            call_id, name, arguments, f"there is no tool named {name!r} (tools: {known})"
        )
    try:
        value = fn(**arguments)
    except Exception as e:  # noqa: BLE001 - the model gets the error, the caller keeps going
        return _failed(call_id, name, arguments, f"{type(e).__name__}: {e}")
    output = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(output) > MAX_RESULT_CHARS:
        output = output[:MAX_RESULT_CHARS] + f" ... (cut at {MAX_RESULT_CHARS:,} characters)"
    return ToolRun(call_id, name, arguments, output, None, value)


def _failed(call_id: str, name: str, arguments: dict[str, Any], error: str) -> ToolRun:
    return ToolRun(call_id, name, arguments, f"Error: {error}", error)


def act(
    session: ChatSession,
    prompt: str,
    tools: Sequence[Callable[..., Any]],
    *,
    max_rounds: int = 8,
    tool_choice: ToolChoiceSpec | Sequence[ToolChoiceSpec] = None,
    on_call: Callable[[ToolRun], object] | None = None,
    **options: Any,
) -> ActResult:
    """Answer ``prompt`` in ``session``, letting the model call ``tools`` (see the module
    docs). ``tool_choice``: one choice for every round, or a list with one per round (its
    last entry repeats). ``on_call(run)`` is called after each call ran. ``options`` go
    to :meth:`~fireside.chat.session.ChatSession.send` (``max_tokens``, sampling, ``think``).
    """
    if not isinstance(max_rounds, int) or isinstance(max_rounds, bool) or max_rounds < 1:
        raise ValueError(f"max_rounds must be a positive integer, got {max_rounds!r}")
    if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Sequence):
        raise TypeError("tools must be a list of Python functions")
    for i, fn in enumerate(tools):
        if not callable(fn):
            raise TypeError(f"tools[{i}] must be a Python function, got {type(fn).__name__}")
    for key in ("stream", "tools", "tool_choice"):
        if key in options:
            raise TypeError(f"act() does not take {key}= in its send options")
    definitions = check_tools(list(tools))  # schemas checked once, before any generation
    functions = {d["function"]["name"]: fn for d, fn in zip(definitions, tools, strict=True)}
    choices = _choices(tool_choice)
    runs: list[ToolRun] = []
    message: str | None = prompt
    for round_ in range(max_rounds):
        last = round_ == max_rounds - 1
        choice = "none" if last else choices[min(round_, len(choices) - 1)]
        result = session.send(message, tools=definitions, tool_choice=choice, **options)
        if not result.tool_calls:
            # reaching the last round means every earlier reply made calls
            return ActResult(result.text, result, runs, round_ + 1, exhausted=last and round_ > 0)
        for call in result.tool_calls:
            run = run_tool_call(call, functions)
            runs.append(run)
            session.add_tool_result(run.call_id, run.output)
            if on_call is not None:
                on_call(run)
        message = None
    raise AssertionError("unreachable: the last round makes no calls")  # pragma: no cover


def _choices(tool_choice: Any) -> list[Any]:
    if tool_choice is None or isinstance(tool_choice, (str, Mapping)):
        return [tool_choice]
    if isinstance(tool_choice, Sequence) and tool_choice:
        return list(tool_choice)
    raise TypeError(
        "tool_choice must be a choice ('auto', 'none', 'required', a function) or a list of them"
    )
