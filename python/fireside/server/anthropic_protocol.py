"""Request and response bodies of Anthropic's Messages API (``POST /v1/messages`` and
``/v1/messages/count_tokens``), the translation of its messages into chat messages, and
Anthropic's error shape.

Requests reject unknown fields (Anthropic's API does too). ``system`` is a string or a
list of text blocks; each message's ``content`` a string or a list of ``text`` blocks
(``cache_control`` is accepted: fireside reuses cached prompt prefixes by itself). What
this server cannot honour yet is refused with a 400 that says so: ``tools``,
``tool_choice``, ``tool_use`` and ``tool_result`` blocks (tool calling on this endpoint
comes with tools in the chat layer), images, documents and thinking blocks, and a final
assistant message (Anthropic's "prefill", which would continue that message).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fireside.server.errors import APIError, bad_request
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
_TOOL_BLOCKS = frozenset({"tool_use", "tool_result", "server_tool_use"})


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


class CountTokensRequest(_Request):
    """``POST /v1/messages/count_tokens``."""

    model: str
    messages: list[MessageParam] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None


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


def tools_not_available(param: str) -> APIError:
    """The 400 for tool calling, which this endpoint does not offer yet."""
    return bad_request(
        f"{param}: tool calling on /v1/messages is not available yet on this server; "
        "send text content only.",
        param=param,
    )


def chat_messages(req: CountTokensRequest) -> list[dict[str, Any]]:
    """``system`` and ``messages`` as chat messages, or a 400 naming what is not text."""
    if req.tools:
        raise tools_not_available("tools")
    if req.tool_choice is not None and req.tool_choice.get("type") != "none":
        raise tools_not_available("tool_choice")
    out = []
    if req.system:  # "" or []: no system prompt
        out.append({"role": "system", "content": _text(req.system, "system")})
    for i, message in enumerate(req.messages):
        out.append({"role": message.role, "content": _text(message.content, f"messages[{i}]")})
    if req.messages[-1].role == "assistant":
        raise bad_request(
            f"messages[{len(req.messages) - 1}] is an assistant message: continuing a "
            "final assistant message (prefill) is not supported by this server; end with "
            "a user message.",
            param=f"messages[{len(req.messages) - 1}]",
        )
    return out


def _text(content: str | list[dict[str, Any]], where: str) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for j, block in enumerate(content):
        at = f"{where}.content[{j}]" if where != "system" else f"system[{j}]"
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind in _TOOL_BLOCKS:
            raise tools_not_available(at)
        if kind != "text":
            raise bad_request(
                f"{at} is a {kind!r} block; only text blocks are supported by this server.",
                param=at,
            )
        extra = sorted(set(block) - _TEXT_BLOCK_KEYS)
        if extra:
            raise bad_request(f"{at}: unknown fields {', '.join(extra)}.", param=at)
        if block.get("citations"):
            raise bad_request(f"{at}: citations are not supported by this server.", param=at)
        text = block.get("text")
        if not isinstance(text, str):
            raise bad_request(f"{at} has no 'text' string.", param=f"{at}.text")
        texts.append(text)
    return "".join(texts)


# -- responses ---------------------------------------------------------------------------

StopReason = Literal["end_turn", "max_tokens", "stop_sequence"]
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


class Usage(BaseModel):
    input_tokens: int
    output_tokens: int


class Message(BaseModel):
    """A reply: the body of ``POST /v1/messages`` (and of ``message_start``, empty)."""

    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    content: list[TextContent]
    model: str
    stop_reason: StopReason | None
    stop_sequence: str | None
    usage: Usage


class TokenCount(BaseModel):
    input_tokens: int
