"""Request and response bodies in the shapes of OpenAI's API.

Requests reject unknown fields (as OpenAI does: "Unrecognized request argument"), so a
parameter this server does not implement is an error rather than silently ignored. Beside
OpenAI's fields, fireside's other sampling options are accepted (``top_k``, ``min_p``,
``repeat_penalty``, ``repeat_last_n``, ``typical_p``, ``mirostat*``, ``dry_*``). Sampling
fields are :class:`fireside.generation.sampling.SamplingParams`' options, checked by it;
an omitted one takes fireside's default, not OpenAI's.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
)

from fireside.generation.sampling import SEED_MAX, SamplingOptions, check_option
from fireside.server.docs_api import MAX_DOCS_PER_REQUEST, DocReference

MAX_STOPS = 16
MAX_TOP_LOGPROBS = 20
MAX_COMPLETION_LOGPROBS = 5
MAX_LOGIT_BIAS = 1024
"""Entries in one ``logit_bias``."""
MAX_TOP_K = 2**31 - 1
MAX_TEMPLATE_KWARGS = 32
"""Variables one ``chat_template_kwargs`` may set."""
MAX_TEMPLATE_KWARGS_CHARS = 16_384
"""The largest ``chat_template_kwargs``, as JSON text."""
RESERVED_TEMPLATE_VARIABLES = frozenset(
    {"messages", "tools", "add_generation_prompt", "bos_token", "eos_token"}
)
SAMPLING_FIELDS = (
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "top_k",
    "min_p",
    "repeat_penalty",
    "repeat_last_n",
    "typical_p",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
    "dry_multiplier",
    "dry_base",
    "dry_allowed_length",
)
"""Request fields that are :class:`~fireside.generation.sampling.SamplingParams` options
(same names, defaults and checks); ``seed`` and ``logit_bias`` take OpenAI's shapes."""


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamOptions(_Request):
    include_usage: bool = False


class JSONSchemaSpec(_Request):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    schema_: dict[str, Any] | bool | None = Field(default=None, alias="schema")
    strict: bool | None = None


class TextFormat(_Request):
    type: Literal["text"]


class JSONObjectFormat(_Request):
    type: Literal["json_object"]


class JSONSchemaFormat(_Request):
    type: Literal["json_schema"]
    json_schema: JSONSchemaSpec


ResponseFormat = Annotated[
    TextFormat | JSONObjectFormat | JSONSchemaFormat, Field(discriminator="type")
]


ReasoningEffort = Literal["none", "minimal", "low", "medium", "high"]


class _GenerationRequest(_Request):
    """Fields shared by chat and text completions."""

    model: str
    stream: bool = False
    stream_options: StreamOptions | None = None
    keep_alive: float | str | None = None  # fireside's, as Ollama's: checked by the routes
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = None
    top_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int = 1
    logit_bias: dict[str, float] | None = None
    user: str | None = None
    # fireside's other sampling options (llama.cpp's knobs)
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    repeat_last_n: int | None = None
    typical_p: float | None = None
    mirostat: int | None = None
    mirostat_tau: float | None = None
    mirostat_eta: float | None = None
    dry_multiplier: float | None = None
    dry_base: float | None = None
    dry_allowed_length: int | None = None

    @field_validator(*SAMPLING_FIELDS)
    @classmethod
    def _sampling(cls, value: Any, info: ValidationInfo) -> Any:
        # the ranges are SamplingParams' (one definition for the library and every API)
        return None if value is None else check_option(str(info.field_name), value)

    @property
    def sampling(self) -> SamplingOptions:
        """The sampling options this request sets (the others take fireside's defaults);
        ``seed`` is reduced to llama.cpp's 32 bits (OpenAI takes any 64-bit integer)."""
        options: dict[str, Any] = {
            name: getattr(self, name) for name in SAMPLING_FIELDS if getattr(self, name) is not None
        }
        if self.seed is not None:
            options["seed"] = self.seed & SEED_MAX
        if self.logit_bias:
            options["logit_bias"] = {int(k): v for k, v in self.logit_bias.items()}
        return options  # type: ignore[return-value]

    @field_validator("n")
    @classmethod
    def _one_choice(cls, n: int) -> int:
        if n != 1:
            raise ValueError(f"only n=1 is supported, got {n}")
        return n

    @field_validator("stop")
    @classmethod
    def _stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        stops = [stop] if isinstance(stop, str) else stop or []
        if len(stops) > MAX_STOPS:
            raise ValueError(f"at most {MAX_STOPS} stop sequences are allowed, got {len(stops)}")
        if any(not s for s in stops):
            raise ValueError("stop sequences must not be empty")
        return stop

    @field_validator("logit_bias")
    @classmethod
    def _bias(cls, bias: dict[str, float] | None) -> dict[str, float] | None:
        if bias is not None and len(bias) > MAX_LOGIT_BIAS:
            raise ValueError(f"at most {MAX_LOGIT_BIAS} entries are allowed, got {len(bias)}")
        for key, value in (bias or {}).items():
            # ASCII digits only: str.isdigit() also accepts "²", which int() refuses
            if not (key.isascii() and key.isdigit() and len(key) <= 9):
                raise ValueError(f"logit_bias keys must be token ids (0-999999999), got {key!r}")
            if not -100.0 <= value <= 100.0:
                raise ValueError(f"logit_bias values must be in [-100, 100], got {value}")
        return bias

    @property
    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


