"""A slot: one sequence of the engine's context, and the request running on it.

The slot remembers which tokens its sequence holds in the KV cache (``cached``), so a new
request can keep the longest common prefix and evaluate only the rest. While a request
runs, the slot's :class:`~fireside.generation.emitter.SequenceEmitter` turns each sampled
token into text. Only the thread driving the engine touches a slot.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from fireside.generation.emitter import SequenceEmitter
from fireside.generation.speculative import DraftPolicy

if TYPE_CHECKING:
    from fireside import _core
    from fireside.generation.requests import Request
    from fireside.generation.speculative import Drafter


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


class Slot:
    """Sequence ``seq_id`` of the engine's context."""

    __slots__ = (
        "cached",
        "draft_policy",
        "emitter",
        "last_used",
        "lookup",
        "model",
        "n_cached",
        "n_looked_up",
        "next_token",
        "request",
        "seq_id",
    )

    def __init__(self, seq_id: int, model: _core.Model) -> None:
        self.seq_id = seq_id
        self.model = model
        self.cached: list[int] = []
        """Tokens in this sequence's KV cache, positions 0..n-1."""
        self.request: Request | None = None
        self.emitter: SequenceEmitter | None = None
        self.last_used = 0.0
        self.n_cached = 0
        """Prompt tokens of the running request that were reused from the cache."""
        self.next_token: int | None = None
        """Sampled, to be decoded at the next step."""
        self.lookup: Drafter | None = None
        """Drafts for the running request (``None``: it does not speculate)."""
        self.draft_policy: DraftPolicy | None = None
        """How many tokens it drafts (with :attr:`lookup`)."""
        self.n_looked_up = 0
        """Generated tokens already added to :attr:`lookup`."""

    @property
    def busy(self) -> bool:
        return self.request is not None

    @property
    def prefilling(self) -> bool:
        """Still evaluating its prompt (no token sampled yet)."""
        request = self.request
        return request is not None and len(self.cached) < len(request.prompt)

    def shared(self, prompt: list[int]) -> int:
        """How many leading tokens of ``prompt`` this slot's cache holds, short of its last
        one (which is evaluated for its logits); the engine cuts that back to a chunk
        boundary (:mod:`fireside.generation.chunking`)."""
        return min(common_prefix_length(self.cached, prompt), len(prompt) - 1)

    def assign(self, request: Request, ctx: _core.Context, keep: int) -> None:
        """Start ``request`` here, reusing the first ``keep`` cached tokens: drop the rest."""
        if keep < len(self.cached):
            if not ctx.seq_rm(self.seq_id, keep, -1):  # a model whose cache cannot be cut
                ctx.seq_rm(self.seq_id, -1, -1)
                keep = 0
            del self.cached[keep:]
        self.request = request
        self.n_cached = keep
        self.next_token = None
        self.emitter = SequenceEmitter(
            self.model,
            max_tokens=request.max_tokens,
            stops=request.stops,
            top_logprobs=request.top_logprobs,
        )

    def speculate(self, drafter: Drafter, limit: int) -> None:
        """Let the running request draft up to ``limit`` tokens per step with ``drafter``."""
        self.lookup = drafter
        self.draft_policy = DraftPolicy(limit)
        self.n_looked_up = 0

    def forget(self, ctx: _core.Context) -> None:
        """Clear this sequence (after a failed decode its contents are unknown)."""
        ctx.seq_rm(self.seq_id, -1, -1)
        self.cached.clear()

    def release(self) -> None:
        """The request is over: the slot is free (its cache is kept for reuse)."""
        self.request = None
        self.emitter = None
        self.next_token = None
        self.lookup = None
        self.draft_policy = None
        self.last_used = time.monotonic()
