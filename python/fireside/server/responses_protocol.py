"""Request and response bodies of OpenAI's Responses API (``POST /v1/responses``), and the
translation of its ``input`` items into chat messages.

Requests reject unknown fields, as :mod:`fireside.server.protocol` does. ``input`` is a
string (one user message) or a list of items: messages (``role`` user, assistant, system
or developer; ``content`` a string or ``input_text``/``output_text`` parts), including the
``output`` messages of an earlier response passed back as they came (fields a client's
models send as ``null`` are fine; other unknown fields are refused). Developer messages
are system messages to the chat template. Items this server cannot honour yet are refused
with a 400 that says so: function calls and their outputs (tool calling on this endpoint
comes with tools in the chat layer), images, files and other item types.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fireside.server.errors import APIError, bad_request
from fireside.server.protocol import MAX_TOP_K

MAX_METADATA_KEYS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
"""Responses roles -> chat roles."""
_MESSAGE_KEYS = frozenset({"type", "role", "content", "id", "status", "phase"})
_PART_KEYS = {
    "input_text": frozenset({"type", "text"}),
    "output_text": frozenset({"type", "text", "annotations", "logprobs"}),
}


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FormatText(_Request):
    type: Literal["text"]


class FormatJSONObject(_Request):
    type: Literal["json_object"]


class FormatJSONSchema(_Request):
    type: Literal["json_schema"]
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    schema_: dict[str, Any] | bool = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None


TextFormat = Annotated[
    FormatText | FormatJSONObject | FormatJSONSchema, Field(discriminator="type")
]


class TextConfig(_Request):
    format: TextFormat | None = None


class ResponsesRequest(_Request):
    """``POST /v1/responses``."""

    model: str
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    previous_response_id: str | None = None
    store: bool | None = None
    """``None`` and ``True``: kept for ``previous_response_id``; ``False``: never kept."""
    stream: bool = False
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    text: TextConfig | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    # llama.cpp's usual knobs, as in chat completions
    top_k: int | None = Field(default=None, ge=0, le=MAX_TOP_K)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    repeat_penalty: float | None = Field(default=None, gt=0.0)
    seed: int | None = None

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, metadata: dict[str, str] | None) -> dict[str, str] | None:
        if metadata is None:
            return None
        if len(metadata) > MAX_METADATA_KEYS:
            raise ValueError(f"at most {MAX_METADATA_KEYS} keys are allowed, got {len(metadata)}")
        for key, value in metadata.items():
            if len(key) > MAX_METADATA_KEY_CHARS:
                raise ValueError(f"keys have at most {MAX_METADATA_KEY_CHARS} characters")
            if len(value) > MAX_METADATA_VALUE_CHARS:
                raise ValueError(f"values have at most {MAX_METADATA_VALUE_CHARS} characters")
        return metadata

    @property
    def stored(self) -> bool:
        return self.store is not False


def tools_not_available(param: str) -> APIError:
    """The 400 for tool calling, which this endpoint does not offer yet."""
    return bad_request(
        f"{param}: tool calling on /v1/responses is not available yet on this server; "
        "send text messages only (chat completions will support tools first).",
        param=param,
    )


def check_tools(req: ResponsesRequest) -> None:
    """Refuse ``tools`` and a ``tool_choice`` that needs them (``"auto"`` and ``"none"``
    without tools mean plain text, which is what is produced)."""
    if req.tools:
        raise tools_not_available("tools")
    if req.tool_choice is not None and req.tool_choice not in ("auto", "none"):
        raise tools_not_available("tool_choice")


def input_messages(value: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``input`` as chat messages (``{"role", "content"}``), or a 400 naming the bad item."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not value:
        raise bad_request("input is empty; send a string or at least one item.", param="input")
    return [_item_message(item, f"input[{i}]") for i, item in enumerate(value)]


def _item_message(item: Mapping[str, Any], where: str) -> dict[str, Any]:
    kind = item.get("type", "message" if "role" in item else None)
    if kind in ("function_call", "function_call_output"):
        raise tools_not_available(where)
    if kind != "message":
        raise bad_request(
            f"{where} has type {kind!r}; this server takes message items "
            "(with a role and text content) only.",
            param=where,
        )
    extra = _unknown(item, _MESSAGE_KEYS)
    if extra:
        raise bad_request(f"{where} has unknown fields: {', '.join(extra)}.", param=where)
    role = item.get("role")
    if role not in ROLES:
        raise bad_request(
            f"{where} has role {role!r}; expected one of {', '.join(ROLES)}.",
            param=f"{where}.role",
        )
    return {"role": ROLES[role], "content": _content(item.get("content"), f"{where}.content")}


def _unknown(item: Mapping[str, Any], known: frozenset[str]) -> list[str]:
    """Fields beside ``known`` that carry a value (clients send their models' ``None``s)."""
    return sorted(k for k, v in item.items() if k not in known and v is not None)


def _content(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise bad_request(f"{where} must be a string or a list of text parts.", param=where)
    texts = []
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind not in _PART_KEYS:
            raise bad_request(
                f"{at} has type {kind!r}; only text parts (input_text, output_text) are "
                "supported by this server.",
                param=at,
            )
        extra = _unknown(part, _PART_KEYS[kind])
        if extra:
            raise bad_request(f"{at} has unknown fields: {', '.join(extra)}.", param=at)
        text = part.get("text")
        if not isinstance(text, str):
            raise bad_request(f"{at} has no 'text' string.", param=f"{at}.text")
        texts.append(text)
    return "".join(texts)


def response_format(config: TextConfig | None) -> dict[str, Any] | None:
    """``text.format`` as chat completions' ``response_format``."""
    fmt = None if config is None else config.format
    if fmt is None or isinstance(fmt, FormatText):
        return None
    if isinstance(fmt, FormatJSONObject):
        return {"type": "json_object"}
    spec: dict[str, Any] = {"name": fmt.name, "schema": fmt.schema_}
    if fmt.description is not None:
        spec["description"] = fmt.description
    if fmt.strict is not None:
        spec["strict"] = fmt.strict
    return {"type": "json_schema", "json_schema": spec}


# -- responses ---------------------------------------------------------------------------


class OutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[Any] = Field(default_factory=list)
    logprobs: list[Any] = Field(default_factory=list)


class OutputMessage(BaseModel):
    type: Literal["message"] = "message"
    id: str
    status: Literal["in_progress", "completed", "incomplete"]
    role: Literal["assistant"] = "assistant"
    content: list[OutputText]


class InputTokensDetails(BaseModel):
    cached_tokens: int
    """Prompt tokens that were already in the slot's KV cache."""


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails = Field(default_factory=OutputTokensDetails)
    total_tokens: int


class ResponseError(BaseModel):
    code: str
    message: str


class IncompleteDetails(BaseModel):
    reason: Literal["max_output_tokens"]


class ResponseObject(BaseModel):
    """A response: the body of ``POST /v1/responses`` and of the stream's lifecycle events."""

    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: Literal["in_progress", "completed", "incomplete", "failed"]
    completed_at: int | None = None
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None
    max_output_tokens: int | None
    model: str
    output: list[OutputMessage]
    parallel_tool_calls: bool = True
    previous_response_id: str | None
    store: bool
    temperature: float
    top_p: float
    text: dict[str, Any]
    tool_choice: str | dict[str, Any] = "auto"
    tools: list[Any] = Field(default_factory=list)
    truncation: Literal["disabled"] = "disabled"
    usage: ResponseUsage | None = None
    user: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class DeletedResponse(BaseModel):
    id: str
    object: Literal["response"] = "response"
    deleted: bool = True