class ChatCompletionRequest(_GenerationRequest):
    """``POST /v1/chat/completions``."""

    messages: list[dict[str, Any]] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)
    response_format: ResponseFormat | None = None
    docs: list[str] | None = Field(default=None, min_length=1, max_length=MAX_DOCS_PER_REQUEST)
    """fireside's extension: answer from these served collections (``references`` on
    each choice); see :mod:`fireside.server.docs_api`."""
    tools: list[dict[str, Any]] | None = None
    """Function tools, OpenAI-shaped (checked by :func:`fireside.chat.tools.check_tools`)."""
    tool_choice: str | dict[str, Any] | None = None
    """``"auto"``, ``"none"``, ``"required"`` or ``{"type": "function", "function":
    {"name": ...}}``; a forced call is grammar-constrained."""
    parallel_tool_calls: bool | None = None
    reasoning_effort: ReasoningEffort | None = None
    """Passed to templates that read it; ``"none"`` turns thinking off where the template
    can (``enable_thinking``)."""
    reasoning_format: Literal["auto", "none"] | None = None
    """fireside's (and llama-server's) extension: ``"none"`` leaves a reasoning model's
    thinking in ``content`` instead of ``reasoning_content``."""
    think: bool | None = None
    """fireside's extension: turn a thinking template's ``enable_thinking`` on or off
    (``None``: the template's default)."""
    chat_template_kwargs: dict[str, Any] | None = None
    """Extra variables for the chat template (as llama-server and vLLM take them, e.g.
    ``{"enable_thinking": false}``): at most :data:`MAX_TEMPLATE_KWARGS` names,
    :data:`MAX_TEMPLATE_KWARGS_CHARS` characters as JSON; the variables the server sets
    itself (``messages``, ``tools``, ...) cannot be replaced."""

    @field_validator("chat_template_kwargs")
    @classmethod
    def _template_kwargs(cls, kwargs: dict[str, Any] | None) -> dict[str, Any] | None:
        if kwargs is None:
            return None
        if len(kwargs) > MAX_TEMPLATE_KWARGS:
            raise ValueError(f"at most {MAX_TEMPLATE_KWARGS} variables are allowed")
        size = len(json.dumps(kwargs, ensure_ascii=False))
        if size > MAX_TEMPLATE_KWARGS_CHARS:
            raise ValueError(
                f"{size:,} characters as JSON; at most {MAX_TEMPLATE_KWARGS_CHARS:,} are allowed"
            )
        for name in kwargs:
            if not name.isidentifier():
                raise ValueError(f"{name!r} is not a template variable name")
            if name in RESERVED_TEMPLATE_VARIABLES:
                raise ValueError(f"{name!r} is set by the server and cannot be given")
        return kwargs


