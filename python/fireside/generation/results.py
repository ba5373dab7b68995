"""What a finished generation reports: text, tokens, why it ended, usage and timings (and,
for a chat reply, its reasoning and tool calls)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

FinishReason = Literal["stop", "length", "eos", "cancelled"]
"""``stop``: a stop string matched; ``length``: ``max_tokens`` reached; ``eos``: the model
ended its turn; ``cancelled``: the caller stopped it."""

OPENAI_FINISH_REASON: dict[str, str] = {
    "eos": "stop",
    "stop": "stop",
    "length": "length",
    "cancelled": "cancelled",
}
"""The one mapping to OpenAI's ``finish_reason`` (``Model.chat`` and the server): the end
of the turn and a stop string are both ``"stop"``; a cancelled generation, which OpenAI has
no word for, is ``"cancelled"`` (the server only reports it to a client that is still
there, which in practice never happens: it cancels when the client goes away)."""


@dataclass
class Usage:
    """Token counts, in the shape of OpenAI's ``usage`` object."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass
class Timings:
    """Wall-clock timings of one generation, in milliseconds."""

    prompt_ms: float
    """Evaluating the prompt (the part not already in the KV cache)."""
    generation_ms: float
    """Sampling and decoding the completion."""
    time_to_first_token_ms: float
    """From the call until the first completion token was sampled."""
    tokens_per_second: float
    """Completion tokens per second of ``generation_ms``."""
    n_threads: int = 0
    """CPU threads generating when the generation ended (``n_threads="auto"`` may change
    them while it runs; see :mod:`fireside.generation.threads`)."""
    n_threads_batch: int = 0
    """CPU threads that evaluated the prompt."""
    draft_tokens: int = 0
    """Tokens drafted ahead by speculative decoding (see
    :mod:`fireside.generation.speculative`)."""
    accepted_tokens: int = 0
    """Drafted tokens the model confirmed (each saved one decode step)."""


@dataclass
class TokenLogprob:
    """A sampled token with its log-probability and the most likely alternatives."""

    token: int
    text: str
    logprob: float
    top: list[tuple[str, float]]
    """``(text, logprob)`` of the most likely tokens at this position, best first."""


@dataclass
class GenerationResult:
    """The outcome of a generation: the text and why it ended."""

    text: str
    tokens: list[int]
    finish_reason: FinishReason
    usage: Usage
    timings: Timings
    logprobs: list[TokenLogprob] | None = None
    references: list[Any] = field(default_factory=list)
    """The document excerpts the reply was grounded on, numbered as the prompt showed them
    (:class:`fireside.chat.grounding.Reference`; empty unless the chat used ``docs=``)."""
    reasoning: str | None = None
    """A chat reply's thinking, split from ``text`` (``None``: the reply had none; see
    :mod:`fireside.chat.reasoning`)."""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    """A chat reply's tool calls, OpenAI-shaped (``id``, ``type``, ``function`` with
    ``name`` and ``arguments`` as JSON text); ``text`` is then what was said besides."""
