"""Request and response bodies of Anthropic's Messages API (``POST /v1/messages`` and
``/v1/messages/count_tokens``), the translation of its messages into chat messages, and
Anthropic's error shape.

Requests reject unknown fields (Anthropic's API does too). ``system`` is a string or a
list of text blocks; each message's ``content`` a string or a list of blocks: ``text``,
``tool_use`` (an assistant's call: its ``input`` becomes the call's JSON arguments),
``tool_result`` (a ``role: "tool"`` message for the call its ``tool_use_id`` names) and
``thinking`` (an assistant's earlier reasoning, as ``reasoning_content``).
``cache_control`` is accepted: fireside reuses cached prompt prefixes by itself. ``tools``
(custom tools: ``name``, ``description``, ``input_schema``) and ``tool_choice`` (``auto``,
``any``, ``tool``, ``none``; ``disable_parallel_tool_use``) become chat completions' tools;
``thinking`` (``enabled``/``disabled``) switches a thinking template on or off. What this
server cannot honour is refused with a 400 that says so: Anthropic's server tools, images,
documents, redacted thinking, and a final assistant message (Anthropic's "prefill",
which would continue that message).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fireside.server.errors import bad_request
from fireside.server.protocol import MAX_STOPS, MAX_TOP_K

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    431: "invalid_request_error",
    500: "api_error",
    503: "api_error",
    529: "overloaded_error",
}
"""HTTP status -> Anthropic's error ``type``."""
OVERLOADED = 529
"""Anthropic's status for a server too busy to take the request (a full queue)."""
_TEXT_BLOCK_KEYS = frozenset({"type", "text", "cache_control", "citations"})
_TOOL_USE_KEYS = frozenset({"type", "id", "name", "input", "cache_control"})
_TOOL_RESULT_KEYS = frozenset({"type", "tool_use_id", "content", "is_error", "cache_control"})
_THINKING_KEYS = frozenset({"type", "thinking", "signature", "cache_control"})
_TOOL_KEYS = frozenset({"type", "name", "description", "input_schema", "cache_control"})
MIN_THINKING_BUDGET = 1024
"""Anthropic's smallest ``thinking.budget_tokens``."""


def error_body(status: int, message: str) -> dict[str, Any]:
    """``{"type": "error", "error": {"type", "message"}}`` for an HTTP ``status``."""
    kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def anthropic_status(status: int, code: str | None) -> int:
    """The status Anthropic uses for an error fireside answers with ``status`` and
    ``code``: a full queue (503 ``queue_full``) is 529, Anthropic's "overloaded"."""
    return OVERLOADED if code == "queue_full" else status


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MessageParam(_Request):
    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class Metadata(_Request):
    user_id: str | None = Field(default=None, max_length=256)


class ThinkingConfig(_Request):
    """``{"type": "enabled", "budget_tokens": N}`` or ``{"type": "disabled"}``."""

    type: Literal["enabled", "disabled"]
    budget_tokens: int | None = Field(default=None, ge=MIN_THINKING_BUDGET)
    """Checked as Anthropic checks it; the thinking is not cut at this many tokens (only
    ``max_tokens`` bounds the reply)."""


class CountTokensRequest(_Request):
    """``POST /v1/messages/count_tokens``."""

    model: str
    messages: list[MessageParam] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: ThinkingConfig | None = None

    @property
    def think(self) -> bool | None:
        """``thinking`` as chat completions' ``think`` (``None``: the template's default)."""
        return None if self.thinking is None else self.thinking.type == "enabled"


class MessagesRequest(CountTokensRequest):
    """``POST /v1/messages``."""

    max_tokens: int = Field(ge=1)
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0, le=MAX_TOP_K)
    stream: bool = False
    metadata: Metadata | None = None

    @field_validator("stop_sequences")
    @classmethod
    def _stops(cls, stops: list[str] | None) -> list[str] | None:
        if stops is not None and len(stops) > MAX_STOPS:
            raise ValueError(f"at most {MAX_STOPS} stop sequences are allowed, got {len(stops)}")
        if any(not s for s in stops or []):
            raise ValueError("stop sequences must not be empty")
        return stops