class CompletionRequest(_GenerationRequest):
    """``POST /v1/completions``: one prompt, as text or token ids."""

    prompt: str | list[int] | list[str] | list[list[int]]
    max_tokens: int | None = Field(default=16, ge=1)  # OpenAI's default for completions
    logprobs: int | None = Field(default=None, ge=0, le=MAX_COMPLETION_LOGPROBS)


class EmbeddingRequest(_Request):
    """``POST /v1/embeddings``."""

    model: str
    keep_alive: float | str | None = None  # fireside's, as Ollama's: checked by the routes
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None


# -- responses ---------------------------------------------------------------------------


class CompletionTokensDetails(BaseModel):
    reasoning_tokens: int = 0
    """Generated tokens inside the thinking block (its markers included)."""


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    completion_tokens_details: CompletionTokensDetails | None = None
    """Chat completions only (OpenAI's): how many of the completion's tokens reasoned."""

    @model_serializer(mode="wrap")
    def _present(self, handler: Any) -> dict[str, Any]:  # no details: leave the key out
        data: dict[str, Any] = handler(self)
        if data.get("completion_tokens_details") is None:
            data.pop("completion_tokens_details", None)
        return data


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprobEntry(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None
    top_logprobs: list[TopLogprob]


class ChatLogprobs(BaseModel):
    content: list[TokenLogprobEntry] | None


class FunctionCall(BaseModel):
    name: str
    arguments: str
    """JSON text of an object."""


class ToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    """The assistant's message: ``reasoning_content`` and ``tool_calls`` are left out of
    the JSON when the reply has none."""

    role: Literal["assistant"] = "assistant"
    content: str | None
    reasoning_content: str | None = None
    tool_calls: list[ToolCall] | None = None

    @model_serializer(mode="wrap")
    def _present(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        for key in ("reasoning_content", "tool_calls"):
            if isinstance(data, dict) and data.get(key) is None:
                data.pop(key, None)
        return data


class _Cited(BaseModel):
    """A choice that may carry ``references`` (the excerpts a grounded answer used): the
    field is left out of the JSON when the request had no ``docs``."""

    @model_serializer(mode="wrap")
    def _without_absent_references(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict) and data.get("references") is None:
            data.pop("references", None)
        return data


class ChatChoice(_Cited):
    index: int = 0
    message: ChatMessage
    logprobs: ChatLogprobs | None = None
    finish_reason: str | None
    references: list[DocReference] | None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str | None = None


class FunctionCallDelta(BaseModel):
    name: str | None = None
    arguments: str | None = None

    @model_serializer
    def _present(self) -> dict[str, Any]:
        pairs = (("name", self.name), ("arguments", self.arguments))
        return {k: v for k, v in pairs if v is not None}


class ToolCallDelta(BaseModel):
    """A piece of a streamed call: the first names it (``id``, ``type``, function
    ``name``), the others add to its ``arguments``; ``index`` says which call."""

    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionCallDelta | None = None

    @model_serializer
    def _present(self) -> dict[str, Any]:
        data: dict[str, Any] = {"index": self.index}
        for key, value in (("id", self.id), ("type", self.type)):
            if value is not None:
                data[key] = value
        if self.function is not None:
            data["function"] = self.function.model_dump()
        return data


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None

    @model_serializer
    def _present(self) -> dict[str, Any]:  # a delta names only what it carries
        data: dict[str, Any] = {
            k: v
            for k, v in (
                ("role", self.role),
                ("content", self.content),
                ("reasoning_content", self.reasoning_content),
            )
            if v is not None
        }
        if self.tool_calls:
            data["tool_calls"] = [call.model_dump() for call in self.tool_calls]
        return data


class ChatChunkChoice(_Cited):
    index: int = 0
    delta: ChatDelta
    logprobs: ChatLogprobs | None = None
    finish_reason: str | None = None
    references: list[DocReference] | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class CompletionLogprobs(BaseModel):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: str | None


class Completion(BaseModel):
    """A text completion, or (``object="text_completion"`` too) one streamed chunk of it."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: EmbeddingUsage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "fireside"
    loaded: bool = False  # fireside's: in memory now (else loaded on first use)


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
