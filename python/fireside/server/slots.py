"""A slot: one sequence of the shared context, and the generation running on it.

The slot remembers which tokens its sequence holds in the KV cache (``cached``), so a new
job can keep the longest common prefix and evaluate only the rest. While a job runs, the
slot turns each sampled token into text (streaming detokenizer, stop-string holdback) and
decides when the job ends. The engine's scheduler thread is the only caller.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from fireside.generation.detokenizer import StreamingDetokenizer
from fireside.generation.loop import common_prefix_length
from fireside.generation.results import FinishReason, TokenLogprob, Usage
from fireside.generation.stops import StopHoldback
from fireside.server.jobs import Chunk, Done, Job

if TYPE_CHECKING:
    from fireside import _core


class Slot:
    """Sequence ``seq_id`` of the engine's context."""

    def __init__(self, seq_id: int, model: _core.Model) -> None:
        self.seq_id = seq_id
        self.model = model
        self.cached: list[int] = []
        """Tokens in this sequence's KV cache, positions 0..n-1."""
        self.job: Job | None = None
        self.last_used = 0.0
        # per job
        self.n_cached = 0  # prompt tokens reused from the cache
        self.next_token: int | None = None  # sampled, to be decoded at the next step
        self.generated: list[int] = []
        self.first_token_at: float | None = None
        self._detok: StreamingDetokenizer | None = None
        self._holdback: StopHoldback | None = None
        self._logprobs: list[TokenLogprob] = []

    @property
    def busy(self) -> bool:
        return self.job is not None

    @property
    def prefilling(self) -> bool:
        """Still evaluating its prompt (no token sampled yet)."""
        return self.job is not None and len(self.cached) < len(self.job.prompt)

    def reuse(self, prompt: list[int]) -> int:
        """How many leading tokens of ``prompt`` this slot's cache could keep."""
        n = common_prefix_length(self.cached, prompt)
        return min(n, len(prompt) - 1)  # the last prompt token is evaluated for its logits

    def assign(self, job: Job, ctx: _core.Context) -> None:
        """Start ``job`` here: drop the cached tokens after the common prefix."""
        keep = self.reuse(job.prompt)
        if keep < len(self.cached):
            if not ctx.seq_rm(self.seq_id, keep, -1):  # a model whose cache cannot be cut
                ctx.seq_rm(self.seq_id, -1, -1)
                keep = 0
            del self.cached[keep:]
        self.job = job
        self.n_cached = keep
        self.next_token = None
        self.generated = []
        self.first_token_at = None
        self._detok = StreamingDetokenizer(self.model.token_to_piece)
        self._holdback = StopHoldback(job.stops) if job.stops else None
        self._logprobs = []

    def forget(self, ctx: _core.Context) -> None:
        """Clear this sequence (after a failed decode its contents are unknown)."""
        ctx.seq_rm(self.seq_id, -1, -1)
        self.cached.clear()

    def on_token(self, token: int, ctx: _core.Context, index: int) -> Done | None:
        """Handle the token sampled at batch ``index``; emit text; return ``Done`` at the end."""
        job, detok = self.job, self._detok
        assert job is not None and detok is not None
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        if self.model.is_eog(token):
            return self._finish("eos")
        self.generated.append(token)
        if job.top_logprobs is not None:
            self._logprobs.append(self._token_logprob(ctx, index, token, job.top_logprobs))
        text = detok.add(token)
        hit = False
        if text and self._holdback is not None:
            text, hit = self._holdback.push(text)
        if hit:
            return self._finish("stop", text)
        if len(self.generated) >= job.max_tokens:
            return self._finish("length", text)
        if text:
            job.emit(Chunk(text, self._take_logprobs()))
        self.next_token = token
        return None

    def cancel(self) -> Done:
        """End the job because it was cancelled."""
        return self._finish("cancelled", emit_text=False)

    def _finish(self, reason: FinishReason, text: str = "", *, emit_text: bool = True) -> Done:
        job = self.job
        assert job is not None and self._detok is not None
        if reason != "stop":  # release what the detokenizer and the holdback still hold
            tail = self._detok.flush()
            holdback = self._holdback
            if holdback is None:
                text += tail
            else:
                hit = False
                if tail:
                    tail, hit = holdback.push(tail)
                    text += tail
                if hit:
                    reason = "stop"
                else:
                    text += holdback.flush()
        if emit_text and (text or self._logprobs):
            job.emit(Chunk(text, self._take_logprobs()))
        ttft = None if self.first_token_at is None else self.first_token_at - job.submitted
        n_prompt, n_completion = len(job.prompt), len(self.generated)
        done = Done(
            finish_reason=reason,
            usage=Usage(n_prompt, n_completion, n_prompt + n_completion),
            n_cached=self.n_cached,
            time_to_first_token=ttft,
        )
        self.job = None
        self.next_token = None
        self._detok = self._holdback = None
        self.last_used = time.monotonic()
        return done

    def _take_logprobs(self) -> list[TokenLogprob]:
        taken, self._logprobs = self._logprobs, []
        return taken

    def _token_logprob(
        self, ctx: _core.Context, index: int, token: int, top_n: int
    ) -> TokenLogprob:
        logprob, top = ctx.logprobs(index, token, top_n)
        return TokenLogprob(
            token=token,
            text=self._piece(token),
            logprob=logprob,
            top=[(self._piece(t), p) for t, p in top],
        )

    def _piece(self, token: int) -> str:
        return self.model.token_to_piece(token).decode("utf-8", errors="replace")
