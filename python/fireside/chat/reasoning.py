"""Reasoning output: the thinking a model writes before its answer, split from the answer.

Thinking models wrap their reasoning in markers (``<think>...</think>`` for DeepSeek-R1,
Qwen3, QwQ, GLM, SmolLM3 and most others; ``<seed:think>``, ``<mm:think>``,
``<|START_THINKING|>``, ``[THINK]`` and Gemma 4's ``<|channel>thought`` for some).
:func:`detect_markers` finds which pair a chat template uses. Some templates open the
thinking block in the generation prompt itself (DeepSeek-R1 distills end it with
``<think>\\n``), so the reply holds only the closing marker: :func:`starts_in_prompt`
tells, from the rendered prompt.

A thinking block counts only at the very start of the reply (after whitespace), or from
the first character when the prompt opened it; a marker later in the text is content.
:func:`split_reasoning` splits a finished reply; :class:`ReasoningSplitter` splits a
stream and never lets a partial marker into either part. Both give the same result for
the same text, however the stream is cut. Reasoning is stripped of surrounding
whitespace, and so is the start of the answer after the closing marker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

ReasoningFormat = Literal["auto", "none"]
"""``"auto"``: split reasoning from content; ``"none"``: leave the reply as it is."""


@dataclass(frozen=True)
class ThinkingMarkers:
    """The texts that open and close a thinking block."""

    start: str
    end: str


THINK = ThinkingMarkers("<think>", "</think>")
"""The most common pair (DeepSeek-R1, Qwen3, QwQ, GLM, SmolLM3, Nemotron, MiniMax-M2...)."""

KNOWN_MARKERS: tuple[ThinkingMarkers, ...] = (
    ThinkingMarkers("<seed:think>", "</seed:think>"),  # ByteDance Seed-OSS
    ThinkingMarkers("<mm:think>", "</mm:think>"),  # MiniMax-M3
    ThinkingMarkers("<|START_THINKING|>", "<|END_THINKING|>"),  # Cohere Command R7B, A
    ThinkingMarkers("[THINK]", "[/THINK]"),  # Mistral Magistral / Ministral reasoning
    ThinkingMarkers("<|channel>thought", "<channel|>"),  # Gemma 4
    THINK,
)
"""Marker pairs in the order :func:`detect_markers` tries them (specific ones first)."""


@dataclass(frozen=True)
class ThinkingSwitches:
    """Which template variables turn thinking on or off, or set its effort."""

    enable_thinking: bool = False
    reasoning_effort: bool = False
    variables: tuple[str, ...] = field(default=())
    """Every such variable the template reads, by name."""


_SWITCH_NAMES = ("enable_thinking", "reasoning_effort", "thinking_budget", "thinking_mode")


def detect_markers(template_source: str) -> ThinkingMarkers | None:
    """The thinking markers a chat template writes or reads, or ``None`` if it has none."""
    for markers in KNOWN_MARKERS:
        if markers.end in template_source:
            return markers
    return None


def thinking_switches(template_source: str) -> ThinkingSwitches:
    """Which of ``enable_thinking``, ``reasoning_effort``, ``thinking_budget`` and
    ``thinking_mode`` the template reads (pass them as extra template variables)."""
    found = tuple(
        name for name in _SWITCH_NAMES if re.search(rf"\b{name}\b", template_source) is not None
    )
    return ThinkingSwitches(
        enable_thinking="enable_thinking" in found,
        reasoning_effort="reasoning_effort" in found,
        variables=found,
    )


def starts_in_prompt(prompt: str, markers: ThinkingMarkers | None) -> bool:
    """Whether the rendered ``prompt`` ends inside an open thinking block, so the reply
    begins with reasoning (DeepSeek-R1's ``<｜Assistant｜><think>\\n``)."""
    if markers is None:
        return False
    tail = prompt.rstrip()
    return tail.endswith(markers.start.rstrip())


@dataclass(frozen=True)
class ReasoningSplit:
    """A reply split in two: ``reasoning`` is ``None`` when no thinking block was seen."""

    reasoning: str | None
    content: str


def split_reasoning(
    text: str,
    markers: ThinkingMarkers | None,
    *,
    started: bool = False,
    reasoning_format: ReasoningFormat = "auto",
) -> ReasoningSplit:
    """Split a finished reply into reasoning and content.

    ``started``: the prompt opened the thinking block (:func:`starts_in_prompt`). A block
    never closed (the reply was cut short) is all reasoning.
    """
    _check_format(reasoning_format)
    if markers is None or reasoning_format == "none":
        return ReasoningSplit(None, text)
    body = text.lstrip()
    if body.startswith(markers.start):
        body = body[len(markers.start) :]
    elif not started:
        return ReasoningSplit(None, text)
    end = body.find(markers.end)
    if end < 0:
        return ReasoningSplit(body.strip(), "")
    return ReasoningSplit(body[:end].strip(), body[end + len(markers.end) :].lstrip())


@dataclass
class ReasoningDelta:
    """What one piece of a stream added to each part."""

    reasoning: str = ""
    content: str = ""


class ReasoningSplitter:
    """Split a stream of text pieces into reasoning and content as they arrive.

    Text that could still be the start of a marker (or whitespace that may turn out to
    end the reasoning) is held back until the next piece or :meth:`finish` decides it.
    The concatenated deltas equal :func:`split_reasoning` of the whole text.
    """

    def __init__(
        self,
        markers: ThinkingMarkers | None,
        *,
        started: bool = False,
        reasoning_format: ReasoningFormat = "auto",
    ) -> None:
        _check_format(reasoning_format)
        self.markers = markers
        self.started = started
        self._state = "content" if markers is None or reasoning_format == "none" else "start"
        self._buf = ""
        self._reasoning_seen = False  # reasoning text emitted (so leading ws is kept)
        self.saw_reasoning = False
        """Whether a thinking block was found (so the reply's reasoning is not ``None``)."""

    @property
    def state(self) -> str:
        """Where the stream is: ``"start"`` (a thinking block may still open),
        ``"reasoning"`` (inside it), ``"after"`` (its end marker was read) or ``"content"``
        (the answer)."""
        return self._state

    def feed(self, text: str) -> ReasoningDelta:
        """Take the next piece; return what can be emitted now."""
        if self._state == "content":
            return ReasoningDelta(content=text)
        self._buf += text
        return self._advance(final=False)

    def finish(self) -> ReasoningDelta:
        """The end of the stream: emit whatever was held back."""
        if self._state == "content":
            return ReasoningDelta()
        return self._advance(final=True)

    def _advance(self, *, final: bool) -> ReasoningDelta:
        assert self.markers is not None
        out = ReasoningDelta()
        if self._state == "start":
            body = self._buf.lstrip()
            start = self.markers.start
            if body.startswith(start):
                self._buf = body[len(start) :]
            elif not final and start.startswith(body):
                return out  # whitespace or a partial start marker: wait
            elif self.started:
                self._buf = body
            else:
                self._state = "content"
                out.content, self._buf = self._buf, ""
                return out
            self._state = "reasoning"
            self.saw_reasoning = True
        if self._state == "reasoning":
            end = self._buf.find(self.markers.end)
            if end >= 0:
                out.reasoning = self._reasoning_text(self._buf[:end].rstrip())
                self._buf = self._buf[end + len(self.markers.end) :]
                self._state = "after"
            elif final:
                out.reasoning = self._reasoning_text(self._buf.rstrip())
                self._buf = ""
                return out
            else:
                keep = _partial_suffix(self._buf, self.markers.end)
                ready = self._buf[: len(self._buf) - keep]
                stripped = ready.rstrip()
                keep += len(ready) - len(stripped)
                out.reasoning = self._reasoning_text(stripped)
                self._buf = self._buf[len(self._buf) - keep :]
                return out
        if self._state == "after":
            rest = self._buf.lstrip()
            self._buf = ""
            if rest:
                self._state = "content"
                out.content += rest
        return out

    def _reasoning_text(self, text: str) -> str:
        if not self._reasoning_seen:
            text = text.lstrip()
        if text:
            self._reasoning_seen = True
        return text


def _partial_suffix(text: str, marker: str) -> int:
    """The length of the longest end of ``text`` that is a proper start of ``marker``."""
    for n in range(min(len(text), len(marker) - 1), 0, -1):
        if marker.startswith(text[-n:]):
            return n
    return 0


def _check_format(reasoning_format: str) -> None:
    if reasoning_format not in ("auto", "none"):
        raise ValueError(f"reasoning_format must be 'auto' or 'none', got {reasoning_format!r}")
