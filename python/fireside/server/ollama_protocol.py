"""Request and response bodies in the shapes of Ollama's REST API (``/api/*``).

Field names, defaults and meanings follow Ollama's: ``stream`` defaults to true, sampling
knobs live in ``options`` (``num_predict`` is the completion budget, ``num_ctx`` the
context), durations are integer nanoseconds and times RFC 3339 strings. Requests reject
unknown fields, and an option that fireside cannot honour is an error naming it rather
than silently ignored: Ollama's load-time options (``num_gpu``, ``num_thread``, ...) are
set once for the whole server by ``fireside serve``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from fireside.generation.sampling import check_option
from fireside.server.protocol import MAX_STOPS, MAX_TOP_LOGPROBS

LOAD_OPTIONS = frozenset(
    {
        "numa",
        "num_batch",
        "num_gpu",
        "main_gpu",
        "low_vram",
        "f16_kv",
        "logits_all",
        "vocab_only",
        "use_mmap",
        "use_mlock",
        "embedding_only",
        "num_thread",
    }
)
"""Ollama's options that set how a model is loaded: fireside sets them per server."""

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def keep_alive_seconds(value: float | str | None) -> float | None:
    """Ollama's ``keep_alive`` in seconds: a number of seconds or a Go duration
    (``"5m"``, ``"1h30m"``, ``"-1"``); ``None`` when not given, negative for "forever".

    Raises ValueError for anything else.
    """
    if value is None or isinstance(value, (int, float)):
        if isinstance(value, bool):
            raise ValueError(f"keep_alive must be a duration or a number, got {value!r}")
        return None if value is None else float(value)
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    total, pos = 0.0, 0
    for match in _DURATION_PART.finditer(body):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not body or pos != len(body):
        raise ValueError(
            f"keep_alive {value!r} is not a duration: give seconds (300) or a duration "
            "such as '5m', '1h30m' or '-1' (forever)"
        )
    return sign * total


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


SAMPLING_OPTIONS = (
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "typical_p",
    "repeat_penalty",
    "repeat_last_n",
    "presence_penalty",
    "frequency_penalty",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
)
"""The :class:`Options` that are :class:`~fireside.generation.sampling.SamplingParams`
options of the same name, validated by it (``seed`` is not: below 0 it means random)."""


class Options(_Request):
    """``options``: the sampling knobs Ollama takes per request.

    ``num_predict``: tokens to generate (``-1``: until the context is full; ``-2``: the
    same, as Ollama's "fill the context"); ``num_ctx``: the tokens prompt plus completion
    may use (at most the server's slot context); ``seed`` below 0: a random seed.
    ``tool_choice`` is fireside's extension (Ollama has none; ``options`` is the one
    field its clients pass through as given): OpenAI's ``"auto"``, ``"none"``,
    ``"required"`` or ``{"type": "function", "function": {"name": ...}}``, for
    ``/api/chat`` with ``tools``; a forced call is grammar-constrained.
    """

    # the sampling options' ranges are SamplingParams' (checked by check_option below)
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    typical_p: float | None = None
    seed: int | None = None
    num_predict: int | None = Field(default=None, ge=-2)
    num_ctx: int | None = Field(default=None, ge=1)
    stop: list[str] | str | None = None
    repeat_penalty: float | None = None
    repeat_last_n: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    mirostat: int | None = None
    mirostat_tau: float | None = None
    mirostat_eta: float | None = None
    tool_choice: str | dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _known(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if key in LOAD_OPTIONS:
                    raise ValueError(
                        f"'{key}' sets how the model is loaded, which fireside sets once for "
                        "the whole server (fireside serve --threads, --ctx-size, ...); "
                        "leave it out of the request"
                    )
                if key not in cls.model_fields:
                    known = ", ".join(sorted(cls.model_fields))
                    raise ValueError(f"'{key}' is not an option fireside supports ({known})")
        return data

    @field_validator(*SAMPLING_OPTIONS)
    @classmethod
    def _sampling(cls, value: Any, info: ValidationInfo) -> Any:
        # one definition of the ranges for the library and every API (SamplingParams')
        return None if value is None else check_option(str(info.field_name), value)

    @field_validator("num_predict")
    @classmethod
    def _predict(cls, value: int | None) -> int | None:
        if value == 0:
            raise ValueError("num_predict must be at least 1 (or -1: until the context is full)")
        return value

    @field_validator("stop")
    @classmethod
    def _stops(cls, stop: list[str] | str | None) -> list[str] | str | None:
        stops = [stop] if isinstance(stop, str) else stop or []
        if len(stops) > MAX_STOPS:
            raise ValueError(f"at most {MAX_STOPS} stop sequences are allowed, got {len(stops)}")
        if any(not s for s in stops):
            raise ValueError("stop sequences must not be empty")
        return stop


Format = Literal["", "json"] | dict[str, Any] | None


class _Generation(_Request):
    model: str = Field(min_length=1)
    stream: bool = True
    format: Format = None
    options: Options | None = None
    keep_alive: float | str | None = None
    think: bool | Literal["low", "medium", "high"] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)

    @field_validator("keep_alive")
    @classmethod
    def _keep_alive(cls, value: float | str | None) -> float | str | None:
        keep_alive_seconds(value)
        return value


