"""The library's client of the engine: a generation as a plain iterator of text chunks.

:class:`GenerationStream` submits its request to the :class:`~fireside.generation.engine.Engine`
when it is first iterated (a stream that is never iterated never touches the model) and
then reads the request's events as the compute thread's steps produce them (the token
callback runs on the reading thread).
``break``, :meth:`GenerationStream.close` or dropping the stream cancels the request; its
slot is free at the next step.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import TYPE_CHECKING

from fireside.generation import compute
from fireside.generation.requests import Chunk, Done, Event, Request
from fireside.generation.results import GenerationResult, Timings, TokenLogprob, Usage

if TYPE_CHECKING:
    from typing_extensions import Self

    from fireside.generation.engine import Engine

TokenCallback = Callable[[int, str], object]
"""``callback(token_id, text)`` after each emitted chunk; returning ``False`` stops."""

DoneCallback = Callable[[GenerationResult], object]


class StreamRequest(Request):
    """A request whose events queue up for the thread reading its stream."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.events: deque[Event] = deque()
        self.result: GenerationResult | None = None
        self.callbacks: list[DoneCallback] = []
        self.generator: weakref.ref[Generator[str, None, None]] | None = None
        self.owner: int | None = None
        """The thread iterating the stream (set when it starts)."""
        self.engine: Engine | None = None
        self.callback: TokenCallback | None = None
        """The stream's token callback (called on the reading thread)."""
        self.at_end = False
        """The reader takes the chunks only once the generation has ended (it is woken
        once, not at every token)."""
        self._arrived = threading.Event()  # set when an event the reader waits for came
        self._ended = False  # the last event (a Done or an error) is queued
        self._abandoned: _Seen | None = None

    def emit(self, event: Event) -> None:
        if self._abandoned is not None:  # nobody reads: the end settles the result
            if not isinstance(event, Chunk):
                self._settle_abandoned(event)
            return
        self.events.append(event)  # deque.append is atomic: no lock needed
        if not isinstance(event, Chunk):
            self._ended = True
        elif self.at_end:
            return
        self._arrived.set()

    def wait(self, engine: Engine) -> None:
        """Wait for an event (with :attr:`at_end`: the last one) while the compute thread
        steps; called on the compute thread itself (from a callback of a step), step the
        engine here."""
        events = self.events

        def ready() -> bool:
            return self._ended if self.at_end else bool(events)

        if compute.here():
            engine.wait(ready)
            return
        arrived = self._arrived
        while True:
            arrived.clear()  # before looking: an event emitted after the look sets it
            if ready():
                return
            arrived.wait()

    def abandon(self, seen: _Seen) -> None:
        """The reader left while this thread runs a step (its stream was closed or
        garbage-collected from inside the step), so it cannot wait for the end: the
        result is recorded when the engine ends the (cancelled) request. Called on the
        compute thread, which is also the one that emits."""
        self._abandoned = seen
        end = next((e for e in self.events if not isinstance(e, Chunk)), None)
        self.events.clear()
        if end is not None:
            self._settle_abandoned(end)

    def _settle_abandoned(self, event: Event) -> None:
        seen = self._abandoned
        assert seen is not None
        done = event if isinstance(event, Done) else None
        if done is not None:
            done.finish_reason = "cancelled"
        self.result = _result(self, seen, done)
        _done(self)


class _Seen:
    """What the reader of a stream received: text pieces, tokens, log-probabilities."""

    __slots__ = ("logprobs", "n_tokens", "pieces")

    def __init__(self, with_logprobs: bool) -> None:
        self.pieces: list[str] = []
        self.n_tokens = 0
        self.logprobs: list[TokenLogprob] | None = [] if with_logprobs else None

    def take(self, chunk: Chunk) -> None:
        if self.logprobs is not None:
            self.logprobs.extend(chunk.logprobs)
        self.n_tokens += len(chunk.tokens)
        if chunk.text:
            self.pieces.append(chunk.text)


