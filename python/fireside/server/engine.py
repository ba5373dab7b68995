"""Continuous batching: many generations share one model and one llama.cpp context.

The context holds ``parallel`` sequences, one per :class:`~fireside.server.slots.Slot`,
each with its own part of the KV cache (``kv_unified=False``: a sequence's attention never
sees another's cells, so a request's greedy output does not depend on its neighbours).

A single scheduler thread runs the loop. Each step it

1. frees the slots of cancelled jobs (a client that went away),
2. admits waiting jobs into free slots, choosing the slot whose cache shares the longest
   prefix with the job's prompt (only the rest is evaluated),
3. builds **one batch**: the pending token of every generating slot, then chunks of the
   prompts being evaluated, up to ``n_batch`` tokens,
4. calls ``decode`` once (the GIL is released while llama.cpp works), and
5. samples each slot that has logits with its own sampler, at its index in the batch, and
   hands the text to the job's reader on the event loop.

A job submitted while others run joins at the next step; nothing waits for a generation
to finish unless every slot is busy (then jobs queue, up to ``max_queue``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from fireside.errors import ContextLengthError, FiresideError
from fireside.generation.results import Usage
from fireside.generation.threads import ThreadPolicy, ThreadSetting
from fireside.server.jobs import Done, Job, Outbox
from fireside.server.metrics import Metrics
from fireside.server.slots import Slot

if TYPE_CHECKING:
    from fireside import _core

log = logging.getLogger("fireside.server")


class QueueFullError(FiresideError, RuntimeError):
    """Every slot is busy and the waiting queue is full; retry after ``retry_after`` s."""

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EngineStoppedError(FiresideError, RuntimeError):
    """The engine is not running (shut down, or its scheduler failed)."""


class Engine:
    """Runs generations on ``parallel`` slots of one context, in batched steps.

    Args:
        model: the native model (kept open by the caller while the engine runs).
        parallel: sequences decoded together (slots).
        n_ctx_seq: context of each slot in tokens (prompt plus completion).
        n_batch: the most tokens evaluated in one step.
        n_threads: CPU threads for decoding: a number (0: the physical cores), or
            ``"auto"``: chosen by one :class:`~fireside.generation.threads.ThreadPolicy`
            for the whole engine from the machine's load and the step times.
        thread_policy: a policy to use instead (tests inject one with their own load).
        max_queue: jobs that may wait for a slot; more are refused with
            :class:`QueueFullError`.
        metrics: where to count (a new :class:`Metrics` by default).
    """

    def __init__(
        self,
        model: _core.Model,
        *,
        parallel: int = 4,
        n_ctx_seq: int = 4096,
        n_batch: int = 512,
        n_threads: ThreadSetting | int = 0,
        max_queue: int = 64,
        metrics: Metrics | None = None,
        thread_policy: ThreadPolicy | None = None,
    ) -> None:
        from fireside import _core

        for name, value, low in (
            ("parallel", parallel, 1),
            ("n_ctx_seq", n_ctx_seq, 16),
            ("n_batch", n_batch, 1),
            ("max_queue", max_queue, 0),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if thread_policy is None:
            if n_threads == 0:
                from fireside.defaults import default_n_threads

                n_threads = default_n_threads()
            # generation steps are multi-token batches: llama.cpp runs them on the batch count
            thread_policy = ThreadPolicy(n_threads, batched=True)
        self.threads = thread_policy
        """The engine's thread policy (one for all requests)."""
        self._record = thread_policy.record if thread_policy.auto else None
        self.model = model
        self.ctx = _core.Context(
            model,
            n_ctx=n_ctx_seq * parallel,
            n_batch=n_batch,
            n_ubatch=min(n_batch, 512),
            n_seq_max=parallel,
            n_threads=thread_policy.n_threads,
            n_threads_batch=thread_policy.n_threads_batch,
            kv_unified=False,
        )
        self.n_ctx_seq = self.ctx.n_ctx_seq
        self.n_batch = self.ctx.n_batch
        self.max_queue = max_queue
        self.metrics = metrics or Metrics()
        self.metrics.watch_threads(thread_policy.stats)
        self.slots = [Slot(i, model) for i in range(parallel)]
        self._cond = threading.Condition()
        self._outbox = Outbox()  # events of a step, delivered together (scheduler thread)
        self._waiting: deque[Job] = deque()
        self._n_jobs = 0  # waiting plus running
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.failure: BaseException | None = None
        """Why the scheduler stopped, if it failed."""

    # -- lifetime ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the scheduler thread."""
        if self._thread is not None:
            raise RuntimeError("the engine is already started")
        self._thread = threading.Thread(target=self._run, name="fireside-engine", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the scheduler (running jobs end with an error) and free the context."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._thread is None or not self._thread.is_alive():
            self.ctx.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    @property
    def parallel(self) -> int:
        return len(self.slots)

    @property
    def queue_depth(self) -> int:
        """Jobs waiting for a slot."""
        return len(self._waiting)

    @property
    def active_slots(self) -> int:
        """Slots running a job."""
        return sum(slot.busy for slot in self.slots)

    # -- submitting --------------------------------------------------------------------

    def submit(self, job: Job) -> None:
        """Queue ``job``; it starts at the next step that has a free slot.

        ``job.max_tokens`` is capped to the room its prompt leaves in a slot. Raises
        :class:`~fireside.errors.ContextLengthError` for a prompt that does not fit a slot,
        :class:`QueueFullError` when too many jobs wait, :class:`EngineStoppedError` when
        the engine is not running.
        """
        n_prompt = len(job.prompt)
        if n_prompt == 0:
            raise ValueError("the prompt is empty: it has no tokens to continue from")
        if n_prompt >= self.n_ctx_seq:
            raise ContextLengthError(
                f"the prompt has {n_prompt} tokens but a request may use at most "
                f"{self.n_ctx_seq} tokens (prompt plus completion); shorten it",
                n_prompt_tokens=n_prompt,
                n_ctx=self.n_ctx_seq,
            )
        if job.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {job.max_tokens}")
        job.max_tokens = min(job.max_tokens, self.n_ctx_seq - n_prompt)
        with self._cond:
            if not self.running:
                raise EngineStoppedError("the server is not accepting requests (shutting down)")
            if self._n_jobs >= len(self.slots) + self.max_queue:
                raise QueueFullError(
                    f"all {len(self.slots)} slots are busy and {len(self._waiting)} requests "
                    "are waiting; retry shortly",
                    retry_after=1,
                )
            self._n_jobs += 1
            job.use_outbox(self._outbox)
            self._waiting.append(job)
            job._on_cancel = self._wake
            self._cond.notify()

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    # -- the scheduler -----------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    idle = False
                    while not (self._stopping or self._waiting or self.active_slots):
                        idle = True
                        self._cond.wait()
                    if self._stopping:
                        break
                if idle and self._record is not None:
                    self.threads.begin()  # measure the machine's load afresh
                self._reap_cancelled()
                self._admit()
                if self.active_slots:
                    self._step()
                self._outbox.flush()
        except BaseException as error:  # a bug, or the context failing for good
            log.exception("the generation engine failed")
            self.failure = error
            with self._cond:
                self._stopping = True
        finally:
            self._abort_all(self.failure)

    def _abort_all(self, cause: BaseException | None) -> None:
        error = EngineStoppedError(
            "the server stopped before the generation ended"
            if cause is None
            else f"the generation engine failed: {cause}"
        )
        with self._cond:
            jobs = list(self._waiting)
            self._waiting.clear()
        for slot in self.slots:
            if slot.job is not None:
                jobs.append(slot.job)
                slot.job = None
        for job in jobs:
            job.emit(error)
        self._outbox.flush()
        with self._cond:
            self._n_jobs = 0

    def _release(self, job: Job, done: Done | BaseException) -> None:
        if isinstance(done, Done):
            self.metrics.finish(done.finish_reason, done.usage.completion_tokens)
        job.emit(done)
        with self._cond:
            self._n_jobs -= 1

    def _reap_cancelled(self) -> None:
        for slot in self.slots:
            job = slot.job
            if job is not None and job.cancelled:
                self._release(job, slot.cancel())

    def _admit(self) -> None:
        while True:
            with self._cond:
                free = [slot for slot in self.slots if not slot.busy]
                if not free or not self._waiting:
                    return
                job = self._waiting.popleft()
            if job.cancelled:  # gave up while waiting
                n = len(job.prompt)
                self._release(job, Done("cancelled", Usage(n, 0, n), 0, None))
                continue
            # the longest reusable prefix; among equals, the slot unused the longest
            slot = max(free, key=lambda s: (s.reuse(job.prompt), -s.last_used))
            slot.assign(job, self.ctx)
            self.metrics.admitted(len(job.prompt), slot.n_cached)

    def _step(self) -> None:
        tokens: list[int] = []
        positions: list[int] = []
        seq_ids: list[int] = []
        logits: list[bool] = []
        added: list[tuple[Slot, list[int]]] = []  # what each slot's cache gains
        sample_at: list[tuple[Slot, int]] = []  # slots to sample, at their batch index

        def put(slot: Slot, chunk: list[int], want_logits: bool) -> None:
            start = len(slot.cached)
            tokens.extend(chunk)
            positions.extend(range(start, start + len(chunk)))
            seq_ids.extend([slot.seq_id] * len(chunk))
            logits.extend([False] * (len(chunk) - 1))
            logits.append(want_logits)
            added.append((slot, chunk))
            if want_logits:
                sample_at.append((slot, len(tokens) - 1))

        for slot in self.slots:  # generating: one token each
            if slot.job is not None and slot.next_token is not None:
                put(slot, [slot.next_token], True)
        n_generating = len(tokens)
        prefilling = sorted(
            (slot for slot in self.slots if slot.prefilling),
            key=lambda s: s.job.id,  # type: ignore[union-attr]
        )
        for slot in prefilling:  # prompts: first come, first served, within the budget
            budget = self.n_batch - len(tokens)
            if budget <= 0:
                break
            prompt = slot.job.prompt  # type: ignore[union-attr]
            start = len(slot.cached)
            chunk = prompt[start : start + budget]
            put(slot, chunk, start + len(chunk) == len(prompt))

        try:
            t_step = time.perf_counter()
            self.ctx.decode(tokens, positions=positions, seq_ids=seq_ids, logits=logits)
            # the thread policy learns from generation-only steps (prompt chunks vary)
            record = self._record if n_generating == len(tokens) else None
            if record is not None and record(time.perf_counter() - t_step, n_generating):
                self.ctx.set_threads(self.threads.n_threads, self.threads.n_threads_batch)
        except FiresideError as error:  # context full, llama.cpp failure: fail this batch
            log.warning("decode failed for %d sequences: %s", len(added), error)
            for slot, _ in added:
                job = slot.job
                slot.forget(self.ctx)
                slot.job = None
                if job is not None:
                    self._release(job, error)
            return
        self.metrics.step(len(tokens), len(added))
        for slot, chunk in added:
            slot.cached.extend(chunk)
        for slot, index in sample_at:
            job = slot.job
            if job is None:
                continue
            first = slot.first_token_at is None
            try:
                token = job.sampler.sample(self.ctx, index)
                done = slot.on_token(token, self.ctx, index)
            except (FiresideError, ValueError, RuntimeError) as error:  # e.g. a dead-end grammar
                log.warning("sampling failed for job %d: %s", job.id, error)
                slot.cancel()
                self._release(job, error)
                continue
            if first and slot.first_token_at is not None:
                self.metrics.first_token(slot.first_token_at - job.submitted)
            if done is not None:
                self._release(job, done)


def wait_idle(engine: Engine, timeout: float) -> bool:
    """Wait until no slot is busy and nothing waits (tests and graceful shutdown)."""
    deadline = time.monotonic() + timeout
    while engine.active_slots or engine.queue_depth:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
