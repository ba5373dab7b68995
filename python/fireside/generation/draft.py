"""Draft-model speculation: a small model with the target's vocabulary drafts tokens.

The draft model has a context of its own with one sequence per engine slot. Before each
draft its sequence is brought up to the slot's history (prompt, generated tokens and the
pending one): the cells after the longest common prefix are removed and the rest is
evaluated, then it decodes greedily, one token at a time, for the draft. Its drafts are
verified like any other (:mod:`fireside.generation.speculative`), so the output is the
target's whatever the draft model proposes; only the speed depends on it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from fireside.errors import VocabularyMismatchError
from fireside.generation.slots import common_prefix_length

if TYPE_CHECKING:
    from fireside import _core

N_SAMPLE = 512
"""Token ids whose texts are compared (spread over the vocabulary, plus the first 64)."""
MAX_SIZE_DIFFERENCE = 128
"""Vocabularies may differ in size by this many (padding) tokens, as llama.cpp allows; a
drafted token the target does not have ends the draft."""


def check_vocabulary(target: _core.Model, draft: _core.Model, *, draft_name: str = "") -> None:
    """Raise :class:`VocabularyMismatchError` unless ``draft`` tokenizes like ``target``:
    the same vocabulary type, size (within ``MAX_SIZE_DIFFERENCE`` padding tokens),
    special tokens, and token texts (a sample of the ids both have, spread over them)."""
    name = draft_name or draft.path

    def refuse(what: str) -> None:
        raise VocabularyMismatchError(
            f"the draft model {name} cannot draft for {target.path}: {what}; a draft model "
            "needs the target's vocabulary (e.g. a smaller model of the same family)"
        )

    if draft.vocab_type != target.vocab_type:
        refuse(f"its vocabulary is {draft.vocab_type!r}, the target's {target.vocab_type!r}")
    if abs(draft.n_vocab - target.n_vocab) > MAX_SIZE_DIFFERENCE:
        refuse(f"it has {draft.n_vocab} tokens, the target {target.n_vocab}")
    for special in ("bos", "eos", "eot"):
        if getattr(draft, special) != getattr(target, special):
            refuse(f"its {special} token differs")
    n = min(target.n_vocab, draft.n_vocab)
    ids = sorted(set(range(min(64, n))) | set(range(0, n, max(1, n // N_SAMPLE))))
    for token in ids:
        if draft.token_text(token) != target.token_text(token):
            refuse(
                f"token {token} is {draft.token_text(token)!r} there, "
                f"{target.token_text(token)!r} in the target"
            )


class DraftModel:
    """The draft model's context: one sequence per engine slot."""

    def __init__(
        self,
        model: _core.Model,
        *,
        n_vocab: int,
        n_seq: int,
        n_ctx_seq: int,
        n_batch: int,
        n_threads: int,
        n_threads_batch: int,
    ) -> None:
        from fireside import _core

        self.model = model
        self.n_vocab = n_vocab
        """The target's vocabulary size: a drafted id at or above it ends the draft."""
        self.ctx = _core.Context(
            model,
            n_ctx=n_ctx_seq * n_seq,
            n_batch=n_batch,
            n_ubatch=min(n_batch, 512),
            n_seq_max=n_seq,
            n_threads=n_threads,
            n_threads_batch=n_threads_batch,
            kv_unified=False,
        )
        self.n_ctx_seq = self.ctx.n_ctx_seq
        self.n_batch = self.ctx.n_batch
        self._greedy = _core.Sampler(model).add_greedy()
        self._cached: list[list[int]] = [[] for _ in range(n_seq)]
        self.seconds_per_token: float | None = None
        """Running average of one draft decode (seconds)."""

    def set_threads(self, n_threads: int, n_threads_batch: int) -> None:
        self.ctx.set_threads(n_threads, n_threads_batch)

    def draft(self, seq_id: int, history: Sequence[int], limit: int) -> list[int]:
        """Up to ``limit`` tokens the draft model expects after ``history``."""
        if limit <= 0 or not history or len(history) + limit > self.n_ctx_seq:
            return []
        cached = self._cached[seq_id]
        keep = min(common_prefix_length(cached, history), len(history) - 1)
        if keep < len(cached):
            if not self.ctx.seq_rm(seq_id, keep, -1):
                self.ctx.seq_rm(seq_id, -1, -1)
                keep = 0
            del cached[keep:]
        ctx = self.ctx
        start = keep
        while start < len(history):  # the missing tokens, the last with its logits
            end = min(start + self.n_batch, len(history))
            chunk = list(history[start:end])
            ctx.decode(
                chunk,
                positions=list(range(start, end)),
                seq_ids=seq_id,
                logits=[False] * (len(chunk) - 1) + [True],
            )
            cached.extend(chunk)
            start = end
        tokens: list[int] = []
        greedy = self._greedy
        while True:
            token = greedy.sample(ctx, -1)
            if token >= self.n_vocab or self.model.is_eog(token):
                break
            tokens.append(token)
            if len(tokens) >= limit:
                break
            t0 = time.perf_counter()
            ctx.decode([token], positions=[len(cached)], seq_ids=seq_id, logits=[True])
            seconds = time.perf_counter() - t0
            average = self.seconds_per_token
            self.seconds_per_token = seconds if average is None else 0.9 * average + 0.1 * seconds
            cached.append(token)
        return tokens

    def close(self) -> None:
        self._greedy.close()
        self.ctx.close()


class ModelDrafter:
    """One request's drafter on a :class:`DraftModel` sequence (the interface of
    :class:`~fireside.generation.speculative.PromptLookup`)."""

    __slots__ = ("_history", "_model", "_seq_id")

    def __init__(self, model: DraftModel, seq_id: int, prompt: Sequence[int]) -> None:
        self._model = model
        self._seq_id = seq_id
        self._history = list(prompt)

    def __len__(self) -> int:
        return len(self._history)

    def extend(self, tokens: Sequence[int]) -> None:
        self._history.extend(tokens)

    def tail(self, n: int) -> list[int]:
        history = self._history
        if len(history) >= n:
            return history[-n:]
        return (history * (n // len(history) + 1))[:n]

    def draft(self, limit: int) -> list[int]:
        return self._model.draft(self._seq_id, self._history, limit)