_open: dict[int, weakref.WeakSet[StreamRequest]] = {}  # per thread: streams left unfinished
_open_lock = threading.Lock()


def _register(request: StreamRequest) -> None:
    me = threading.get_ident()
    request.owner = me
    with _open_lock:
        _open.setdefault(me, weakref.WeakSet()).add(request)


def _unregister(request: StreamRequest) -> None:
    with _open_lock:
        streams = _open.get(request.owner or 0)
        if streams is not None:
            streams.discard(request)
            if not streams:
                del _open[request.owner or 0]


def end_unfinished(engine: Engine) -> None:
    """End the streams on ``engine`` that the calling thread started and left unfinished
    (``break`` keeps an iterator alive): a thread that waits for a slot while holding one
    it will never resume would wait forever."""
    with _open_lock:
        mine = list(_open.get(threading.get_ident(), ()))
    for request in mine:
        gen = request.generator() if request.generator is not None else None
        if gen is None or request.engine is not engine:
            continue
        try:
            gen.close()
        except ValueError:  # "generator already executing": called from its own callback
            raise RuntimeError(
                "a generation cannot start while this thread is running another one on "
                "the same model (from its callback)"
            ) from None


class GenerationStream(Iterator[str]):
    """An iterator of text chunks from one generation.

    Iterating runs the generation; ``break``, :meth:`close` or dropping the stream stops it
    at once. After the last chunk, :attr:`result` holds the :class:`GenerationResult`
    (``finish_reason``, usage, timings). A stream that is never iterated never touches the
    model. Chunks are whole characters: when the generation ends in the middle of a
    multi-byte character, its first bytes are dropped.
    """

    __slots__ = ("_gen", "_request")

    def __init__(
        self, engine: Engine, request: StreamRequest, callback: TokenCallback | None = None
    ) -> None:
        self._request = request
        request.engine = engine
        request.callback = callback
        gen = _iterate(engine, request, callback)
        request.generator = weakref.ref(gen)
        self._gen = gen

    def __iter__(self) -> GenerationStream:
        return self

    def __next__(self) -> str:
        return next(self._gen)

    def close(self) -> None:
        """Stop the generation now (finish reason ``"cancelled"`` if it was running)."""
        self._gen.close()

    def cancel(self) -> None:
        """Ask the generation to stop (thread-safe); it ends at the next step."""
        self._request.cancel()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def result(self) -> GenerationResult | None:
        """The final result, or ``None`` while the stream has not finished."""
        return self._request.result

    @property
    def finish_reason(self) -> str | None:
        result = self._request.result
        return None if result is None else result.finish_reason

    def add_done_callback(self, fn: DoneCallback) -> None:
        """Call ``fn(result)`` when the generation ends (also when broken off or cancelled).

        Not called for a stream that never started or that failed with an exception.
        """
        if self._request.result is not None:
            fn(self._request.result)
        else:
            self._request.callbacks.append(fn)

    def read_at_end(self) -> None:
        """Take the chunks only once the generation has ended (no wake-up of the reading
        thread per token; for collecting the whole text). No effect with a token callback,
        which sees each chunk as it comes."""
        if self._request.callback is None:
            self._request.at_end = True

    def drain(self) -> GenerationResult:
        """Run the generation to its end and return the result."""
        self.read_at_end()
        for _ in self:
            pass
        result = self._request.result
        if result is None:  # pragma: no cover - the generator always sets it on a clean end
            raise RuntimeError("the generation ended without a result")
        return result


