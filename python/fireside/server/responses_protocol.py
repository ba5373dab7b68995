"""Request and response bodies of OpenAI's Responses API (``POST /v1/responses``), and the
translation of its ``input`` items into chat messages.

Requests reject unknown fields, as :mod:`fireside.server.protocol` does. ``input`` is a
string (one user message) or a list of items: messages (``role`` user, assistant, system
or developer; ``content`` a string or ``input_text``/``output_text`` parts), including the
``output`` messages of an earlier response passed back as they came (fields a client's
models send as ``null`` are fine; other unknown fields are refused). Developer messages
are system messages to the chat template. Function tools (``{"type": "function", "name",
"description", "parameters"}``) become chat completions' tools; ``function_call`` items (an
earlier response's calls, passed back) become an assistant message's ``tool_calls``,
``function_call_output`` items ``role: "tool"`` messages, and ``reasoning`` items the
``reasoning_content`` of the assistant message that follows. Items this server cannot
honour are refused with a 400 that says so: images, files and other item and tool types.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fireside.server.errors import bad_request
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


class ReasoningConfig(_Request):
    effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    """As chat completions' ``reasoning_effort``."""
    summary: str | None = None
    """Refused: reasoning summaries are not written by this server (the reasoning itself
    is in the ``reasoning`` output item)."""

    @field_validator("summary")
    @classmethod
    def _no_summary(cls, summary: str | None) -> None:
        if summary is not None:
            raise ValueError(
                "reasoning summaries are not written by this server (the reasoning itself "
                "is the output's reasoning item); leave summary out (none)"
            )


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
    reasoning: ReasoningConfig | None = None
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


_TOOL_KEYS = frozenset({"type", "name", "description", "parameters", "strict"})
_CALL_KEYS = frozenset({"type", "id", "call_id", "name", "arguments", "status"})
_OUTPUT_KEYS = frozenset({"type", "id", "call_id", "output", "status"})
_REASONING_KEYS = frozenset({"type", "id", "summary", "content", "status", "encrypted_content"})


def chat_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Function tools as chat completions' ``tools`` (``{"type": "function", "function":
    {...}}``); their schemas are checked later, as every chat's are."""
    if not tools:
        return None
    out = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if tool.get("type") != "function":
            raise bad_request(
                f"{where} has type {tool.get('type')!r}; this server runs function tools "
                "only (the built-in tools need OpenAI's servers).",
                param=f"{where}.type",
            )
        extra = _unknown(tool, _TOOL_KEYS)
        if extra:
            raise bad_request(f"{where} has unknown fields: {', '.join(extra)}.", param=where)
        function = {
            k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool
        }
        if function.get("description") is None:
            function.pop("description", None)
        if function.get("parameters") is None:
            function.pop("parameters", None)
        if function.get("strict") is None:
            function.pop("strict", None)
        out.append({"type": "function", "function": function})
    return out