class ToolCallFunction(BaseModel):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolCall(BaseModel):
    function: ToolCallFunction


class Message(_Request):
    """One chat message as Ollama sends it."""

    role: str
    content: str = ""
    images: list[str] | None = None
    thinking: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_name: str | None = None


class ChatRequest(_Generation):
    """``POST /api/chat``."""

    messages: list[Message] = Field(default_factory=list)
    tools: list[dict[str, Any]] | None = None


class GenerateRequest(_Generation):
    """``POST /api/generate``."""

    prompt: str = ""
    suffix: str | None = None
    system: str | None = None
    template: str | None = None
    context: list[int] | None = None
    raw: bool = False
    images: list[str] | None = None


class EmbedRequest(_Request):
    """``POST /api/embed``: one text or a list; vectors are L2-normalized."""

    model: str = Field(min_length=1)
    input: str | list[str] = ""
    truncate: bool = True
    options: Options | None = None
    keep_alive: float | str | None = None
    dimensions: int | None = Field(default=None, ge=1)


class EmbeddingsRequest(_Request):
    """``POST /api/embeddings`` (Ollama's older endpoint): one text, a raw vector."""

    model: str = Field(min_length=1)
    prompt: str = ""
    options: Options | None = None
    keep_alive: float | str | None = None


class _Named(_Request):
    """A request naming a model as ``model`` (or, in older clients, ``name``)."""

    model: str | None = None
    name: str | None = None

    @property
    def target(self) -> str:
        value = (self.model or self.name or "").strip()
        if not value:
            raise ValueError("no model given")
        return value


class ShowRequest(_Named):
    """``POST /api/show``."""

    verbose: bool = False


class PullRequest(_Named):
    """``POST /api/pull``."""

    insecure: bool = False
    stream: bool = True


class DeleteRequest(_Named):
    """``DELETE /api/delete``."""


# -- responses -----------------------------------------------------------------------------


class _Response(BaseModel):
    def json_line(self) -> str:
        """One NDJSON line (``None`` fields left out)."""
        return self.model_dump_json(exclude_none=True) + "\n"


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int]


class Logprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int]
    top_logprobs: list[TopLogprob]


class Timing(_Response):
    """The statistics on a final (``done``) answer, durations in nanoseconds."""

    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None
    prompt_eval_duration: int | None = None
    eval_count: int | None = None
    eval_duration: int | None = None


class AssistantMessage(BaseModel):
    """The answer: ``thinking`` (a reasoning model's) and ``tool_calls`` are left out of
    the JSON when there are none (answers are dumped without ``None`` fields)."""

    role: Literal["assistant"] = "assistant"
    content: str
    thinking: str | None = None
    tool_calls: list[ToolCall] | None = None


class ChatResponse(Timing):
    model: str
    created_at: str
    message: AssistantMessage
    done: bool
    done_reason: str | None = None
    logprobs: list[Logprob] | None = None


class GenerateResponse(Timing):
    model: str
    created_at: str
    response: str
    thinking: str | None = None
    done: bool
    done_reason: str | None = None
    context: list[int] | None = None
    logprobs: list[Logprob] | None = None


class EmbedResponse(_Response):
    model: str
    embeddings: list[list[float]]
    total_duration: int
    load_duration: int
    prompt_eval_count: int


class EmbeddingsResponse(_Response):
    embedding: list[float]


class Details(BaseModel):
    parent_model: str = ""
    format: str = "gguf"
    family: str = ""
    families: list[str] | None = None
    parameter_size: str = ""
    quantization_level: str = ""


class ModelTag(BaseModel):
    name: str
    model: str
    modified_at: str
    size: int
    digest: str
    details: Details


class TagList(_Response):
    models: list[ModelTag]


class RunningModel(BaseModel):
    name: str
    model: str
    size: int
    digest: str
    details: Details
    expires_at: str
    size_vram: int
    context_length: int
    in_flight: int | None = None  # fireside's: requests it serves now
    loaded_at: str | None = None  # fireside's


class RunningList(_Response):
    models: list[RunningModel]


class ShowResponse(_Response):
    modelfile: str
    parameters: str
    template: str
    details: Details
    model_info: dict[str, Any]
    capabilities: list[str]
    modified_at: str
    license: str = ""


class Progress(_Response):
    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None


class ErrorLine(_Response):
    """The last line of a stream that failed after it started."""

    error: str


class Version(_Response):
    version: str