def _iterate(
    engine: Engine, request: StreamRequest, callback: TokenCallback | None
) -> Generator[str, None, None]:
    events = request.events
    seen = _Seen(request.top_logprobs is not None)
    if request.cancel_reason is not None:  # cancelled before it started: nothing runs
        request.result = _result(request, seen, None)
        _done(request)
        return
    if engine.free_slots == 0:
        end_unfinished(engine)
    engine.submit(request)
    _register(request)
    done: Done | None = None
    try:
        while True:
            if not events:
                request.wait(engine)
            event = events.popleft()
            if isinstance(event, Chunk):
                seen.take(event)
                text = event.text
                if text:
                    yield text
                    if (
                        callback is not None
                        and event.tokens
                        and callback(event.tokens[-1], text) is False
                    ):
                        request.cancel("stop")  # the reply ends here: later text is dropped
                        done = _wait_done(engine, request)
                        if done is not None and len(done.tokens) > seen.n_tokens:
                            done.finish_reason = "stop"  # it ended here, not where it ran to
                        break
            elif isinstance(event, Done):
                done = event
                break
            else:
                raise event
    except GeneratorExit:
        request.cancel()
        if engine.driving_here():  # from a callback or a collector inside a step
            request.abandon(seen)
        else:
            _settle(engine, request, seen)
        raise
    except BaseException:  # e.g. KeyboardInterrupt while waiting, a callback that raised
        request.cancel()  # the compute thread ends it at its next step
        raise
    finally:
        _unregister(request)
    request.result = _result(request, seen, done)
    _done(request)


def _settle(engine: Engine, request: StreamRequest, seen: _Seen) -> None:
    """After a cancel: wait for the engine to end the request, and record its result."""
    done = _wait_done(engine, request)
    if done is not None:
        done.finish_reason = "cancelled"  # the reader left before the end: the reply ends here
    request.result = _result(request, seen, done)
    _done(request)


def _wait_done(engine: Engine, request: StreamRequest) -> Done | None:
    """Wait for a cancelled request's end; its late chunks are dropped."""
    events = request.events
    request.at_end = True
    try:
        request.wait(engine)
    except Exception:  # noqa: BLE001 - the engine is closed: the result is what we saw
        events.clear()
    done: Done | None = None
    while events:
        event = events.popleft()
        if isinstance(event, Done):
            done = event
    return done


def _result(request: StreamRequest, seen: _Seen, done: Done | None) -> GenerationResult:
    """The result of what the reader received: text, tokens and usage agree (tokens the
    engine generated after the reader stopped, whose chunks were dropped, are left out)."""
    n_prompt = len(request.prompt)
    text = "".join(seen.pieces)
    if done is None:
        return GenerationResult(
            text=text,
            tokens=[],
            finish_reason="cancelled",
            usage=Usage(n_prompt, 0, n_prompt),
            timings=Timings(0.0, 0.0, 0.0, 0.0),
            logprobs=seen.logprobs,
        )
    tokens = done.tokens[: seen.n_tokens]
    return GenerationResult(
        text=text,
        tokens=tokens,
        finish_reason=done.finish_reason,
        usage=Usage(n_prompt, len(tokens), n_prompt + len(tokens)),
        timings=done.timings or Timings(0.0, 0.0, 0.0, 0.0),
        logprobs=seen.logprobs,
    )


def _done(request: StreamRequest) -> None:
    callbacks, request.callbacks = request.callbacks, []
    result = request.result
    if result is not None:
        for fn in callbacks:
            fn(result)


# -- async ---------------------------------------------------------------------------


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


async def aiterate(stream: GenerationStream) -> AsyncIterator[str]:
    """Iterate a stream from async code: it runs in its own thread, chunks come through a
    queue. Leaving the ``async for`` (or cancelling the task) cancels the generation."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()

    def put(item: object) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            stream.cancel()

    def pump() -> None:
        try:
            for chunk in stream:
                put(chunk)
        except BaseException as error:  # noqa: BLE001 - re-raised in the awaiting task
            put(_Failure(error))
        finally:
            put(_END)

    threading.Thread(target=pump, name="fireside-generation", daemon=True).start()
    try:
        while True:
            item = await queue.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stream.cancel()  # a no-op once the generation has finished
