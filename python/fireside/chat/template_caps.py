"""What a chat template can render about tools, found by rendering probe conversations.

Templates differ in ways their source does not state plainly: some never read ``tools``;
some print an assistant's ``tool_calls``, some drop them; some print ``arguments`` given
as JSON text, others only an object (they apply ``tojson`` or iterate its items). As
llama.cpp does (``common/chat``), fireside renders small conversations holding needle
strings and looks for the needles in the output.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fireside.errors import TemplateError

_TOOL_NEEDLE = "fireside_tool_needle"
_ARG_NEEDLE = "fireside_argument_needle"
_CALL_ID = "abcDE1234"  # nine letters and digits: what the strictest templates accept


@dataclass(frozen=True)
class TemplateCapabilities:
    """What a template renders: ``supports_tools`` (it shows the ``tools`` it is given),
    ``supports_tool_calls`` (it shows an assistant's calls), ``requires_object_arguments``
    (call arguments must be an object, not JSON text)."""

    supports_tools: bool
    supports_tool_calls: bool
    requires_object_arguments: bool
    probe_failed: bool = False
    """Whether a probe render raised: the template may render calls but failed on the
    probe (a real render then shows the template's own error)."""


def _tool() -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": _TOOL_NEEDLE,
            "description": "A probe.",
            "parameters": {
                "type": "object",
                "properties": {"value": {"type": "string", "description": "A value."}},
                "required": ["value"],
            },
        },
    }


def _call_conversation(arguments: Any) -> list[dict[str, Any]]:
    call = {
        "id": _CALL_ID,
        "type": "function",
        "function": {"name": _TOOL_NEEDLE, "arguments": arguments},
    }
    return [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hey"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": _CALL_ID, "name": _TOOL_NEEDLE, "content": "42"},
    ]


def probe_capabilities(render: Callable[..., str]) -> TemplateCapabilities:
    """Probe a template through ``render(messages, *, add_generation_prompt, tools)``
    (its raw render: no tool checks of its own). A probe that fails counts as "no"."""

    failures = []

    def attempt(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
        try:
            return render(messages, add_generation_prompt=False, tools=tools)
        except (TemplateError, ValueError, TypeError):
            failures.append(True)
            return ""

    tools = [_tool()]
    shown = attempt(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hey"}], tools
    )
    as_text = attempt(_call_conversation(json.dumps({_ARG_NEEDLE: "x"})), tools)
    as_object = attempt(_call_conversation({_ARG_NEEDLE: "x"}), tools)
    text_ok = f'"{_ARG_NEEDLE}":' in as_text or f"'{_ARG_NEEDLE}':" in as_text
    object_ok = _ARG_NEEDLE in as_object
    return TemplateCapabilities(
        supports_tools=_TOOL_NEEDLE in shown,
        supports_tool_calls=text_ok or object_ok,
        requires_object_arguments=object_ok and not text_ok,
        probe_failed=bool(failures),
    )