def chat_tools(req: CountTokensRequest) -> dict[str, Any]:
    """``tools`` and ``tool_choice`` as chat completions' fields (``tools``,
    ``tool_choice``, ``parallel_tool_calls``); schemas are checked later, as every chat's."""
    fields: dict[str, Any] = {}
    if req.tools:
        tools = []
        for i, tool in enumerate(req.tools):
            where = f"tools[{i}]"
            if tool.get("type", "custom") != "custom":
                raise bad_request(
                    f"{where}: tool type {tool.get('type')!r} is one of Anthropic's server "
                    "tools; this server runs custom tools (name, description, input_schema) "
                    "only.",
                    param=where,
                )
            extra = sorted(set(tool) - _TOOL_KEYS)
            if extra:
                raise bad_request(f"{where}: unknown fields {', '.join(extra)}.", param=where)
            if "input_schema" not in tool:
                raise bad_request(f"{where}.input_schema: Field required", param=where)
            function: dict[str, Any] = {
                "name": tool.get("name"),
                "parameters": tool["input_schema"],
            }
            if tool.get("description") is not None:
                function["description"] = tool["description"]
            tools.append({"type": "function", "function": function})
        fields["tools"] = tools
    choice = req.tool_choice
    if choice is not None:
        kind = choice.get("type")
        extra = sorted(set(choice) - {"type", "name", "disable_parallel_tool_use"})
        if extra or kind not in ("auto", "any", "tool", "none"):
            raise bad_request(
                'tool_choice must be {"type": "auto"}, {"type": "any"}, '
                '{"type": "tool", "name": ...} or {"type": "none"}.',
                param="tool_choice",
            )
        if kind == "tool":
            if not isinstance(choice.get("name"), str):
                raise bad_request("tool_choice.name: Field required", param="tool_choice")
            fields["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
        else:
            fields["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
        if choice.get("disable_parallel_tool_use"):
            fields["parallel_tool_calls"] = False
    return fields


def chat_messages(req: CountTokensRequest) -> list[dict[str, Any]]:
    """``system`` and ``messages`` as chat messages, or a 400 naming what cannot be one.

    A user message's ``tool_result`` blocks become ``role: "tool"`` messages (before the
    rest of its text); an assistant's ``tool_use`` blocks its ``tool_calls`` and its
    ``thinking`` blocks its ``reasoning_content``.
    """
    out = []
    if req.system:  # "" or []: no system prompt
        out.append({"role": "system", "content": _text(req.system, "system")})
    calls: list[str] = []  # tool_use ids so far: a tool_result must answer one
    for i, message in enumerate(req.messages):
        out.extend(_message(message, f"messages[{i}]", calls))
    if req.messages[-1].role == "assistant":
        raise bad_request(
            f"messages[{len(req.messages) - 1}] is an assistant message: continuing a "
            "final assistant message (prefill) is not supported by this server; end with "
            "a user message.",
            param=f"messages[{len(req.messages) - 1}]",
        )
    return out


def _message(message: MessageParam, where: str, known: list[str]) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        return [{"role": message.role, "content": message.content}]
    texts: list[str] = []
    results: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    thinking: list[str] = []
    for j, block in enumerate(message.content):
        at = f"{where}.content[{j}]"
        kind = block.get("type") if isinstance(block, Mapping) else None
        allowed = {"user": ("text", "tool_result"), "assistant": ("text", "tool_use", "thinking")}
        if kind in ("tool_use", "tool_result", "thinking") and kind not in allowed[message.role]:
            raise bad_request(
                f"{at}: a {kind} block belongs in an "
                f"{'assistant' if message.role == 'user' else 'user'} message.",
                param=at,
            )
        if kind == "tool_result":
            result = _tool_result(block, at)
            if result["tool_call_id"] not in known:
                ids = ", ".join(repr(k) for k in known) or "none"
                raise bad_request(
                    f"{at}: tool_use_id {result['tool_call_id']!r} matches no tool_use block "
                    f"of an earlier assistant message (tool_use ids: {ids}).",
                    param=f"{at}.tool_use_id",
                )
            results.append(result)
        elif kind == "tool_use":
            calls.append(_tool_use(block, at))
            known.append(calls[-1]["id"])
        elif kind == "thinking":
            _check_keys(block, _THINKING_KEYS, at)
            text = block.get("thinking")
            if not isinstance(text, str):
                raise bad_request(f"{at} has no 'thinking' string.", param=f"{at}.thinking")
            thinking.append(text)
        else:
            texts.append(_text_block(block, at))
    text = "".join(texts)
    if message.role == "user":
        out = results
        if text or not results:
            out = [*results, {"role": "user", "content": text}]
        return out
    reply: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        reply["tool_calls"] = calls
    if thinking:
        reply["reasoning_content"] = "".join(thinking)
    return [reply]


def _check_keys(block: Mapping[str, Any], known: frozenset[str], at: str) -> None:
    """A 400 for fields beside ``known`` that carry a value (the SDK's models send their
    unset fields as ``null``)."""
    extra = sorted(k for k, v in block.items() if k not in known and v is not None)
    if extra:
        raise bad_request(f"{at}: unknown fields {', '.join(extra)}.", param=at)


def _tool_use(block: Mapping[str, Any], at: str) -> dict[str, Any]:
    _check_keys(block, _TOOL_USE_KEYS, at)
    call_id, name, arguments = block.get("id"), block.get("name"), block.get("input", {})
    if not isinstance(call_id, str) or not call_id:
        raise bad_request(f"{at}: a tool_use block needs an 'id' string.", param=f"{at}.id")
    if not isinstance(name, str) or not name:
        raise bad_request(f"{at}: a tool_use block needs a 'name' string.", param=f"{at}.name")
    if not isinstance(arguments, Mapping):
        raise bad_request(f"{at}.input must be an object.", param=f"{at}.input")
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)},
    }


