"""A chat reply as it streams: the answer's text chunks, with its reasoning and tool calls.

:class:`ChatStream` wraps the engine's :class:`~fireside.generation.stream.GenerationStream`
and reads it through a :class:`~fireside.chat.reply.ReplyReader`. Iterating it yields the
answer's text only (thinking and call markup are held back and split off);
:meth:`ChatStream.deltas` yields every :class:`~fireside.chat.reply.ReplyDelta` (answer,
reasoning and tool-call deltas; with ``stream_calls``, Hermes/Qwen calls in pieces as
:meth:`~fireside.chat.reply.ChatPlan.reader` says). When it ends, :attr:`ChatStream.result` is the
generation's result whose ``text`` is the answer, with ``reasoning`` and ``tool_calls``.
A stream that is broken off or cancelled ends with what was generated so far.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING

from fireside.chat.reply import ChatPlan, ReplyDelta

if TYPE_CHECKING:
    from typing_extensions import Self

    from fireside.generation.results import GenerationResult
    from fireside.generation.stream import GenerationStream


class ChatStream(Iterator[str]):
    """The answer text of a chat reply, chunk by chunk (see the module docs)."""

    def __init__(
        self, gen: GenerationStream, plan: ChatPlan, *, stream_calls: bool = False
    ) -> None:
        self._gen = gen
        self.plan = plan
        self._reader = plan.reader(stream_calls=stream_calls)
        self._result: GenerationResult | None = None
        self._callbacks: list[Callable[[GenerationResult], object]] = []
        self._events = self._run()

    def _run(self) -> Generator[ReplyDelta, None, None]:
        try:
            for piece in self._gen:
                delta = self._reader.feed(piece)
                if delta:
                    yield delta
        except GeneratorExit:
            self._gen.close()
            self._settle()
            raise
        except BaseException:
            self._gen.close()
            raise
        last = self._settle()
        if last:
            yield last

    def _settle(self) -> ReplyDelta:
        base = self._gen.result
        if base is None or self._result is not None:
            return ReplyDelta()
        last = self._reader.finish()
        reply = self._reader.reply
        assert reply is not None
        self._result = dataclasses.replace(
            base, text=reply.content, reasoning=reply.reasoning, tool_calls=reply.tool_calls
        )
        callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            fn(self._result)
        return last

    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> str:
        for delta in self._events:
            if delta.content:
                return delta.content
        raise StopIteration

    def deltas(self) -> Iterator[ReplyDelta]:
        """Every piece of the reply: answer text, reasoning text and tool-call deltas (the
        same stream as iterating: read it one way only)."""
        return self._events

    def close(self) -> None:
        """Stop the generation now (finish reason ``"cancelled"`` if it was running)."""
        self._events.close()

    def cancel(self) -> None:
        """Ask the generation to stop (thread-safe); it ends at the next step."""
        self._gen.cancel()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def result(self) -> GenerationResult | None:
        """The final result (``text`` is the answer), or ``None`` while it runs."""
        return self._result

    @property
    def finish_reason(self) -> str | None:
        return None if self._result is None else self._result.finish_reason

    def add_done_callback(self, fn: Callable[[GenerationResult], object]) -> None:
        """Call ``fn(result)`` when the reply ends (also when broken off or cancelled);
        not for a stream that never started or that failed with an exception."""
        if self._result is not None:
            fn(self._result)
        else:
            self._callbacks.append(fn)

    def drain(self) -> GenerationResult:
        """Run the reply to its end and return the result."""
        self._gen.read_at_end()
        for _ in self._events:
            pass
        if self._result is None:  # pragma: no cover - a clean end always settles
            raise RuntimeError("the reply ended without a result")
        return self._result
