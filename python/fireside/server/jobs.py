"""A generation request as the engine sees it, and how its results reach the event loop.

A :class:`Job` is created on the event loop with its prompt tokens and sampler, handed to
the engine, and read back as an async iterator of :class:`Chunk` events ending in a
:class:`Done` (or an exception). The engine's scheduler thread never touches asyncio
objects directly: it calls :meth:`Job.emit`, and an :class:`Outbox` hands everything one
engine step produced to each event loop with a single ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fireside.generation.results import FinishReason, TokenLogprob, Usage

if TYPE_CHECKING:
    from fireside import _core

_ids = itertools.count(1)


@dataclass
class Chunk:
    """New text of a generation, and the log-probabilities of the tokens sampled since the
    previous chunk (when requested)."""

    text: str
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


Event = Chunk | Done | BaseException


class Outbox:
    """The events of one engine step, delivered to each event loop in one call.

    Every ``call_soon_threadsafe`` wakes the loop's thread; on a machine whose cores all run
    llama.cpp's threads, each wake-up stalls a decode, so the engine wakes each loop once
    per step instead of once per token (scheduler thread only).
    """

    def __init__(self) -> None:
        self._pending: dict[asyncio.AbstractEventLoop, list[tuple[Job, Event]]] = {}

    def put(self, job: Job, event: Event) -> None:
        self._pending.setdefault(job._loop, []).append((job, event))

    def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for loop, items in pending.items():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                for job, _ in items:
                    job._cancelled.set()


def _deliver(items: list[tuple[Job, Event]]) -> None:
    for job, event in items:
        job._queue.put_nowait(event)


class Job:
    """One generation: its inputs, its cancellation flag and its output queue.

    Must be created inside a running event loop (the loop the results are delivered to).
    """

    def __init__(
        self,
        prompt: Sequence[int],
        sampler: _core.Sampler,
        *,
        max_tokens: int,
        stops: Sequence[str] = (),
        top_logprobs: int | None = None,
    ) -> None:
        self.id = next(_ids)
        self.prompt = list(prompt)
        self.sampler = sampler
        self.max_tokens = max_tokens
        self.stops = tuple(stops)
        self.top_logprobs = top_logprobs
        """``None``: no log-probabilities; ``n``: each token's and the ``n`` best."""
        self.submitted = time.perf_counter()
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._cancelled = threading.Event()
        self._on_cancel: Callable[[], None] | None = None
        self._outbox: Outbox | None = None
        self.result: Done | None = None

    # -- engine side (scheduler thread) ------------------------------------------------

    def emit(self, event: Event) -> None:
        """Deliver an event to the reader (thread-safe; dropped once the loop is closed):
        through the engine's outbox once it has one (:meth:`use_outbox`), else at once."""
        if self._outbox is not None:
            self._outbox.put(self, event)
            return
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self._cancelled.set()

    def use_outbox(self, outbox: Outbox) -> None:
        """Send further events through ``outbox`` (flushed by the engine after each step)."""
        self._outbox = outbox

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    # -- reader side (event loop) ------------------------------------------------------

    def cancel(self) -> None:
        """Stop the generation: its slot is freed at the engine's next step (thread-safe)."""
        if not self._cancelled.is_set():
            self._cancelled.set()
            if self._on_cancel is not None:
                self._on_cancel()

    async def events(self) -> AsyncIterator[Chunk]:
        """The chunks of text until the end; :attr:`result` is then set. Leaving the loop
        early (or the task being cancelled) cancels the job."""
        try:
            while True:
                event = await self._queue.get()
                if isinstance(event, Chunk):
                    yield event
                elif isinstance(event, Done):
                    self.result = event
                    return
                else:
                    raise event
        finally:
            if self.result is None:
                self.cancel()
