"""A generation request of the server, and how its results reach the event loop.

A :class:`Job` is a :class:`~fireside.generation.requests.Request` created on the event
loop; it is read back as an async iterator of :class:`Chunk` events ending in a
:class:`Done` (or an exception). The compute thread that runs the steps never touches asyncio
objects directly: it calls :meth:`Job.emit`, and an :class:`Outbox` hands everything one
engine step produced to each event loop with a single ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from fireside.generation.requests import Chunk, Done, Event, Request

if TYPE_CHECKING:
    from fireside import _core

__all__ = ["Chunk", "Done", "Event", "Job", "Outbox"]


class Outbox:
    """The events of one engine step, delivered to each event loop in one call.

    Every ``call_soon_threadsafe`` wakes the loop's thread; on a machine whose cores all run
    llama.cpp's threads, each wake-up stalls a decode, so the engine wakes each loop once
    per step instead of once per token.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[asyncio.AbstractEventLoop, list[tuple[Job, Event]]] = {}

    def put(self, job: Job, event: Event) -> None:
        with self._lock:
            self._pending.setdefault(job._loop, []).append((job, event))

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for loop, items in pending.items():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                for job, _ in items:
                    job.cancel()


def _deliver(items: list[tuple[Job, Event]]) -> None:
    for job, event in items:
        job._queue.put_nowait(event)


class Job(Request):
    """One generation of the server: a request whose events go to an event loop.

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
        realign: bool = False,
    ) -> None:
        super().__init__(
            prompt,
            sampler,
            max_tokens=max_tokens,
            stops=stops,
            top_logprobs=top_logprobs,
            realign=realign,
        )
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._outbox: Outbox | None = None
        self.result: Done | None = None

    # -- engine side -------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        """Deliver an event to the reader (thread-safe; dropped once the loop is closed):
        through the engine's outbox once it has one (:meth:`use_outbox`), else at once."""
        if self._outbox is not None:
            self._outbox.put(self, event)
            return
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.cancel()

    def use_outbox(self, outbox: Outbox) -> None:
        """Send further events through ``outbox`` (flushed by the engine after each step)."""
        self._outbox = outbox

    # -- reader side (event loop) ------------------------------------------------------

    async def events(self) -> AsyncIterator[Chunk]:
        """The chunks of text (or log-probabilities) until the end; :attr:`result` is then
        set. Leaving the loop early (or the task being cancelled) cancels the job."""
        try:
            while True:
                event = await self._queue.get()
                if isinstance(event, Chunk):
                    if event.text or event.logprobs:
                        yield event
                elif isinstance(event, Done):
                    self.result = event
                    return
                else:
                    raise event
        finally:
            if self.result is None:
                self.cancel()
