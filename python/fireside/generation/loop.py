"""The token loop: evaluate a prompt (reusing the KV cache prefix), then sample and decode
one token at a time in a plain Python generator, in the style of mlx-lm's ``generate_step``.

:class:`ContextRunner` owns one single-sequence :class:`fireside._core.Context` and runs
one generation at a time on it: a generation holds the runner's lock from its first token
until it ends, is closed or is garbage-collected, so generations started from several
threads are serialised (each waits its turn). A thread that starts a generation while a
stream it left unfinished still holds the model (``break`` keeps the iterator alive)
ends that stream first (its finish reason becomes ``"cancelled"``). The runner remembers which tokens its KV
cache holds; a new prompt keeps the longest common prefix and decodes only the rest.

:class:`GenerationStream` is what a streaming generation returns: an iterator of text
chunks that also carries the final :class:`GenerationResult`. Per-token Python work is
kept to a few calls: sample, end-of-generation check, detokenize, stop check, decode.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from fireside.errors import ClosedError, ContextFullError, GenerationCancelled
from fireside.generation.detokenizer import StreamingDetokenizer
from fireside.generation.results import (
    FinishReason,
    GenerationResult,
    Timings,
    TokenLogprob,
    Usage,
)
from fireside.generation.stops import StopHoldback
from fireside.generation.threads import ThreadPolicy

if TYPE_CHECKING:
    from typing_extensions import Self

    from fireside import _core

TokenCallback = Callable[[int, str], object]
"""``callback(token_id, text)`` after each emitted chunk; returning ``False`` stops."""

DoneCallback = Callable[[GenerationResult], object]


@dataclass
class CacheStats:
    """What a runner evaluated; the proof that prompt prefixes are reused.

    Totals count every generation since the model was loaded; ``last_*`` describe the most
    recent one. ``*_evaluated`` tokens went through ``decode``; ``*_reused`` were already
    in the KV cache and were not evaluated again.
    """

    n_generations: int = 0
    n_prompt_tokens: int = 0
    n_prompt_tokens_evaluated: int = 0
    n_prompt_tokens_reused: int = 0
    n_generated_tokens: int = 0
    last_prompt_tokens: int = 0
    last_prompt_tokens_evaluated: int = 0
    last_prompt_tokens_reused: int = 0


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # binary search on prefix equality: O(n log n) list compares in C
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


class _Run:
    """Shared state of one generation: its cancel flag, result and done callbacks.

    The generator and the :class:`GenerationStream` both point here (and the generator
    never points at the stream), so dropping the stream frees the generator at once.
    """

    __slots__ = ("callbacks", "cancelled", "generator", "result", "runner")

    def __init__(self, runner: ContextRunner) -> None:
        self.runner = runner
        self.generator: weakref.ref[Generator[str, None, None]] | None = None
        self.cancelled = False
        self.result: GenerationResult | None = None
        self.callbacks: list[DoneCallback] = []

    def cancel(self) -> None:
        self.cancelled = True
        self.runner._interrupt(self)


class GenerationStream(Iterator[str]):
    """An iterator of text chunks from one generation.

    Iterating runs the generation (holding the model); ``break``, :meth:`close` or dropping
    the stream stops decoding at once. After the last chunk, :attr:`result` holds the
    :class:`GenerationResult` (``finish_reason``, usage, timings). A stream that is never
    iterated never touches the model. Chunks are whole characters: when the generation
    ends in the middle of a multi-byte character, its first bytes are dropped.
    """

    __slots__ = ("_gen", "_run")

    def __init__(self, gen: Iterator[str], run: _Run) -> None:
        self._gen = gen
        self._run = run

    def __iter__(self) -> GenerationStream:
        return self

    def __next__(self) -> str:
        return next(self._gen)

    def close(self) -> None:
        """Stop the generation now (finish reason ``"cancelled"`` if it was running)."""
        self._gen.close()  # type: ignore[attr-defined]

    def cancel(self) -> None:
        """Ask the generation to stop (thread-safe); it ends at the next token."""
        self._run.cancel()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def result(self) -> GenerationResult | None:
        """The final result, or ``None`` while the stream has not finished."""
        return self._run.result

    @property
    def finish_reason(self) -> str | None:
        result = self._run.result
        return None if result is None else result.finish_reason

    def add_done_callback(self, fn: DoneCallback) -> None:
        """Call ``fn(result)`` when the generation ends (also when broken off or cancelled).

        Not called for a stream that never started or that failed with an exception.
        """
        if self._run.result is not None:
            fn(self._run.result)
        else:
            self._run.callbacks.append(fn)

    def drain(self) -> GenerationResult:
        """Run the generation to its end and return the result."""
        for _ in self:
            pass
        result = self._run.result
        if result is None:  # pragma: no cover - the generator always sets it on a clean end
            raise RuntimeError("the generation ended without a result")
        return result


class ContextRunner:
    """Runs generations on one single-sequence context, one at a time, reusing its cache.

    ``policy`` chooses the context's thread counts (see :mod:`fireside.generation.threads`;
    default: the context's counts, fixed): each generated token's decode time is fed to
    it, and ``set_threads`` is called when it changes a count.
    """

    def __init__(
        self, model: _core.Model, ctx: _core.Context, *, policy: ThreadPolicy | None = None
    ) -> None:
        self.model = model
        self.ctx = ctx
        self.policy = policy or ThreadPolicy(ctx.n_threads, n_threads_batch=ctx.n_threads_batch)
        self.n_ctx = ctx.n_ctx
        self.n_batch = ctx.n_batch
        self._lock = threading.Lock()  # held by the running generation
        self._owner: int | None = None  # thread that holds _lock
        self._guard = threading.Lock()  # protects _active
        self._active: _Run | None = None
        self._cached: list[int] = []  # tokens in the KV cache, positions 0..n-1
        self._stats = CacheStats()

    @property
    def stats(self) -> CacheStats:
        """A snapshot of the evaluation counters."""
        return replace(self._stats)

    @property
    def cached_tokens(self) -> list[int]:
        """The tokens the KV cache holds now (a copy)."""
        return list(self._cached)

    def stream(
        self,
        prompt: list[int],
        sampler: _core.Sampler,
        *,
        max_tokens: int,
        stops: Sequence[str] = (),
        top_logprobs: int | None = None,
        callback: TokenCallback | None = None,
    ) -> GenerationStream:
        """A stream generating up to ``max_tokens`` tokens after ``prompt``.

        The caller has checked that the prompt is non-empty and that prompt plus
        ``max_tokens`` fit the context. ``top_logprobs`` (when not ``None``) records each
        token's log-probability and that many alternatives.
        """
        run = _Run(self)
        gen = _generate(self, run, prompt, sampler, max_tokens, stops, top_logprobs, callback)
        run.generator = weakref.ref(gen)
        return GenerationStream(gen, run)

    def cancel(self) -> None:
        """Cancel the generation running now, if any (thread-safe)."""
        with self._guard:
            run = self._active
        if run is not None:
            run.cancel()

    def reset(self) -> None:
        """Forget the KV cache (waits for a running generation to end; ends a stream
        this thread left unfinished)."""
        self._acquire(_Run(self))
        try:
            self.ctx.memory_clear()
            self._cached.clear()
        finally:
            self._release()

    # -- used by the generator -------------------------------------------------------

    def _interrupt(self, run: _Run) -> None:
        with self._guard:
            if self._active is run:
                self.ctx.cancel()

    def _acquire(self, run: _Run) -> None:
        me = threading.get_ident()
        if self._owner == me:
            # This thread left a stream unfinished (``break`` keeps the iterator alive):
            # it can never resume it while waiting here, so end it, as the docs say.
            with self._guard:
                old = self._active
            gen = old.generator() if old is not None and old.generator is not None else None
            try:
                if gen is not None:
                    gen.close()
            except ValueError:  # "generator already executing": started from its callback
                gen = None
            if gen is None or self._owner == me:
                raise RuntimeError(
                    "a generation cannot start while this thread is running another one on "
                    "the same model (from its callback)"
                )
        self._lock.acquire()
        self._owner = me
        with self._guard:
            self._active = run
            self.ctx.reset_cancel()

    def _release(self) -> None:
        with self._guard:
            self._active = None
        self._owner = None
        self._lock.release()

    def _prefill(self, prompt: list[int]) -> tuple[int, int]:
        """Make the cache hold ``prompt``; returns (tokens reused, tokens evaluated).

        At least the last prompt token is always decoded, for its logits. Raises
        GenerationCancelled (the cache then holds the chunks decoded so far).
        """
        cached = self._cached
        n_keep = common_prefix_length(cached, prompt)
        if n_keep == len(prompt):
            n_keep -= 1
        if n_keep < len(cached):
            if not self.ctx.seq_rm(0, n_keep, -1):  # e.g. a recurrent model's state
                self.ctx.memory_clear()
                n_keep = 0
            del cached[n_keep:]
        stats = self._stats
        stats.n_generations += 1
        stats.n_prompt_tokens += len(prompt)
        stats.last_prompt_tokens = len(prompt)
        stats.n_prompt_tokens_reused += n_keep
        stats.last_prompt_tokens_reused = n_keep
        stats.last_prompt_tokens_evaluated = 0
        decode, step = self.ctx.decode, self.n_batch
        for start in range(n_keep, len(prompt), step):
            chunk = prompt[start : start + step]
            decode(chunk)
            cached.extend(chunk)
            stats.n_prompt_tokens_evaluated += len(chunk)
            stats.last_prompt_tokens_evaluated += len(chunk)
        return n_keep, len(prompt) - n_keep

    def _forget(self) -> None:
        """After an unexpected failure, make no assumption about the cache."""
        self._cached.clear()
        with contextlib.suppress(ClosedError):  # a closed context has nothing to keep in sync
            self.ctx.memory_clear()


def _piece_text(model: _core.Model, token: int) -> str:
    return model.token_to_piece(token).decode("utf-8", errors="replace")


def _token_logprob(ctx: _core.Context, model: _core.Model, token: int, top_n: int) -> TokenLogprob:
    logprob, top = ctx.logprobs(-1, token, top_n)
    alternatives = [(_piece_text(model, t), p) for t, p in top]
    return TokenLogprob(
        token=token, text=_piece_text(model, token), logprob=logprob, top=alternatives
    )


def _generate(
    runner: ContextRunner,
    run: _Run,
    prompt: list[int],
    sampler: _core.Sampler,
    max_tokens: int,
    stops: Sequence[str],
    top_logprobs: int | None,
    callback: TokenCallback | None,
) -> Generator[str, None, None]:
    """The generation itself; see :meth:`ContextRunner.stream`."""
    runner._acquire(run)
    ctx, model, policy = runner.ctx, runner.model, runner.policy
    record = policy.record if policy.auto else None
    if record is not None:
        policy.begin()
    n_threads_batch = policy.n_threads_batch
    tokens: list[int] = []
    pieces: list[str] = []
    logprobs: list[TokenLogprob] | None = [] if top_logprobs is not None else None
    finish: FinishReason = "length"
    t0 = time.perf_counter()
    t_prompt = t_first = t0
    completed = ended = False
    try:
        try:
            runner._prefill(prompt)
        except GenerationCancelled:
            finish = "cancelled"
        t_prompt = t_first = time.perf_counter()
        if finish != "cancelled" and run.cancelled:
            finish = "cancelled"
        stopped = False
        if finish != "cancelled" and max_tokens > 0:
            detok = StreamingDetokenizer(model.token_to_piece)
            holdback = StopHoldback(stops) if stops else None
            sample, decode, is_eog = sampler.sample, ctx.decode, model.is_eog
            add, push = detok.add, (holdback.push if holdback is not None else None)
            remember = runner._cached.append
            clock = time.perf_counter
            while True:
                token = sample(ctx, -1)
                if not tokens:
                    t_first = time.perf_counter()
                if is_eog(token):
                    finish = "eos"
                    break
                tokens.append(token)
                if logprobs is not None:
                    logprobs.append(_token_logprob(ctx, model, token, top_logprobs or 0))
                text = add(token)
                if text:
                    if push is not None:
                        text, stopped = push(text)
                    if text:
                        pieces.append(text)
                        yield text
                        if callback is not None and callback(token, text) is False:
                            finish, stopped = "stop", True
                            break
                    if stopped:
                        finish = "stop"
                        break
                if len(tokens) >= max_tokens:
                    finish = "length"
                    break
                if run.cancelled:
                    finish = "cancelled"
                    break
                try:
                    if record is None:
                        decode([token])
                    else:
                        t_step = clock()
                        decode([token])
                        if record(clock() - t_step, 1):
                            ctx.set_threads(policy.n_threads, policy.n_threads_batch)
                except GenerationCancelled:
                    finish = "cancelled"
                    break
                except ContextFullError:
                    finish = "length"
                    break
                remember(token)
            ended = True
            # The detokenizer may still hold the first bytes of a character the last token
            # began: they are dropped (never emitted as a broken character).
            if not stopped and holdback is not None:
                tail = holdback.flush()
                if tail:
                    pieces.append(tail)
                    yield tail
        completed = True
    except GeneratorExit:
        if not ended:
            finish = "cancelled"  # the consumer broke off: the reply ends here
        completed = True
        raise
    except BaseException:
        runner._forget()
        raise
    finally:
        threads = (policy.n_threads, n_threads_batch)
        runner._release()
        if completed:
            _finish(
                runner,
                run,
                prompt,
                tokens,
                pieces,
                logprobs,
                finish,
                (t0, t_prompt, t_first),
                threads,
            )


def _finish(
    runner: ContextRunner,
    run: _Run,
    prompt: list[int],
    tokens: list[int],
    pieces: list[str],
    logprobs: list[TokenLogprob] | None,
    finish: FinishReason,
    times: tuple[float, float, float],
    threads: tuple[int, int],
) -> None:
    t0, t_prompt, t_first = times
    t_end = time.perf_counter()
    runner._stats.n_generated_tokens += len(tokens)
    generation_s = t_end - t_prompt
    n = len(tokens)
    run.result = GenerationResult(
        text="".join(pieces),
        tokens=tokens,
        finish_reason=finish,
        usage=Usage(prompt_tokens=len(prompt), completion_tokens=n, total_tokens=len(prompt) + n),
        timings=Timings(
            prompt_ms=(t_prompt - t0) * 1000.0,
            generation_ms=generation_s * 1000.0,
            time_to_first_token_ms=(t_first - t0) * 1000.0,
            tokens_per_second=n / generation_s if generation_s > 0 else 0.0,
            n_threads=threads[0],
            n_threads_batch=threads[1],
        ),
        logprobs=logprobs,
    )
    callbacks, run.callbacks = run.callbacks, []
    for fn in callbacks:
        fn(run.result)


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
