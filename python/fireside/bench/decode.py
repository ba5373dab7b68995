"""Decode-only throughput of the binding, measured the way ``llama-bench`` measures it.

``pp``: one context of ``n_prompt`` tokens; the cache is cleared, then ``n_prompt``
random tokens (BOS first when the model adds one) are decoded in one batch.
``tg``: one context of ``n_gen`` tokens; the cache is cleared, then ``n_gen`` random
tokens are decoded one at a time (BOS first), keeping the last token's logits.
No sampling, no detokenizing: this is the cost of the binding over ``llama_decode``.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fireside import _core


class DecodeBench:
    """Contexts sized like llama-bench's (n_batch 2048, n_ubatch 512), reused across runs."""

    def __init__(self, model: _core.Model, *, threads: int, n_prompt: int, n_gen: int) -> None:
        from fireside import _core

        self.model = model
        self.n_prompt = n_prompt
        self.n_gen = n_gen
        self._rng = random.Random(1234)
        self._pp: _core.Context | None = None
        self._tg: _core.Context | None = None
        if n_prompt:
            self._pp = _core.Context(
                model,
                n_ctx=n_prompt,
                n_batch=2048,
                n_ubatch=512,
                n_threads=threads,
                n_threads_batch=threads,
            )
        if n_gen:
            self._tg = _core.Context(
                model,
                n_ctx=n_gen,
                n_batch=2048,
                n_ubatch=512,
                n_threads=threads,
                n_threads_batch=threads,
            )

    def _tokens(self, n: int) -> list[int]:
        n_vocab = self.model.n_vocab
        tokens = [self._rng.randrange(n_vocab) for _ in range(n)]
        if tokens and self.model.add_bos and self.model.bos >= 0:
            tokens[0] = self.model.bos
        return tokens

    def warm_up(self) -> None:
        """llama-bench's warm-up: one full prompt run and one generated token."""
        if self._pp is not None:
            self._pp.memory_clear()
            self._pp.decode(self._tokens(self.n_prompt))
        if self._tg is not None:
            self._tg.memory_clear()
            self._tg.decode(self._tokens(1))

    def prompt_tokens_per_second(self) -> float:
        if self._pp is None:
            raise ValueError("this DecodeBench has n_prompt=0")
        ctx = self._pp
        tokens = self._tokens(self.n_prompt)
        ctx.memory_clear()
        step = ctx.n_batch
        t0 = time.perf_counter()
        for start in range(0, len(tokens), step):
            ctx.decode(tokens[start : start + step])
        return self.n_prompt / (time.perf_counter() - t0)

    def generation_tokens_per_second(self) -> float:
        if self._tg is None:
            raise ValueError("this DecodeBench has n_gen=0")
        ctx = self._tg
        tokens = self._tokens(self.n_gen)
        ctx.memory_clear()
        decode = ctx.decode
        t0 = time.perf_counter()
        for token in tokens:
            decode([token])
        return self.n_gen / (time.perf_counter() - t0)

    def close(self) -> None:
        for ctx in (self._pp, self._tg):
            if ctx is not None:
                ctx.close()
