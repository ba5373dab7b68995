"""The server's engine: the generation engine with metrics and an outbox that wakes each
event loop once per step.

Everything about batching, prefix reuse, sampling and finishing is
:class:`fireside.generation.engine.Engine`'s; this module only wires the server's parts to
it (see that module for how a step works and what is deterministic).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fireside.errors import EngineStoppedError, QueueFullError
from fireside.generation import engine as generation
from fireside.generation.threads import AUTO, ThreadPolicy, ThreadSetting
from fireside.server.jobs import Job, Outbox
from fireside.server.metrics import Metrics

if TYPE_CHECKING:
    from fireside import _core
    from fireside.generation.prompt_cache import PromptCache
    from fireside.generation.requests import Request

__all__ = ["Engine", "EngineStoppedError", "QueueFullError", "wait_idle"]


class Engine(generation.Engine):
    """Runs the server's jobs on ``parallel`` slots of one context, in batched steps.

    Args:
        model: the native model (kept open by the caller while the engine runs).
        parallel: sequences decoded together (slots).
        n_ctx_seq: context of each slot in tokens (prompt plus completion).
        n_batch: the most prompt tokens evaluated in one step.
        n_threads: CPU threads for decoding: a number (used as given), or ``"auto"``
            (the default): chosen by one :class:`~fireside.generation.threads.ThreadPolicy`
            for the whole engine from the machine's load and the step times.
        thread_policy: a policy to use instead (tests inject one with their own load).
        max_queue: jobs that may wait for a slot; more are refused with
            :class:`QueueFullError`.
        metrics: where to count (a new :class:`Metrics` by default).
        speculative: speculative decoding in every slot (see
            :class:`fireside.generation.engine.Engine`).
        prompt_cache: the server's prompt cache on disk, shared by its engines (see
            :mod:`fireside.generation.prompt_cache`).
    """

    def __init__(
        self,
        model: _core.Model,
        *,
        parallel: int = 4,
        n_ctx_seq: int = 4096,
        n_batch: int = 512,
        n_threads: ThreadSetting = AUTO,
        max_queue: int = 64,
        metrics: Metrics | None = None,
        thread_policy: ThreadPolicy | None = None,
        speculative: bool = True,
        prompt_cache: PromptCache | None = None,
    ) -> None:
        if thread_policy is None:
            # generation steps are multi-token batches: llama.cpp runs them on the batch count
            thread_policy = ThreadPolicy(n_threads, batched=True)
        self.metrics = metrics or Metrics()
        self.metrics.watch_threads(thread_policy.stats)
        self._outbox = Outbox()  # events of a step, delivered together
        super().__init__(
            model,
            n_seq=parallel,
            n_ctx_seq=n_ctx_seq,
            n_batch=n_batch,
            policy=thread_policy,
            max_queue=max_queue,
            observer=self.metrics,
            on_step=self._outbox.flush,
            speculative=speculative,
            prompt_cache=prompt_cache,
        )

    def submit(self, request: Request) -> None:
        """Queue a job (see :meth:`fireside.generation.engine.Engine.submit`); ``max_tokens``
        must be at least 1."""
        if request.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {request.max_tokens}")
        if isinstance(request, Job):
            request.use_outbox(self._outbox)
        super().submit(request)


def wait_idle(engine: generation.Engine, timeout: float) -> bool:
    """Wait until no slot is busy and nothing waits (tests and graceful shutdown)."""

    def idle() -> bool:
        return not (engine.active_slots or engine.queue_depth)

    engine.wait(idle, timeout)
    return idle()
