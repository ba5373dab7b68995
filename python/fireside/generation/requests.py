"""A generation request as the engine sees it, and the events it produces.

A :class:`Request` carries its prompt tokens, its own sampler, its limits and a cancel
flag. The engine reports its progress through :meth:`Request.emit`: :class:`Chunk` events
(text, the token ids sampled since the previous chunk, their log-probabilities), then one
:class:`Done` (finish reason, usage, timings) or an exception. Clients subclass it to
route the events: a synchronous stream (:mod:`fireside.generation.stream`) or the
server's asyncio jobs.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fireside.generation.results import FinishReason, Timings, TokenLogprob, Usage

if TYPE_CHECKING:
    from fireside import _core

_ids = itertools.count(1)


@dataclass
class Chunk:
    """New text of a generation, the tokens sampled since the previous chunk, and their
    log-probabilities (when requested). ``text`` may be empty (a token that began a
    character, or text held back for a possible stop string)."""

    text: str
    tokens: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)


@dataclass
class Done:
    """The end of a generation."""

    finish_reason: FinishReason
    usage: Usage
    n_cached: int
    """Prompt tokens that were already in the slot's KV cache."""
    time_to_first_token: float | None
    """Seconds from submission to the first sampled token (``None``: none was sampled)."""
    tokens: list[int] = field(default_factory=list)
    """Every generated token (without an end-of-generation token)."""
    timings: Timings | None = None


Event = Chunk | Done | BaseException


class Request:
    """One generation: its inputs, its cancel flag, and where its events go.

    ``max_tokens`` is capped by the engine to the room the prompt leaves in a slot.
    ``top_logprobs``: ``None`` records no log-probabilities; ``n`` each token's and its
    ``n`` best alternatives. ``speculative=False`` never drafts for this request.
    ``realign=True``: the next prompt will likely continue this one (a chat's next turn),
    so once the engine is idle it evaluates the reply again as whole prompt chunks (see
    :meth:`fireside.generation.engine.Engine.realign`).
    """

    def __init__(
        self,
        prompt: Sequence[int],
        sampler: _core.Sampler,
        *,
        max_tokens: int,
        stops: Sequence[str] = (),
        top_logprobs: int | None = None,
        speculative: bool = True,
        realign: bool = False,
    ) -> None:
        self.id = next(_ids)
        self.prompt = list(prompt)
        self.sampler = sampler
        self.max_tokens = max_tokens
        self.stops = tuple(stops)
        self.top_logprobs = top_logprobs
        self.speculative = speculative
        """Whether the engine may draft tokens ahead for it (when the engine speculates;
        the output is the same either way, see :mod:`fireside.generation.speculative`)."""
        self.realign = realign
        self.submitted = time.perf_counter()
        self.cancel_reason: FinishReason | None = None
        """Set by :meth:`cancel`: the finish reason the request ends with."""
        self._on_cancel: Callable[[Request], None] | None = None

    @property
    def cancelled(self) -> bool:
        return self.cancel_reason is not None

    def cancel(self, reason: FinishReason = "cancelled") -> None:
        """Stop the generation (thread-safe): it ends at the engine's next step with
        ``reason`` (``"cancelled"``; a client that ends it on purpose may say ``"stop"``)."""
        if self.cancel_reason is None:
            self.cancel_reason = reason
            if self._on_cancel is not None:
                self._on_cancel(self)

    def emit(self, event: Event) -> None:
        """Receive an event (called on the compute thread, during a step)."""
        raise NotImplementedError
