"""The generation engine: one context, ``n_seq`` sequences, batched decode steps.

Every generation in fireside runs here: :class:`fireside.Model` (``generate``, ``chat``,
chat sessions, the GPT4All facade) and the server are clients that submit
:class:`~fireside.generation.requests.Request` objects and read their events.

The context holds ``n_seq`` sequences, one per :class:`~fireside.generation.slots.Slot`,
each with its own part of the KV cache (``kv_unified=False``: a sequence's attention never
sees another's cells). Each :meth:`Engine.step`

1. ends cancelled requests (their finish reason is ``"cancelled"``),
2. admits waiting requests into free slots, choosing the slot whose cache shares the
   longest reusable prefix with the prompt (only the rest is evaluated), and among equals
   the one next to busy slots (llama.cpp decodes each run of adjacent slots as a graph),
3. decodes the pending token of every generating slot in **one batch** and samples each
   with its own sampler at its index in the batch,
4. evaluates prompt chunks of the slots still reading their prompts, up to ``n_batch``
   tokens, and samples the first token of each prompt that is complete,

and hands each request its events (:class:`~fireside.generation.requests.Chunk`, then
:class:`~fireside.generation.requests.Done` or an exception).

**Who drives.** The process's compute thread, on which every llama.cpp graph is computed,
runs the steps of every engine (:mod:`fireside.generation.compute`), so a decode is never
handed from one thread to another; clients submit requests and wait for their events
(:meth:`Engine.wait`), up to ``n_seq`` of them sharing each step.

**Determinism.** A request's output does not depend on what the cache held before or on
its neighbours. llama.cpp's arithmetic for a token depends on how many tokens of *its own
sequence* are evaluated with it (measured on the CPU backend: a chunk of fewer than 64
tokens gives other rounding than a longer one, and chunks of different small sizes differ
among themselves), while other sequences in the same batch do not change it (their
attention is separate). With several sequences llama.cpp splits a batch into equal
per-sequence shares, so a prompt chunk decoded beside generating slots would be cut to
sizes that depend on the neighbours. So the engine

* evaluates prompts in chunks that end every ``chunk`` tokens or right after an
  end-of-turn token (:mod:`fireside.generation.chunking`: where a chunk ends depends only
  on the tokens before it), each in a decode of its own sequence only, never cut by a
  budget;
* decodes generated tokens one per sequence, in their own batch;
* reuses a cached prefix only up to a chunk boundary of the new prompt, and only over
  positions that were evaluated as whole prompt chunks (not generated tokens, whose cells
  were computed one at a time).

The same prompt therefore always meets the same batch shapes. The price: a cached prefix
is reused only to the last chunk boundary below it (up to ``chunk - 1`` tokens are
evaluated again). A chat's reply would be evaluated again too, as part of the next
prompt; instead, once the engine is idle, it evaluates each finished chat reply again as
prompt chunks, through the end-of-turn token the template writes after it (see
:attr:`Engine.realign_pending`), and the next turn reuses the whole conversation.

**Speculation** (:mod:`fireside.generation.speculative`). A generating slot may draft
tokens ahead by prompt lookup; in the same step, after the shared batch of the others,
its pending token and the draft are verified in a decode of its own sequence only (so
its batch shape never depends on the neighbours), each position is sampled in turn with
the request's sampler, and the cells of rejected drafts are removed. Verification batches
are capped to the sizes a probe proved to give the same logits as one-token decodes, so
the tokens are those of plain decoding; how much is drafted (measured cost, acceptance)
changes only the speed.
"""

from __future__ import annotations

import atexit
import bisect
import contextlib
import itertools
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal, Protocol

from fireside.errors import (
    ContextFullError,
    ContextLengthError,
    EngineStoppedError,
    FiresideError,
    GenerationCancelled,
    QueueFullError,
)
from fireside.generation import compute
from fireside.generation.chunking import Chunking
from fireside.generation.context_room import prompt_fits, reply_limit
from fireside.generation.draft import DraftModel, ModelDrafter
from fireside.generation.kv_files import kv_settings
from fireside.generation.requests import Chunk, Done, Request
from fireside.generation.results import FinishReason, Timings, Usage
from fireside.generation.slots import Slot, common_prefix_length
from fireside.generation.speculative import (
    MAX_DRAFT,
    PROBE_SIZES,
    PromptLookup,
    VerifyCost,
    probe_exact,
)

if TYPE_CHECKING:
    from fireside import _core
    from fireside.generation.prompt_cache import BoundPromptCache, PromptCache
    from fireside.generation.speculative import Drafter
    from fireside.generation.threads import ThreadPolicy

log = logging.getLogger("fireside.generation")

CHUNK = 64
"""Default prompt chunk (tokens): on the CPU backend, evaluating a prompt in 64-token
chunks is as fast as in 512-token ones, and a cached prefix is reused to within 63
tokens."""


class Observer(Protocol):
    """What the engine reports as it runs (the server's metrics implement it)."""

    def admitted(self, n_prompt: int, n_cached: int) -> None: ...
    def first_token(self, seconds: float) -> None: ...
    def step(self, n_tokens: int, n_sequences: int) -> None: ...
    def graphs(self, n_graphs: int) -> None: ...
    def finish(self, reason: str, n_completion: int) -> None: ...
    def realigned(self, n_tokens: int) -> None: ...


@dataclass
class CacheStats:
    """What the engine evaluated; the proof that prompt prefixes are reused and that
    concurrent generations share decode steps.

    Totals count every generation since the engine was made; ``last_*`` describe the most
    recently admitted one. ``*_evaluated`` tokens went through ``decode``; ``*_reused``
    were already in the KV cache. ``n_steps`` counts decode calls (a step decodes the
    generated tokens of every running sequence in one call).
    """

    n_generations: int = 0
    n_prompt_tokens: int = 0
    n_prompt_tokens_evaluated: int = 0
    n_prompt_tokens_reused: int = 0
    n_generated_tokens: int = 0
    last_prompt_tokens: int = 0
    last_prompt_tokens_evaluated: int = 0
    last_prompt_tokens_reused: int = 0
    n_steps: int = 0
    n_generation_steps: int = 0
    """Decode calls of generated tokens (each holds one token of every generating slot)."""
    n_generation_graphs: int = 0
    """Graphs those decode calls computed: llama.cpp computes one per run of consecutive
    sequence ids, so this equals ``n_generation_steps`` while the generating slots sit side
    by side (the engine admits requests so that they do)."""
    n_sequences_max: int = 0
    """The most sequences one generation step decoded together."""
    n_draft_tokens: int = 0
    """Tokens drafted ahead by speculative decoding."""
    n_accepted_tokens: int = 0
    """Drafted tokens the model confirmed (each saved one decode step)."""
    n_verify_steps: int = 0
    """Decodes that verified a draft (the pending token and the drafted ones)."""
    n_realigned_tokens: int = 0
    """Reply tokens evaluated again as whole prompt chunks while the engine was idle (see
    :meth:`Engine.realign_pending`), so that the next turn of a chat reuses them."""
    exact_batch: int = 0
    """The longest verification batch proved exact so far on this model and backend (0:
    none probed yet; 1: not even 2 tokens are, so nothing is drafted)."""