def chat_tool_choice(choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    """``tool_choice`` in chat completions' shape (``{"type": "function", "name": ...}``
    becomes ``{"type": "function", "function": {"name": ...}}``)."""
    if choice is None or isinstance(choice, str):
        return choice
    if choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise bad_request(
        "tool_choice must be 'auto', 'none', 'required' or "
        '{"type": "function", "name": "..."} on this server.',
        param="tool_choice",
    )


def input_messages(value: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``input`` as chat messages, or a 400 naming the bad item.

    Messages become ``{"role", "content"}``; consecutive ``function_call`` items join the
    assistant message before them (or a new one) as its ``tool_calls``;
    ``function_call_output`` items become ``role: "tool"`` messages; a ``reasoning``
    item's text becomes the next assistant message's ``reasoning_content``.
    """
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not value:
        raise bad_request("input is empty; send a string or at least one item.", param="input")
    out: list[dict[str, Any]] = []
    reasoning: str | None = None
    for i, item in enumerate(value):
        where = f"input[{i}]"
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "reasoning":
            reasoning = _reasoning_text(item, where)
            continue
        if kind == "function_call":
            call = _function_call(item, where)
            last = out[-1] if out else None
            if last is None or last["role"] != "assistant":
                last = {"role": "assistant", "content": None}
                out.append(last)
            last.setdefault("tool_calls", []).append(call)
        elif kind == "function_call_output":
            out.append(_function_output(item, where))
            continue
        else:
            out.append(_item_message(item, where))
        if out[-1]["role"] == "assistant" and reasoning is not None:
            out[-1]["reasoning_content"] = reasoning
            reasoning = None
    if not out:
        raise bad_request(
            "input has no message, function_call or function_call_output item (a reasoning "
            "item only annotates the assistant message after it).",
            param="input",
        )
    return out


def check_call_outputs(history: list[dict[str, Any]], items: str | list[dict[str, Any]]) -> None:
    """A 400 for a ``function_call_output`` whose ``call_id`` names no ``function_call``
    before it (in the stored conversation or earlier in ``input``)."""
    if isinstance(items, str):
        return
    known = [c["id"] for m in history for c in m.get("tool_calls") or []]
    for i, item in enumerate(items):
        kind = item.get("type")
        if kind == "function_call" and isinstance(item.get("call_id"), str):
            known.append(item["call_id"])
        elif kind == "function_call_output" and item.get("call_id") not in known:
            calls = ", ".join(repr(c) for c in known) or "none"
            raise bad_request(
                f"input[{i}] is the output of call_id {item.get('call_id')!r}, which matches no "
                f"function_call of this conversation (calls: {calls}).",
                param=f"input[{i}].call_id",
            )


def _function_call(item: Mapping[str, Any], where: str) -> dict[str, Any]:
    extra = _unknown(item, _CALL_KEYS)
    if extra:
        raise bad_request(f"{where} has unknown fields: {', '.join(extra)}.", param=where)
    for key in ("call_id", "name", "arguments"):
        if not isinstance(item.get(key), str):
            raise bad_request(
                f"{where} is a function_call without a {key!r} string.", param=f"{where}.{key}"
            )
    return {
        "id": item["call_id"],
        "type": "function",
        "function": {"name": item["name"], "arguments": item["arguments"]},
    }


def _function_output(item: Mapping[str, Any], where: str) -> dict[str, Any]:
    extra = _unknown(item, _OUTPUT_KEYS)
    if extra:
        raise bad_request(f"{where} has unknown fields: {', '.join(extra)}.", param=where)
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise bad_request(
            f"{where} is a function_call_output without a 'call_id' string.",
            param=f"{where}.call_id",
        )
    output = item.get("output")
    text = output if isinstance(output, str) else _content(output, f"{where}.output")
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def _reasoning_text(item: Mapping[str, Any], where: str) -> str:
    extra = _unknown(item, _REASONING_KEYS)
    if extra:
        raise bad_request(f"{where} has unknown fields: {', '.join(extra)}.", param=where)
    if item.get("encrypted_content"):
        raise bad_request(
            f"{where} carries encrypted_content, which only OpenAI's servers can read.",
            param=f"{where}.encrypted_content",
        )
    texts = []
    for j, part in enumerate(item.get("content") or []):
        text = part.get("text") if isinstance(part, Mapping) else None
        if not isinstance(text, str) or part.get("type") != "reasoning_text":
            raise bad_request(
                f"{where}.content[{j}] must be a reasoning_text part with a 'text' string.",
                param=f"{where}.content[{j}]",
            )
        texts.append(text)
    return "".join(texts)


def _item_message(item: Mapping[str, Any], where: str) -> dict[str, Any]:
    kind = item.get("type", "message" if "role" in item else None)
    if kind != "message":
        raise bad_request(
            f"{where} has type {kind!r}; this server takes message, function_call, "
            "function_call_output and reasoning items only.",
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


class FunctionCallItem(BaseModel):
    """A call the model made (``arguments``: JSON text of an object)."""

    type: Literal["function_call"] = "function_call"
    id: str
    call_id: str
    name: str
    arguments: str
    status: Literal["in_progress", "completed", "incomplete"]


class ReasoningText(BaseModel):
    type: Literal["reasoning_text"] = "reasoning_text"
    text: str


class ReasoningItem(BaseModel):
    """The thinking of a reasoning model, before its answer."""

    type: Literal["reasoning"] = "reasoning"
    id: str
    summary: list[Any] = Field(default_factory=list)
    content: list[ReasoningText]
    status: Literal["in_progress", "completed", "incomplete"]


OutputItem = Annotated[
    OutputMessage | FunctionCallItem | ReasoningItem, Field(discriminator="type")
]


class InputTokensDetails(BaseModel):
    cached_tokens: int
    """Prompt tokens that were already in the slot's KV cache."""


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = 0
    """Generated tokens inside the thinking block (its markers included)."""


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
    output: list[OutputItem]
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