def _tool_result(block: Mapping[str, Any], at: str) -> dict[str, Any]:
    _check_keys(block, _TOOL_RESULT_KEYS, at)
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise bad_request(
            f"{at}: a tool_result block needs a 'tool_use_id' string.", param=f"{at}.tool_use_id"
        )
    content = block.get("content", "")
    text = content if isinstance(content, str) else _text(content, f"{at}.content")
    if block.get("is_error"):
        text = f"Error: {text}"
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def _text(content: str | list[dict[str, Any]], where: str) -> str:
    if isinstance(content, str):
        return content
    return "".join(_text_block(block, f"{where}[{j}]") for j, block in enumerate(content))


def _text_block(block: Any, at: str) -> str:
    kind = block.get("type") if isinstance(block, Mapping) else None
    if kind != "text":
        raise bad_request(
            f"{at} is a {kind!r} block; this server takes text, tool_use, tool_result and "
            "thinking blocks only.",
            param=at,
        )
    _check_keys(block, _TEXT_BLOCK_KEYS, at)
    if block.get("citations"):
        raise bad_request(f"{at}: citations are not supported by this server.", param=at)
    text = block.get("text")
    if not isinstance(text, str):
        raise bad_request(f"{at} has no 'text' string.", param=f"{at}.text")
    return text


# -- responses ---------------------------------------------------------------------------

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"]
STOP_REASONS: dict[str, StopReason] = {
    "eos": "end_turn",
    "stop": "stop_sequence",
    "length": "max_tokens",
    "cancelled": "end_turn",  # reported to nobody: a client that goes away cancels
}
"""fireside's finish reasons -> Anthropic's ``stop_reason``."""


class TextContent(BaseModel):
    type: Literal["text"] = "text"
    text: str


class ToolUseContent(BaseModel):
    """A call the model made: ``input`` is its arguments."""

    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict[str, Any]


class ThinkingContent(BaseModel):
    """A reasoning model's thinking, before its answer. ``signature`` is empty: nothing
    here is signed (a thinking block sent back is used as it is)."""

    type: Literal["thinking"] = "thinking"
    thinking: str
    signature: str = ""


ContentBlock = TextContent | ToolUseContent | ThinkingContent


class Usage(BaseModel):
    input_tokens: int
    output_tokens: int


class Message(BaseModel):
    """A reply: the body of ``POST /v1/messages`` (and of ``message_start``, empty)."""

    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    content: list[ContentBlock]
    model: str
    stop_reason: StopReason | None
    stop_sequence: str | None
    usage: Usage


class TokenCount(BaseModel):
    input_tokens: int