_realigning: weakref.WeakSet[Engine] = weakref.WeakSet()
_exit_hook: list[bool] = []  # registered once


def _watch_at_exit(engine: Engine) -> None:
    """Stop ``engine``'s realigning when the process exits (a model left open)."""
    if not _exit_hook:
        atexit.register(_stop_all_realigning)
        _exit_hook.append(True)
    _realigning.add(engine)


def _stop_all_realigning() -> None:
    for engine in list(_realigning):
        engine._stop_realigning()


@dataclass
class _Realign:
    """A slot's conversation to evaluate again as whole chunks (see
    :attr:`Engine.realign_pending`): the prompt, the reply and the end of turn, cut to its
    last chunk boundary once started."""

    tokens: list[int]
    started: bool = False


class _Timing:
    __slots__ = ("first", "n_accepted", "n_drafted", "n_threads_batch", "prompt_done")

    def __init__(self, n_threads_batch: int) -> None:
        self.prompt_done: float | None = None
        self.first: float | None = None
        self.n_threads_batch = n_threads_batch
        self.n_drafted = 0
        self.n_accepted = 0


class Engine:
    """Runs generations on ``n_seq`` slots of one context, in batched steps.

    Args:
        model: the native model (kept open by the caller while the engine runs).
        n_seq: sequences decoded together (slots).
        n_ctx_seq: context of each slot in tokens (prompt plus completion).
        n_batch: the most prompt tokens evaluated in one step.
        chunk: the most tokens of a prompt chunk (default :data:`CHUNK`, at most
            ``min(n_batch, 512)``; chunks also end after end-of-turn tokens, see
            "Determinism" above).
        policy: the engine's one thread policy (it learns from generation steps).
        max_queue: requests that may wait for a slot (``None``: any number); more are
            refused with :class:`QueueFullError`.
        observer: told about admissions, steps, finishes and realigned replies (e.g.
            the server's metrics).
        on_step: called after every step, on the compute thread (e.g. to deliver the
            step's events to an event loop at once).
        speculative: draft tokens ahead by prompt lookup and verify them in one decode
            when the measured cost says it pays (see
            :mod:`fireside.generation.speculative`; the output is the same either way);
            ``"always"``: whenever a draft is likely to be accepted, as if verifying
            cost 10% of a step per drafted token (benchmarks, tests). A request can
            still opt out (``Request.speculative``).
        draft: a draft model (same vocabulary, checked by the caller with
            :func:`~fireside.generation.draft.check_vocabulary`) that drafts instead of
            prompt lookup; the engine makes its context and closes it.
        prompt_cache: a directory of stored prompt prefixes (see
            :mod:`fireside.generation.prompt_cache`): finished requests' prefixes are
            stored there, and a prompt no slot has cached restores its longest stored
            prefix instead of evaluating it. The caller closes it.
    """

    def __init__(
        self,
        model: _core.Model,
        *,
        n_seq: int = 1,
        n_ctx_seq: int = 4096,
        n_batch: int = 512,
        chunk: int | None = None,
        policy: ThreadPolicy,
        max_queue: int | None = None,
        observer: Observer | None = None,
        on_step: Callable[[], None] | None = None,
        speculative: bool | Literal["always"] = True,
        draft: _core.Model | None = None,
        prompt_cache: PromptCache | None = None,
    ) -> None:
        from fireside import _core

        for name, value, low in (
            ("n_seq", n_seq, 1),
            ("n_ctx_seq", n_ctx_seq, 16),
            ("n_batch", n_batch, 1),
            ("max_queue", 0 if max_queue is None else max_queue, 0),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        n_ubatch = min(n_batch, 512)
        chunk = min(CHUNK, n_ubatch) if chunk is None else chunk
        if not isinstance(chunk, int) or not 1 <= chunk <= n_ubatch:
            raise ValueError(f"chunk must be an integer in [1, {n_ubatch}], got {chunk!r}")
        self.model = model
        self.threads = policy
        """The engine's thread policy (one for all requests)."""
        self._record = policy.record if policy.auto else None
        self.ctx = _core.Context(
            model,
            n_ctx=n_ctx_seq * n_seq,
            n_batch=n_batch,
            n_ubatch=n_ubatch,
            n_seq_max=n_seq,
            n_threads=policy.n_threads,
            n_threads_batch=policy.n_threads_batch,
            kv_unified=False,
        )
        self.n_ctx_seq = self.ctx.n_ctx_seq
        self.n_batch = self.ctx.n_batch
        self.chunk = chunk
        self.chunking = Chunking(chunk, model.eog_tokens)
        """Where prompt chunks end (:mod:`fireside.generation.chunking`)."""
        self.max_queue = max_queue
        self.observer = observer
        self._on_step = on_step
        self.slots = [Slot(i, model) for i in range(n_seq)]
        self.draft_model: DraftModel | None = None
        """The draft model's context (``None``: prompt lookup drafts)."""
        if draft is not None and speculative:
            try:
                self.draft_model = DraftModel(
                    draft,
                    n_vocab=model.n_vocab,
                    n_seq=n_seq,
                    n_ctx_seq=self.n_ctx_seq,
                    n_batch=self.n_batch,
                    n_threads=policy.n_threads,
                    n_threads_batch=policy.n_threads_batch,
                )
            except BaseException:
                self.ctx.close()
                raise
        self._exact = [0] * n_seq  # per slot: leading cached tokens evaluated as whole chunks
        self._disk: BoundPromptCache | None = None
        if prompt_cache is not None:
            try:
                self._disk = prompt_cache.bind(kv_settings(self))
            except BaseException:
                self.ctx.close()
                if self.draft_model is not None:
                    self.draft_model.close()
                raise
        if not (isinstance(speculative, bool) or speculative == "always"):
            raise ValueError(f'speculative must be True, False or "always", got {speculative!r}')
        self.speculative = speculative
        self.verify_cost = VerifyCost(0.1 if speculative == "always" else None)
        """What verifying a draft costs here (measured; it decides how much to draft)."""
        # drafts are capped to the verification batches proved exact (0: no speculation)
        self._max_draft = MAX_DRAFT if speculative else 0
        self._proved = 1  # the longest verification batch proved exact
        self._probe_failed = False  # a longer one differed: no more probing
        self._timing: dict[int, _Timing] = {}  # per running request id
        self._stats = CacheStats()
        self._cond = threading.Condition()
        self._waiting: deque[Request] = deque()
        self._n_jobs = 0  # waiting plus running
        self._driving = False
        self._driver: int | None = None  # thread id of the one stepping now
        self._idle = True
        # the slots in the decode running now; reentrant: a stream garbage-collected
        # while this thread holds it cancels its request (which takes it) from here
        self._guard = threading.RLock()
        self._in_decode: list[Slot] = []
        self._ctx_cancelled = False  # ctx.cancel() was called: reset it after the decode
        # slots whose reply is evaluated again while idle: the tokens to end up with
        # (None: not started yet), and the thread that does it
        self._realign: dict[int, _Realign] = {}
        self._ended_by: dict[int, int] = {}  # the end-of-turn token a reply ended with
        self._realigning = False  # a realigning decode runs now (a request interrupts it)
        self._realigner_driving = False  # the realigner holds the engine (between steps)
        self._no_realign = False  # the process is exiting: no more realigning
        self._stopping = False
        self._closed = False
        self.failure: BaseException | None = None
        """Why the engine stopped, if a step failed past its own handling."""
        compute.register(self)

    # -- state -------------------------------------------------------------------------

    @property
    def stats(self) -> CacheStats:
        """A snapshot of the evaluation counters."""
        return replace(self._stats)

    @property
    def running(self) -> bool:
        """Whether requests are accepted."""
        return not (self._closed or self._stopping)

    @property
    def parallel(self) -> int:
        return len(self.slots)

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a slot."""
        return len(self._waiting)

    @property
    def active_slots(self) -> int:
        """Slots running a request."""
        return sum(slot.busy for slot in self.slots)

    @property
    def free_slots(self) -> int:
        """Slots a new request could start on now (none while requests wait)."""
        return max(0, len(self.slots) - self._n_jobs)

    def cached_tokens(self, seq_id: int = 0) -> list[int]:
        """The tokens sequence ``seq_id``'s KV cache holds (a copy)."""
        return list(self.slots[seq_id].cached)

    # -- submitting --------------------------------------------------------------------

    def submit(self, request: Request) -> None:
        """Queue ``request``; it starts at the next step that has a free slot.

        ``request.max_tokens`` is capped to the room its prompt leaves in a slot. Raises
        :class:`~fireside.errors.ContextLengthError` for a prompt that does not fit a slot,
        :class:`QueueFullError` when too many requests wait, :class:`EngineStoppedError`
        when the engine is not running.
        """
        n_prompt = len(request.prompt)
        if n_prompt == 0:
            raise ValueError("the prompt is empty: it has no tokens to continue from")
        if not prompt_fits(self.n_ctx_seq, n_prompt):
            raise ContextLengthError(
                f"the prompt has {n_prompt} tokens but a request may use at most "
                f"{self.n_ctx_seq} tokens (prompt plus completion); shorten it",
                n_prompt_tokens=n_prompt,
                n_ctx=self.n_ctx_seq,
            )
        if request.max_tokens < 0:
            raise ValueError(f"max_tokens must be at least 0, got {request.max_tokens}")
        request.max_tokens = reply_limit(self.n_ctx_seq, n_prompt, request.max_tokens)
        with self._cond:
            if not self.running:
                raise EngineStoppedError("the engine is not accepting requests (shutting down)")
            if self.max_queue is not None and self._n_jobs >= len(self.slots) + self.max_queue:
                raise QueueFullError(
                    f"all {len(self.slots)} slots are busy and {len(self._waiting)} requests "
                    "are waiting; retry shortly",
                    retry_after=1,
                )
            self._n_jobs += 1
            request._on_cancel = self._cancelled
            self._waiting.append(request)
            self._cond.notify_all()
        compute.interrupt_idle_work()  # every model's background work gives way
        compute.wake()

    def cancel_all(self) -> None:
        """Cancel every waiting and running request (thread-safe)."""
        with self._cond:
            requests = list(self._waiting)
        requests += [slot.request for slot in self.slots if slot.request is not None]
        for request in requests:
            request.cancel()

    def _cancelled(self, request: Request) -> None:
        with self._guard:
            # interrupt a decode only when it works for cancelled requests alone
            requests = [s.request for s in self._in_decode if s.request is not None]
            if requests and all(r.cancelled for r in requests):
                self.ctx.cancel()
                self._ctx_cancelled = True
        with self._cond:
            self._cond.notify_all()

    # -- driving -----------------------------------------------------------------------

    def wait(self, ready: Callable[[], bool], timeout: float | None = None) -> None:
        """Return once ``ready()`` is true (or after ``timeout`` seconds without a step);
        the compute thread runs the steps meanwhile (called on it, from a callback of
        another engine's step, this steps the engine itself). ``ready`` is called with the
        engine's lock held. Raises :class:`EngineStoppedError` when the engine is closed
        meanwhile."""
        cond = self._cond
        on_compute_thread = compute.here()
        while True:
            with cond:
                while True:
                    if ready():
                        return
                    if self._closed:
                        raise EngineStoppedError("the model was closed")
                    if not self._driving:
                        if on_compute_thread:
                            self._driving = True
                            break
                        if self._n_jobs:
                            compute.wake()
                    if not cond.wait(timeout):
                        return
            self._drive_one()

    @property
    def busy(self) -> bool:
        """Requests wait or run."""
        return self._n_jobs > 0

    def drive_step(self) -> bool:
        """Run one step if requests wait or run and nobody holds the engine (called by the
        compute thread, :mod:`fireside.generation.compute`); whether it ran one."""
        with self._cond:
            if self._closed or self._stopping or self._driving or not self._n_jobs:
                return False
            self._driving = True
        self._drive_one()
        return True

    def fail(self, error: BaseException) -> None:
        """A step failed past :meth:`_safe_step` (not an ``Exception``): stop the engine."""
        self.failure = error
        with self._cond:
            self._stopping = True
        self._abort_all(error)

    def driving_here(self) -> bool:
        """Whether the calling thread is running a step now (e.g. from a callback)."""
        return self._driver == threading.get_ident()

    def _drive_one(self) -> None:
        self._driver = threading.get_ident()
        try:
            self._safe_step()
        finally:
            self._driver = None
            with self._cond:
                self._driving = False
                self._cond.notify_all()
            if self._on_step is not None:
                self._on_step()

    def reset(self) -> None:
        """Forget the cache of every idle slot (the next prompts are evaluated afresh)."""
        with self._alone():
            for slot in self.slots:
                if not slot.busy:
                    slot.forget(self.ctx)
                    self._exact[slot.seq_id] = 0

    @contextlib.contextmanager
    def _alone(self, *, realigned: bool = False) -> Iterator[None]:
        """Hold the engine between steps (nobody steps meanwhile). Replies being realigned
        are left as they are, or with ``realigned`` first finished here (so that the cache
        holds them)."""
        self._interrupt_realign()
        with self._cond:
            while self._driving:
                self._cond.wait()
            self._driving = True
        try:
            try:
                while realigned and self._realign and not self._closed:
                    self._realign_chunk(now=True)
            except Exception:  # a bug: the cache holds less, the caller goes on
                log.exception("realigning a reply failed")
            with self._cond:
                self._realign.clear()
                self._ended_by.clear()
            yield
        finally:
            with self._cond:
                self._driving = False
                self._cond.notify_all()
            compute.wake()  # requests that came meanwhile

    def save_prefix(self, path: str | os.PathLike[str], tokens: Sequence[int]) -> int:
        """Write the KV cells of the longest prefix of ``tokens`` that an idle slot could
        reuse (whole prompt chunks only, see "Determinism") to ``path``, as llama.cpp's
        sequence state file; return its length (0: nothing to save, no file written).

        A reply still waiting to be realigned (:attr:`realign_pending`) is evaluated
        first, here, so a conversation saved right after a reply includes it. The slot's
        cells after the prefix (a partial chunk: never reused) are removed from its cache
        first, so the file holds exactly the prefix.
        """
        tokens = list(tokens)
        with self._alone(realigned=True):  # a reply just given is part of the prefix
            best, keep = None, 0
            for slot in self.slots:
                if slot.busy:
                    continue
                n = min(common_prefix_length(slot.cached, tokens), self._exact[slot.seq_id])
                n = self.chunking.floor(tokens, n)
                if n > keep:
                    best, keep = slot, n
            if best is None:
                return 0
            if keep < len(best.cached):
                if not self.ctx.seq_rm(best.seq_id, keep, -1):
                    return 0  # a cache that cannot be cut
                del best.cached[keep:]
            self.ctx.seq_state_save(path, best.seq_id, best.cached)
            return keep

    def load_prefix(self, path: str | os.PathLike[str], tokens: Sequence[int]) -> int:
        """Restore a :meth:`save_prefix` file into the idle slot unused the longest, if
        it holds a prefix of ``tokens`` made of whole prompt chunks; return the tokens
        restored. Raises ``ValueError`` when llama.cpp cannot read it into this context or
        it holds other tokens (the slot is then left empty)."""
        tokens = list(tokens)
        with self._alone():
            free = [slot for slot in self.slots if not slot.busy]
            if not free:
                return 0
            slot = min(free, key=lambda s: s.last_used)
            slot.forget(self.ctx)
            self._exact[slot.seq_id] = 0
            try:
                restored = self.ctx.seq_state_load(path, slot.seq_id)
                bounds = self.chunking.boundaries(restored)
                if not restored or not bounds or bounds[-1] != len(restored):
                    raise ValueError(f"it holds {len(restored)} tokens, not whole chunks")
                if restored != tokens[: len(restored)]:
                    raise ValueError("it holds other tokens than the conversation's")
            except BaseException:
                slot.forget(self.ctx)
                raise
            slot.cached = restored
            self._exact[slot.seq_id] = len(restored)
            slot.last_used = time.monotonic()
            return len(restored)

    # -- stopping ----------------------------------------------------------------------

    def stop(self) -> None:
        """Accept no more requests, end the running ones with an error, free the context."""
        with self._cond:
            self._stopping = True  # no step starts now
            self._cond.notify_all()
        self._interrupt_realign()
        with self._cond:
            while self._driving and not self.driving_here():
                self._cond.wait(1.0)
        self._abort_all(None)  # before close() would cancel them: they end with the error
        self.close()

    def close(self) -> None:
        """Cancel everything, wait for a running step, free the context. Idempotent."""
        if self._closed:
            return
        self.cancel_all()
        with contextlib.suppress(FiresideError):
            self.ctx.cancel()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            while self._driving and not self.driving_here():
                self._cond.wait(1.0)
        self._abort_all(None)
        self.ctx.close()
        if self.draft_model is not None:
            self.draft_model.close()

    def _abort_all(self, cause: BaseException | None) -> None:
        error = EngineStoppedError(
            "the engine stopped before the generation ended"
            if cause is None
            else f"the generation engine failed: {cause}"
        )
        with self._cond:
            requests = list(self._waiting)
            self._waiting.clear()
        for slot in self.slots:
            if slot.request is not None:
                requests.append(slot.request)
                slot.release()
        for request in requests:
            request.emit(error)
        with self._cond:
            self._n_jobs = 0
            self._cond.notify_all()
        if self._on_step is not None:
            self._on_step()

    # -- one step ----------------------------------------------------------------------

    def _safe_step(self) -> None:
        try:
            self.step()
        except BaseException as error:  # a bug or an interrupt: fail everyone, keep going
            log.exception("a generation step failed")
            for slot in self.slots:
                request = slot.request
                if request is not None:
                    slot.forget(self.ctx)
                    self._exact[slot.seq_id] = 0
                    slot.release()
                    self._end(request, error)
            if not isinstance(error, Exception):
                raise

    def step(self) -> None:
        """Run one step (the caller is the only one stepping)."""
        self._end_cancelled()
        self._admit()
        slots = self.slots
        generating = [s for s in slots if s.next_token is not None]
        n_tokens = 0
        verifying: list[tuple[Slot, list[int]]] = []
        # A verification is a decode of its own: beside other generating slots it costs
        # them a whole step, which the measured cost does not count, so only a slot that
        # generates alone drafts (a pinned cost, "always", drafts regardless).
        alone = len(generating) == 1 or self.verify_cost.fixed is not None
        if self._max_draft != 0 and generating and alone:
            plain = []
            for slot in generating:
                draft = self._draft(slot)
                if draft:
                    verifying.append((slot, draft))
                else:
                    plain.append(slot)
            generating = plain
        if generating:
            n_tokens += self._generate(generating)
        for slot, draft in verifying:
            n_tokens += self._verify(slot, draft)
        budget = self.n_batch
        prefilling = [s for s in slots if s.request is not None and s.next_token is None]
        if len(prefilling) > 1:
            prefilling.sort(key=lambda s: s.request.id)  # type: ignore[union-attr]
        for slot in prefilling:
            request = slot.request
            if request is None or budget <= 0:
                continue
            start = len(slot.cached)
            end = self.chunking.end(request.prompt, start)
            if end - start > budget and n_tokens:
                break  # never cut a chunk: it waits for the next step
            budget -= end - start
            n_tokens += end - start
            self._prefill(slot, request, start, end)
        self._stats.n_steps += 1 if n_tokens else 0
        # a request cancelled during this step (e.g. its stream was garbage-collected by
        # this thread) ends now, not whenever somebody steps again
        self._end_cancelled()
        if all(s.request is None for s in slots):
            self._idle = True

    def _end_cancelled(self) -> None:
        for slot in self.slots:
            request = slot.request
            if request is not None and request.cancel_reason is not None:
                self._finish(slot, request.cancel_reason)

    def _admit(self) -> None:
        if not self._waiting:  # read without the lock: a request queued now waits a step
            return
        while True:
            with self._cond:
                free = [slot for slot in self.slots if not slot.busy]
                if not free or not self._waiting:
                    return
                request = self._waiting.popleft()
            if request.cancel_reason is not None:  # gave up while waiting
                n = len(request.prompt)
                done = Done(request.cancel_reason, Usage(n, 0, n), 0, None)
                done.timings = Timings(0.0, 0.0, 0.0, 0.0, *self._threads())
                self._end(request, done)
                continue
            if self._idle and self._record is not None:
                self.threads.begin()  # measure the machine's load afresh
            self._idle = False

            # the longest reusable prefix (to a chunk boundary of the prompt, over cells
            # evaluated as whole chunks); among equals, the slot beside the most busy ones
            # (see _busy_neighbours), then the slot unused the longest
            prompt = request.prompt
            bounds = self.chunking.boundaries(prompt, len(prompt) - 1)
            slot = max(
                free,
                key=lambda s: (
                    self._reusable(s, prompt, bounds),
                    self._busy_neighbours(s),
                    -s.last_used,
                ),
            )
            self._realign.pop(slot.seq_id, None)  # its cache changes now
            self._ended_by.pop(slot.seq_id, None)
            keep = self._reusable(slot, prompt, bounds)
            if keep < len(slot.cached):
                if not self.ctx.seq_rm(slot.seq_id, keep, -1):  # a cache that cannot be cut
                    self.ctx.seq_rm(slot.seq_id, -1, -1)
                    keep = 0
                del slot.cached[keep:]
            self._exact[slot.seq_id] = keep
            if self._disk is not None:
                self._restore(slot, prompt, bounds, keep)
            slot.assign(request, self.ctx, len(slot.cached))
            if request.speculative and self._max_draft != 0:
                slot.speculate(self._drafter(slot, request), self._max_draft)
            self._timing[request.id] = _Timing(self.threads.n_threads_batch)
            n_prompt = len(request.prompt)
            stats = self._stats
            stats.n_generations += 1
            stats.n_prompt_tokens += n_prompt
            stats.last_prompt_tokens = n_prompt
            stats.n_prompt_tokens_reused += slot.n_cached
            stats.last_prompt_tokens_reused = slot.n_cached
            stats.last_prompt_tokens_evaluated = 0
            if self.observer is not None:
                self.observer.admitted(n_prompt, slot.n_cached)

    def _reusable(self, slot: Slot, prompt: list[int], bounds: list[int]) -> int:
        """How much of ``prompt`` ``slot`` can reuse: its cached prefix over cells
        evaluated as whole chunks, cut back to one of the prompt's chunk ``bounds``."""
        i = bisect.bisect_right(bounds, min(slot.shared(prompt), self._exact[slot.seq_id]))
        return bounds[i - 1] if i else 0

    def _busy_neighbours(self, slot: Slot) -> int:
        """How many of the sequences next to ``slot``'s (ids one below and above) are busy.

        llama.cpp decodes a batch of separate sequences (``kv_unified=False``) as one graph
        only over consecutive sequence ids: each run of consecutive ids is a graph of its
        own, which reads all the weights again (8 generating sequences out of 16 took 1.5x
        as long a step in 4 runs, 1.8x in 8, as in one). So a new request takes a slot that
        keeps the busy ones side by side.
        """
        seq, slots = slot.seq_id, self.slots
        return sum(1 for i in (seq - 1, seq + 1) if 0 <= i < len(slots) and slots[i].busy)

    def _threads(self) -> tuple[int, int]:
        return self.threads.n_threads, self.threads.n_threads_batch

    def _decode(self, slots: list[Slot], **batch: object) -> bool:
        """Decode one batch; False when it failed (its requests are ended)."""
        ctx = self.ctx
        guard = self._guard
        self._in_decode = slots  # their requests stay the same until the decode returns
        try:
            ctx.decode(**batch)  # type: ignore[arg-type]
            return True
        except GenerationCancelled:
            for slot in slots:  # the cache holds no part of the batch: retry the others
                request = slot.request
                if request is not None and request.cancel_reason is not None:
                    self._finish(slot, request.cancel_reason)
            return False
        except ContextFullError:
            for slot in slots:
                if slot.request is not None:
                    self._finish(slot, "length")
            return False
        except FiresideError as error:  # llama.cpp failed: fail this batch
            log.warning("decode failed for %d sequences: %s", len(slots), error)
            for slot in slots:
                request = slot.request
                slot.forget(ctx)
                self._exact[slot.seq_id] = 0
                if request is not None:
                    slot.release()
                    self._end(request, error)
            return False
        finally:
            with guard:
                self._in_decode = []
                if self._ctx_cancelled:
                    self._ctx_cancelled = False
                    ctx.reset_cancel()

    def _generate(self, slots: list[Slot]) -> int:
        n = len(slots)
        tokens = [s.next_token for s in slots]
        t_step = time.perf_counter()
        if n == 1 and slots[0].seq_id == 0:
            ok = self._decode(slots, tokens=tokens)
        else:
            ok = self._decode(
                slots,
                tokens=tokens,
                positions=[len(s.cached) for s in slots],
                seq_ids=[s.seq_id for s in slots],
                logits=[True] * n,
            )
        if not ok:
            return 0
        if n == 1 and self._max_draft:
            self.verify_cost.one_token(time.perf_counter() - t_step)
        record = self._record
        if record is not None and record(time.perf_counter() - t_step, n):
            self.ctx.set_threads(self.threads.n_threads, self.threads.n_threads_batch)
            if self.draft_model is not None:
                self.draft_model.set_threads(self.threads.n_threads, self.threads.n_threads_batch)
        stats = self._stats
        n_graphs = 1 + sum(1 for a, b in itertools.pairwise(slots) if b.seq_id != a.seq_id + 1)
        stats.n_generation_steps += 1
        stats.n_generation_graphs += n_graphs
        stats.n_sequences_max = max(stats.n_sequences_max, n)
        if self.observer is not None:
            self.observer.step(n, n)
            self.observer.graphs(n_graphs)
        for index, slot in enumerate(slots):
            slot.cached.append(slot.next_token)  # type: ignore[arg-type]
            self._sample(slot, index)
        return n

    def _drafter(self, slot: Slot, request: Request) -> Drafter:
        if self.draft_model is not None:
            return ModelDrafter(self.draft_model, slot.seq_id, request.prompt)
        return PromptLookup(request.prompt)

    def _draft_cost(self) -> float | None:
        """The cost of each drafted token relative to a one-token step: verifying it,
        plus, with a draft model, decoding it there."""
        cost = self.verify_cost
        beta = cost.beta
        draft = self.draft_model
        if beta is None or cost.fixed is not None or draft is None:
            return beta
        if draft.seconds_per_token is None or not cost.single:
            return beta
        return beta + draft.seconds_per_token / cost.single

    def _draft(self, slot: Slot) -> list[int]:
        """The tokens ``slot`` proposes after its pending one (empty: none this step)."""
        lookup, policy = slot.lookup, slot.draft_policy
        request, emitter = slot.request, slot.emitter
        if lookup is None or policy is None or request is None or emitter is None:
            return []
        if request.cancel_reason is not None:
            return []
        want = policy.length(self._draft_cost())
        if want < 1:
            return []  # most steps: the lookup catches up when a draft is wanted
        tokens = emitter.tokens
        if slot.n_looked_up < len(tokens):
            lookup.extend(tokens[slot.n_looked_up :])
            slot.n_looked_up = len(tokens)
        n_past = len(slot.cached)
        room = min(
            request.max_tokens - len(tokens) - 1,  # samples left after the pending token's
            self.n_ctx_seq - n_past - 1,
            self.n_batch - 1,
        )
        if room < 1:
            return []
        try:
            draft = lookup.draft(min(room, want))
        except FiresideError as error:  # the draft model failed: draft no more for it
            log.warning("drafting failed for request %d: %s", request.id, error)
            slot.lookup = slot.draft_policy = None
            return []
        if len(draft) >= self._proved and not self._probe_failed:
            self._probe(slot, lookup, len(draft) + 1)
        return draft[: self._proved - 1]

    def _probe(self, slot: Slot, lookup: Drafter, size: int) -> None:
        """Prove verification batches exact up to ``size`` tokens, continuing from the
        sizes proved before (see :func:`~fireside.generation.speculative.probe_exact`)."""
        sizes = [s for s in PROBE_SIZES if s > self._proved and s <= self.n_batch]
        upto = next((i for i, s in enumerate(sizes) if s >= size), len(sizes) - 1)
        sizes = sizes[: upto + 1]
        n_past = len(slot.cached)
        if not sizes or n_past + sizes[-1] > self.n_ctx_seq:
            return  # nothing left to prove, or no room after this sequence: not now
        try:
            exact = probe_exact(
                self.ctx,
                slot.seq_id,
                n_past,
                lookup.tail(sizes[-1]),
                sizes,
                cost=self.verify_cost,
            )
        except FiresideError as error:
            log.warning("speculative decoding stops growing: its exactness probe failed: %s", error)
            exact = None
        if exact is not None:
            self._proved = exact
        if exact != sizes[-1]:
            self._probe_failed = True
            if self._proved < 2:
                log.info("speculative decoding is off: a 2-token batch differs from 2 decodes")
                self._max_draft = 0
                for other in self.slots:
                    other.lookup = other.draft_policy = None
            else:
                log.info("speculative decoding: batches of %d tokens are exact", self._proved)
        self._stats.exact_batch = self._proved

    def _verify(self, slot: Slot, draft: list[int]) -> int:
        """Decode ``slot``'s pending token and its draft in one decode of its own sequence
        (so its batch shape does not depend on neighbours), sample each position in turn
        and keep the drafted tokens that equal the samples."""
        request, policy = slot.request, slot.draft_policy
        assert request is not None and slot.next_token is not None and policy is not None
        n_past = len(slot.cached)
        tokens = [slot.next_token, *draft]
        n = len(tokens)
        t_step = time.perf_counter()
        ok = self._decode(
            [slot],
            tokens=tokens,
            positions=list(range(n_past, n_past + n)),
            seq_ids=slot.seq_id,
            logits=[True] * n,
        )
        if not ok:
            return 0
        self.verify_cost.verified(n, time.perf_counter() - t_step)
        slot.cached.append(tokens[0])
        timing = self._timing.get(request.id)
        if timing is not None:  # before sampling: the request may end (and report) below
            timing.n_drafted += len(draft)
        accepted = 0
        for index in range(n):
            token = self._sample(slot, index)
            if token is None or index == n - 1 or token != draft[index]:
                break
            slot.cached.append(token)  # its cell, computed by this decode, is kept
            accepted += 1
            if timing is not None:
                timing.n_accepted += 1
        kept = n_past + 1 + accepted
        if kept < n_past + n:
            self.ctx.seq_rm(slot.seq_id, kept, -1)
        policy.update(len(draft), accepted)
        stats = self._stats
        stats.n_verify_steps += 1
        stats.n_draft_tokens += len(draft)
        stats.n_accepted_tokens += accepted
        observer = self.observer
        if observer is not None:
            observer.step(n, 1)
            speculated = getattr(observer, "speculated", None)
            if speculated is not None:
                speculated(len(draft), accepted)
        return n

    def _prefill(self, slot: Slot, request: Request, start: int, end: int) -> None:
        chunk = request.prompt[start:end]
        last = end == len(request.prompt)
        ok = self._decode(
            [slot],
            tokens=chunk,
            positions=list(range(start, end)),
            seq_ids=slot.seq_id,
            logits=[False] * (len(chunk) - 1) + [last],
        )
        if not ok:
            return
        slot.cached.extend(chunk)
        if self._exact[slot.seq_id] == start and self.chunking.complete(request.prompt, start, end):
            self._exact[slot.seq_id] = end
        stats = self._stats
        stats.n_prompt_tokens_evaluated += len(chunk)
        stats.last_prompt_tokens_evaluated += len(chunk)
        if self.observer is not None:
            self.observer.step(len(chunk), 1)
        if last:
            timing = self._timing.get(request.id)
            if timing is not None:
                timing.prompt_done = time.perf_counter()
            if request.max_tokens == 0:  # only read the prompt (into the cache)
                self._finish(slot, "length")
            else:
                self._sample(slot, len(chunk) - 1)

    def _sample(self, slot: Slot, index: int) -> int | None:
        """Sample the token at batch ``index`` and emit it; the token when the request
        goes on, ``None`` when it ended here."""
        request, emitter = slot.request, slot.emitter
        if request is None or emitter is None:
            return None
        timing = self._timing.get(request.id)
        try:
            token = request.sampler.sample(self.ctx, index)
            text = emitter.on_token(token, self.ctx, index)
        except (FiresideError, ValueError, RuntimeError) as error:  # e.g. a dead-end grammar
            log.warning("sampling failed for request %d: %s", request.id, error)
            slot.release()
            self._end(request, error)
            return None
        if timing is not None and timing.first is None:
            timing.first = time.perf_counter()
            if self.observer is not None:
                self.observer.first_token(timing.first - request.submitted)
        if emitter.finish_reason is not None:
            if emitter.finish_reason == "eos" and request.realign:
                self._ended_by[slot.seq_id] = token  # see _turn_end
            self._finish(slot, emitter.finish_reason, text)
            return None
        slot.next_token = token
        if text or emitter.top_logprobs is not None:
            request.emit(Chunk(text, emitter.take_tokens(), emitter.take_logprobs()))
        return token

    def _finish(self, slot: Slot, reason: FinishReason, text: str | None = None) -> None:
        """End the request on ``slot``: its last chunk (``text`` from the token that ended
        it, else what the emitter still holds; with every token not yet sent) and its
        :class:`Done`."""
        request, emitter = slot.request, slot.emitter
        assert request is not None and emitter is not None
        if text is None:
            text = emitter.end(reason)
        tokens = emitter.tokens
        new = emitter.take_tokens()
        logprobs = emitter.take_logprobs()
        if text or new or logprobs:
            request.emit(Chunk(text, new, logprobs))
        timing = self._timing.pop(request.id, None)
        t_end = time.perf_counter()
        t0 = request.submitted
        t_prompt = t_end if timing is None or timing.prompt_done is None else timing.prompt_done
        t_first = t_prompt if timing is None or timing.first is None else timing.first
        n_prompt, n = len(request.prompt), len(tokens)
        generation_s = t_end - t_prompt
        done = Done(
            finish_reason=reason,
            usage=Usage(n_prompt, n, n_prompt + n),
            n_cached=slot.n_cached,
            time_to_first_token=None if timing is None or timing.first is None else t_first - t0,
            tokens=tokens,
            timings=Timings(
                prompt_ms=(t_prompt - t0) * 1000.0,
                generation_ms=generation_s * 1000.0,
                time_to_first_token_ms=(t_first - t0) * 1000.0,
                tokens_per_second=n / generation_s if generation_s > 0 else 0.0,
                n_threads=self.threads.n_threads,
                n_threads_batch=self.threads.n_threads_batch
                if timing is None
                else timing.n_threads_batch,
                draft_tokens=0 if timing is None else timing.n_drafted,
                accepted_tokens=0 if timing is None else timing.n_accepted,
            ),
        )
        self._stats.n_generated_tokens += n
        if self._disk is not None:
            self._store(slot)
        if request.realign:
            conversation = request.prompt + tokens + self._turn_end(slot.seq_id, request.prompt)
            self._want_realign(slot.seq_id, conversation)
        slot.release()
        self._end(request, done)

    # -- realigning replies while idle -------------------------------------------------

    @property
    def realign_pending(self) -> bool:
        """Whether a finished reply still waits to be evaluated again as whole prompt
        chunks (see "Determinism": generated tokens' cells were computed one at a time,
        so a next prompt could not reuse them). Requests made with ``realign=True`` (a
        chat's turns) have it done by the compute thread while no request runs: it takes
        the conversation so far (the prompt, the reply and the end-of-turn token the
        template writes after it: the one the reply ended with, else the prompt's last)
        and evaluates its chunks after the slot's reusable prefix, each in a decode of its
        own like a prompt chunk, up to its last chunk boundary. A request that arrives
        meanwhile, to this engine or any other of the process (they share the compute
        thread), interrupts it at once (the chunk under way is rolled back), and it waits
        while any engine has requests; the next turn then reuses the conversation instead
        of evaluating the reply again. With a prompt cache on disk, the realigned
        conversation is stored too (after the prompt's prefix, stored when the reply
        ended), so a restarted server does not evaluate the reply again either."""
        return bool(self._realign)

    def wait_realigned(self, timeout: float | None = None) -> bool:
        """Wait until no request runs or waits and no reply waits to be realigned (or
        ``timeout``); ``True`` when so."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while (self._realign or self._n_jobs) and not self._closed:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            return not (self._realign or self._n_jobs)

    def _turn_end(self, seq: int, prompt: list[int]) -> list[int]:
        """The end-of-turn token the chat template will write after this reply in the
        next turn's prompt: the one the model ended it with, else the one the template
        wrote after the messages before it (the last in the prompt). It closes the chunk
        the next turn continues from (:mod:`fireside.generation.chunking`)."""
        token = self._ended_by.pop(seq, None)
        if token is not None:
            return [token]
        ends = self.chunking.ends
        return next(([t] for t in reversed(prompt) if t in ends), [])

    def _want_realign(self, seq: int, conversation: list[int]) -> None:
        if self._no_realign:
            return
        self._realign[seq] = _Realign(conversation)
        _watch_at_exit(self)

    def _stop_realigning(self, timeout: float = 30.0) -> None:
        """No more realigning: drop what is due and wait for a chunk under way to stop
        (at exit, so that no decode still runs when the context is freed)."""
        with self._cond:
            self._no_realign = True
            self._realign.clear()
            self._ended_by.clear()
        self._interrupt_realign()
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._realigner_driving and time.monotonic() < deadline:
                self._cond.wait(0.5)

    def interrupt_idle(self) -> None:
        """Stop a realigning decode under way (a request came, here or to another model)."""
        self._interrupt_realign()

    def _interrupt_realign(self) -> None:
        """Cancel a realigning decode under way (a request or a caller wants the engine)."""
        with self._guard:
            if self._realigning and not self._ctx_cancelled:
                self.ctx.cancel()
                self._ctx_cancelled = True

    def drive_idle(self) -> bool:
        """Realign one chunk of a finished reply if one is due and no engine has requests
        (called by the compute thread); whether it did."""
        with self._cond:
            if (
                self._closed
                or self._stopping
                or not self._realign
                or self._driving
                or self._n_jobs
                or compute.others_busy(self)
            ):
                return False
            self._driving = self._realigner_driving = True
        try:
            self._realign_chunk()
        except Exception:  # a bug: stop realigning, keep serving
            log.exception("realigning a reply failed")
            self._realign.clear()
            self._ended_by.clear()
        finally:
            with self._cond:
                self._driving = self._realigner_driving = False
                self._cond.notify_all()
        return True

    def _realign_chunk(self, *, now: bool = False) -> None:
        """Evaluate the next whole chunk of one slot's reply (see :attr:`realign_pending`);
        ``now``: for a caller holding the engine, so requests do not interrupt it."""
        seq = min(self._realign)
        slot, ctx = self.slots[seq], self.ctx
        job = self._realign[seq]
        if not job.started:  # first chunk: cut the cache back to its reusable prefix
            conversation = job.tokens
            held = min(common_prefix_length(slot.cached, conversation), self._exact[seq])
            exact = self.chunking.floor(conversation, held)
            end = self.chunking.floor(conversation, len(conversation))
            if slot.busy or end <= exact or not ctx.seq_rm(seq, exact, -1):
                del self._realign[seq]
                return
            del slot.cached[exact:]
            self._exact[seq] = exact
            job.tokens, job.started = conversation[:end], True
        target = job.tokens
        start = len(slot.cached)
        tokens = target[start : self.chunking.end(target, start)]
        with self._guard:
            self._realigning = not now
        try:
            if not now and (self._n_jobs or compute.others_busy(self)):
                return  # a request came before the flag was up
            ctx.decode(
                tokens,
                positions=list(range(start, start + len(tokens))),
                seq_ids=seq,
                logits=[False] * len(tokens),
            )
        except GenerationCancelled:
            return  # interrupted: the chunk was rolled back; go on later
        except FiresideError as error:
            log.warning("realigning sequence %d failed: %s", seq, error)
            slot.forget(ctx)
            self._exact[seq] = 0
            del self._realign[seq]
            return
        finally:
            with self._guard:
                self._realigning = False
                if self._ctx_cancelled:
                    self._ctx_cancelled = False
                    ctx.reset_cancel()
        slot.cached.extend(tokens)
        self._exact[seq] = start + len(tokens)
        self._stats.n_realigned_tokens += len(tokens)
        if self.observer is not None:
            self.observer.realigned(len(tokens))
        if len(slot.cached) >= len(target):
            del self._realign[seq]
            if self._disk is not None:  # the conversation through the reply, for a restart
                self._store(slot)

    # -- the prompt cache on disk ------------------------------------------------------

    def _restore(self, slot: Slot, prompt: list[int], bounds: list[int], keep: int) -> None:
        """Restore into ``slot`` the longest stored prefix of ``prompt`` beyond the
        ``keep`` tokens it holds, ending at one of the prompt's chunk ``bounds`` (short of
        its last token) and at least the cache's minimum long."""
        disk = self._disk
        assert disk is not None
        shortest = max(keep + 1, disk.min_tokens)
        if not bounds or bounds[-1] < shortest:
            return
        found = disk.find(prompt, bounds, shortest=shortest)
        if found is None or found.n_tokens <= keep:
            return
        seq = slot.seq_id
        slot.forget(self.ctx)
        self._exact[seq] = 0
        try:
            self.ctx.seq_state_set(found.payload, seq)
        except (ValueError, FiresideError) as error:
            slot.forget(self.ctx)
            disk.cache.reject(found.path, f"llama.cpp cannot restore it ({error})")
            return
        if found.n_tokens < found.n_file and not self.ctx.seq_rm(seq, found.n_tokens, -1):
            slot.forget(self.ctx)  # the start of a longer prefix, in a cache that cannot be cut
            return
        slot.cached = prompt[: found.n_tokens]
        self._exact[seq] = found.n_tokens
        disk.cache.hit(found)

    def _store(self, slot: Slot) -> None:
        """Hand the prompt cache the cells of ``slot``'s reusable prefix, if that is long
        enough and not stored yet. The cells after it (a partial chunk, the reply) are
        never reused (see "Determinism"), so they are dropped first."""
        disk = self._disk
        assert disk is not None
        seq, n = slot.seq_id, self._exact[slot.seq_id]
        bounds = self.chunking.boundaries(slot.cached, min(n, len(slot.cached)))
        n = bounds[-1] if bounds else 0
        if n < disk.min_tokens:
            return
        keys = disk.keys(slot.cached, bounds)
        if disk.stored(keys[n]):
            return
        if n < len(slot.cached):
            if not self.ctx.seq_rm(seq, n, -1):
                return  # a cache that cannot be cut
            del slot.cached[n:]
        try:
            payload = self.ctx.seq_state_get(seq)
        except FiresideError as error:
            log.warning("the prompt cache could not read sequence %d: %s", seq, error)
            return
        disk.save(list(keys.values()), n, payload)

    def _end(self, request: Request, event: Done | BaseException) -> None:
        self._timing.pop(request.id, None)
        if isinstance(event, Done) and self.observer is not None:
            self.observer.finish(event.finish_reason, event.usage.completion_tokens)
        request.emit(event)
        with self._cond:
            self._n_jobs -= 1
