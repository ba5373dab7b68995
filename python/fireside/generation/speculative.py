"""Speculative decoding: drafts, their adaptive length, and the exactness probe.

A slot that generates may propose a few tokens ahead (a *draft*); the engine then
evaluates the pending token and the drafted ones in one decode, with logits at every
position, and samples the target model at each position in order with the request's own
sampler (llama.cpp's rule). A drafted token is kept while it equals the token sampled
before it; the first sampled token that differs, or the one after the last drafted token,
becomes the next pending token, and the cache cells of the rejected drafts are removed.

Why the output does not change:

* every kept token is a real sample from the target at its position, taken by the same
  sampler calls, in the same order, as without speculation: stateful stages (penalties,
  DRY, grammar, mirostat) and the random generator see exactly the same sequence, and a
  rejected draft is never shown to the sampler. The draft only decides how many positions
  are evaluated in one decode;
* the logits at each position must be the same bits as a one-token decode gives. On the
  CPU backend that holds for short batches of one sequence (measured: 48 tokens and fewer for
  SmolLM2 Q4_1), but some weight types use another kernel for batches of 4 rows or more
  (Q4_K on x86: 4-row tiles). So before a verification longer than any so far an
  engine runs :func:`probe_exact` for the next sizes of ``PROBE_SIZES``, and drafts are
  capped to what it proved exact (no speculation at all when a 2-token batch already
  differs). Probing costs a few decodes, once per size, and only up to the lengths that
  the measured cost makes worth drafting.

Drafts come from a :class:`PromptLookup` (the continuation of the longest recent n-gram
match in the prompt and output so far; no second model) or from a draft model
(:mod:`fireside.generation.draft`). :class:`DraftPolicy` chooses how many tokens to
propose from the request's acceptance rate and the verification cost
:class:`VerifyCost` measures: the output never depends on it, only the speed does.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fireside import _core

MAX_DRAFT = 16
"""The most tokens drafted for one verification (a batch of at most 17 tokens)."""
NGRAM_MAX = 4
"""The longest n-gram looked up (longer matches are tried first)."""
NGRAM_MIN = 2
"""The shortest n-gram looked up: single-token matches draft too often in free writing."""
PROBE_SIZES = (2, 3, 4, 5, 8, 9, 16, 17)
"""Batch sizes :func:`probe_exact` compares with one-token decodes (kernels switch at
multiples of 4 rows or at powers of two)."""


class Drafter(Protocol):
    """What the engine asks of a request's drafter (:class:`PromptLookup`, or
    :class:`fireside.generation.draft.ModelDrafter`)."""

    def extend(self, tokens: Sequence[int]) -> None:
        """Append generated tokens to the history."""

    def tail(self, n: int) -> list[int]:
        """The last ``n`` tokens of the history (repeated to ``n`` when it is shorter)."""

    def draft(self, limit: int) -> list[int]:
        """Up to ``limit`` tokens expected after the history."""


class PromptLookup:
    """Drafts by prompt lookup: the tokens that followed the most recent earlier
    occurrence of the longest suffix n-gram (``NGRAM_MAX`` down to ``NGRAM_MIN`` tokens) of
    the prompt plus the output so far.

    An index maps every n-gram to where its latest occurrence was followed, so a lookup
    costs a few dictionary probes whatever the prompt's length.
    """

    __slots__ = ("_history", "_index")

    def __init__(self, prompt: Sequence[int]) -> None:
        self._history: list[int] = []
        self._index: list[dict[tuple[int, ...], int]] = [
            {} for _ in range(NGRAM_MAX - NGRAM_MIN + 1)
        ]
        self.extend(prompt)

    def __len__(self) -> int:
        return len(self._history)

    def tail(self, n: int) -> list[int]:
        """The last ``n`` tokens of the history, repeated to ``n`` when it is shorter."""
        history = self._history
        if not history:
            return []
        if len(history) >= n:
            return history[-n:]
        return (history * (n // len(history) + 1))[:n]

    def extend(self, tokens: Sequence[int]) -> None:
        """Append tokens (prompt or generated) to the history."""
        history = self._history
        for token in tokens:
            end = len(history)  # the n-grams ending before ``token`` are followed by it
            for i, index in enumerate(self._index):
                n = NGRAM_MIN + i
                if end >= n:
                    index[tuple(history[end - n : end])] = end
            history.append(token)

    def draft(self, limit: int) -> list[int]:
        """Up to ``limit`` tokens continuing the history (empty when nothing matches)."""
        history = self._history
        end = len(history)
        if limit <= 0:
            return []
        for i in range(len(self._index) - 1, -1, -1):
            n = NGRAM_MIN + i
            if end < n:
                continue
            start = self._index[i].get(tuple(history[end - n :]))
            if start is not None:  # always < end: the suffix itself is not indexed yet
                return history[start : min(start + limit, end)]
        return []


class VerifyCost:
    """What a verification costs on this machine, measured as generation runs.

    ``beta``: the cost of each token beyond the first in a verification decode, as a
    fraction of a one-token decode (near 0 where decoding is bound by memory bandwidth,
    e.g. a GPU or a large model; near 1 where it is bound by arithmetic, e.g. a small model
    on one CPU core, where speculation cannot pay). Running averages of the step times
    (one-token steps of one sequence, and verifications) keep it current; ``fixed`` pins
    it (``speculative="always"`` drafts as if verifying were free).
    """

    __slots__ = ("beta", "fixed", "single")

    def __init__(self, fixed: float | None = None) -> None:
        self.fixed = fixed
        self.single: float | None = None
        """Seconds of a one-token decode of one sequence (running average)."""
        self.beta: float | None = fixed

    def pin(self, beta: float | None) -> None:
        """Use this cost from now on instead of measuring (``None``: measure again)."""
        self.fixed = beta
        self.beta = beta

    def one_token(self, seconds: float) -> None:
        """A one-token decode of one sequence took ``seconds``."""
        self.single = seconds if self.single is None else 0.9 * self.single + 0.1 * seconds

    def verified(self, n_tokens: int, seconds: float) -> None:
        """A verification decode of ``n_tokens`` tokens took ``seconds``."""
        if self.fixed is not None or self.single is None or n_tokens < 2:
            return
        beta = min(2.0, max(0.0, (seconds / self.single - 1.0) / (n_tokens - 1)))
        self.beta = beta if self.beta is None else 0.8 * self.beta + 0.2 * beta


class DraftPolicy:
    """How many tokens one request drafts: the length that maximises the expected tokens
    per unit of decode cost, ``(1 + p + p^2 + ... + p^k) / (1 + beta * k)``, where ``p``
    is the request's recent acceptance rate (each drafted token kept with probability
    ``p`` when the one before it was) and ``beta`` comes from :class:`VerifyCost`.

    When no length pays, it drafts nothing, except one token every ``EXPLORE`` chances
    (so a request whose drafts start to match, e.g. a quotation, is noticed), and only
    where drafts that always matched would pay at least ``EXPLORE_GAIN`` (on a CPU where a
    drafted token costs about a step, a trial can only lose).
    """

    EXPLORE = 32
    EXPLORE_GAIN = 1.5

    __slots__ = ("_accepted", "_best", "_drafted", "_skipped", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._drafted = 0.0
        self._accepted = 0.0
        self._skipped = 0
        self._best: tuple[float, int] | None = None  # (beta, length) for the current rate

    @property
    def acceptance(self) -> float:
        """The recent acceptance rate (a prior of 1/2 weighs two tokens)."""
        return (self._accepted + 1.0) / (self._drafted + 2.0)

    def length(self, beta: float | None) -> int:
        """Tokens to draft now (0: none), given the cost ``beta`` (``None``: unknown)."""
        if self.limit < 1:
            return 0
        if beta is None:
            return 1  # learn the cost with the cheapest draft
        memo = self._best  # asked every step; the rate changes only with update()
        if memo is not None and memo[0] == beta:
            best = memo[1]
        else:
            best = self._best_length(beta)
            self._best = (beta, best)
        if best == 0 and (1.0 + self.limit) / (1.0 + beta * self.limit) >= self.EXPLORE_GAIN:
            self._skipped += 1
            if self._skipped >= self.EXPLORE:
                self._skipped = 0
                return 1
        return best

    def _best_length(self, beta: float) -> int:
        p = self.acceptance
        best, best_gain = 0, 1.0
        expected, term = 1.0, 1.0
        for k in range(1, self.limit + 1):
            term *= p
            expected += term
            gain = expected / (1.0 + beta * k)
            if gain > best_gain:
                best, best_gain = k, gain
        return best

    def update(self, drafted: int, accepted: int) -> None:
        """Learn from one verification (older verifications count less and less)."""
        self._drafted = 0.8 * self._drafted + drafted
        self._accepted = 0.8 * self._accepted + accepted
        self._best = None


def probe_exact(
    ctx: _core.Context,
    seq_id: int,
    n_past: int,
    tokens: Sequence[int],
    sizes: Sequence[int],
    *,
    cost: VerifyCost | None = None,
) -> int | None:
    """The largest of ``sizes`` (ascending) up to which every batch of one sequence gives
    logits bit for bit those of one-token decodes; ``None`` when the first already differs.

    Evaluates ``tokens`` (at least ``sizes[-1]`` of them) after the ``n_past`` cells
    sequence ``seq_id`` holds, and removes them again: the cache keeps only what it held.
    The decode times are a measurement for ``cost``.
    """
    n = sizes[-1]
    probe = list(tokens[:n])
    if len(probe) < n:
        raise ValueError(f"the probe needs {n} tokens, got {len(probe)}")
    single: list[np.ndarray] = []
    exact: int | None = None
    try:
        for i, token in enumerate(probe):
            start = time.perf_counter()
            ctx.decode([token], positions=[n_past + i], seq_ids=seq_id, logits=[True])
            if cost is not None:
                cost.one_token(time.perf_counter() - start)
            single.append(ctx.logits(0))
        for size in sizes:
            ctx.seq_rm(seq_id, n_past, -1)
            start = time.perf_counter()
            ctx.decode(
                probe[:size],
                positions=list(range(n_past, n_past + size)),
                seq_ids=seq_id,
                logits=[True] * size,
            )
            if cost is not None:
                cost.verified(size, time.perf_counter() - start)
            if not all(np.array_equal(ctx.logits(i), single[i]) for i in range(size)):
                break
            exact = size
        return exact
    finally:
        ctx.seq_rm(seq_id, n_past, -1)
