"""A generation request of the server, and how its results reach the event loop.

A :class:`Job` is a :class:`~fireside.generation.requests.Request` created on the event
loop; it is read back as an async iterator of :class:`Chunk` events ending in a
:class:`Done` (or an exception). The compute thread that runs the steps never touches asyncio
objects directly: it calls :meth:`Job.emit`, and an :class:`Outbox` hands everything one
engine step produced to each event loop with a single wake-up.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import weakref
from collections.abc import AsyncIterator, Sequence

from fireside import _core
from fireside.generation.requests import Chunk, Done, Event, Request

__all__ = ["Chunk", "Done", "Event", "Job", "Outbox"]


class Outbox:
    """The events of one engine step, delivered to each event loop in one wake-up.

    Every wake-up of a loop's thread costs a core that llama.cpp's threads compute on, so
    the engine wakes each loop once per step instead of once per token. It also wakes it
    without giving up the GIL (:class:`_Inbox`), so that the loop sends the step's tokens
    while the next step decodes, not before it starts.
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
            inbox = _inboxes.get(loop)
            if inbox is not None and inbox.post(items):
                continue
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                for job, _ in items:
                    job.cancel()


def _deliver(items: list[tuple[Job, Event]]) -> None:
    for job, event in items:
        job._queue.put_nowait(event)


class _SocketPair:
    """Two connected non-blocking sockets."""

    def __init__(self) -> None:
        self.reader, self.writer = socket.socketpair()
        self.reader.setblocking(False)
        self.writer.setblocking(False)

    def close(self) -> None:
        self.reader.close()
        self.writer.close()


class _Inbox:
    """Where the engine leaves one event loop's events: a list, and a socket pair whose
    byte, sent by :func:`fireside._core._send_wakeup` (which keeps the GIL, where a socket
    send from Python releases it and the woken loop would take it), wakes the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)  # the loop holds this inbox (its reader), not back
        self._lock = threading.Lock()
        self._items: list[tuple[Job, Event]] = []
        self.sockets = _SocketPair()
        try:
            loop.add_reader(self.sockets.reader.fileno(), self._drain)
        except NotImplementedError:  # a loop that cannot watch sockets
            self.sockets.close()
            raise

    def post(self, items: list[tuple[Job, Event]]) -> bool:
        """Leave ``items`` for the loop; False when it is closed (they are not taken)."""
        loop = self._loop()
        if loop is None or loop.is_closed():
            return False
        with self._lock:
            wake = not self._items  # else a wake-up is on its way already
            self._items.extend(items)
        if wake:
            try:
                _core._send_wakeup(self.sockets.writer.fileno())  # False: the buffer holds some
            except OSError:  # closed with the loop meanwhile: nobody is listening any more
                with self._lock:
                    self._items.clear()
                return False
        return True

    def _drain(self) -> None:
        try:
            self.sockets.reader.recv(4096)
        except BlockingIOError:
            pass
        with self._lock:  # after reading: an item left meanwhile is taken now or wakes again
            items, self._items = self._items, []
        _deliver(items)


_inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Inbox] = weakref.WeakKeyDictionary()
"""Each event loop's inbox, made by the first job created in it; its sockets are closed
when the loop is collected."""


def _inbox_of(loop: asyncio.AbstractEventLoop) -> None:
    """Give ``loop`` an inbox, unless it has one or cannot watch a socket (then events
    come by ``call_soon_threadsafe``). Called on the loop's thread."""
    if loop in _inboxes:
        return
    try:
        inbox = _Inbox(loop)
    except NotImplementedError:  # e.g. Windows' proactor loop
        return
    _inboxes[loop] = inbox
    weakref.finalize(loop, inbox.sockets.close)


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
        _inbox_of(self._loop)
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
