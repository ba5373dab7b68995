"""The ``parallel`` section: Python threads generating at once on one
``Model(n_parallel=8)``, against one thread on the same Model and ``llama-batched-bench``.

Requests mirror ``llama-batched-bench -npp P -ntg G -npl N`` (P = ``server_prompt_tokens``,
G = ``server_tokens``): each of N threads calls ``model.generate(..., stream=True)`` with
its own prompt of P random token ids (never a prefix of another, so nothing comes from the
cache), greedily, for exactly G tokens (end-of-generation tokens banned with a ``-inf``
logit bias, as ``--ignore-eos`` does), without speculative decoding (batched-bench decodes
one token per sequence per step). Each sequence has ``P + G + 64`` tokens of context; the
reference gets the same total (``-c N_max * (P + G + 64)``).

The aggregate is the steady rate of :func:`fireside.bench.clients.steady_rate`: the tokens
that arrived while **all** N threads were generating, over that window (prompt processing
excluded, as in batched-bench's ``S_TG``); the wall-clock aggregate is kept too.

Each round runs, per level (1 and :data:`STREAMS` threads), batched-bench at that level and
then fireside (A B A B). Figures ``parallel.aggregate.c<N>``, ``parallel.wall.c<N>``,
``reference.batched_parallel.s_tg.c<N>``; ratios ``parallel.c<N>_vs_batched`` and
``parallel.c8_vs_c1``.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fireside.bench.clients import ClientError, RoundResult, StreamRecord, steady_rate, wall_rate

if TYPE_CHECKING:
    from fireside.bench.suite import Suite

STREAMS = 8
"""Threads (and sequences of the Model) at the top level."""
LEVELS = (1, STREAMS)
"""Thread counts measured in each round."""


class ParallelBench:
    """One ``Model(n_parallel=parallel)`` and the threaded rounds that measure it."""

    def __init__(
        self,
        model: Path,
        *,
        threads: int,
        parallel: int,
        prompt_tokens: int,
        max_tokens: int,
        timeout: float = 600,
    ) -> None:
        from fireside.bench.generation import eog_tokens
        from fireside.model import Model

        self.parallel = parallel
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.n_ctx_seq = prompt_tokens + max_tokens + 64
        self.timeout = timeout
        self.model = Model(
            model,
            n_ctx=self.n_ctx_seq,
            n_threads=threads,
            n_parallel=parallel,
            speculative=False,
        )
        self._bias = {t: float("-inf") for t in eog_tokens(self.model)}
        self._n_vocab = self.model.core.n_vocab
        self._rng = random.Random(8765)

    def close(self) -> None:
        self.model.close()

    def _prompt(self) -> list[int]:
        return [self._rng.randrange(self._n_vocab) for _ in range(self.prompt_tokens)]

    def _one(
        self, prompt: list[int], max_tokens: int, record: StreamRecord, start: threading.Barrier
    ) -> None:
        try:
            start.wait()
            record.t_start = time.perf_counter()
            stream = self.model.generate(
                prompt,
                max_tokens=max_tokens,
                temperature=0.0,
                logit_bias=self._bias,
                stream=True,
            )
            for _ in stream:
                record.times.append(time.perf_counter())
            result = stream.result
            record.completion_tokens = None if result is None else len(result.tokens)
        except Exception as e:  # noqa: BLE001 - reported by the caller, with the others
            record.error = f"{type(e).__name__}: {e}"
        finally:
            record.t_end = time.perf_counter()

    def round(self, n: int, max_tokens: int | None = None) -> RoundResult:
        """``n`` threads generating at once; their aggregate throughputs."""
        if not 1 <= n <= self.parallel:
            raise ValueError(f"{n} threads on a Model with n_parallel={self.parallel}")
        want = max_tokens or self.max_tokens
        prompts = [self._prompt() for _ in range(n)]
        records = [StreamRecord(t_start=0.0) for _ in range(n)]
        barrier = threading.Barrier(n)
        workers = [
            threading.Thread(target=self._one, args=(p, want, r, barrier), daemon=True)
            for p, r in zip(prompts, records)
        ]
        for w in workers:
            w.start()
        deadline = time.monotonic() + self.timeout
        for w in workers:
            w.join(max(0.0, deadline - time.monotonic()))
        if any(w.is_alive() for w in workers):
            self.model.cancel()
            raise ClientError(f"{n} generating threads did not finish within {self.timeout:.0f} s")
        errors = [r.error for r in records if r.error]
        if errors:
            raise ClientError(f"{len(errors)} of {n} generations failed: {errors[0]}")
        short = [r.tokens for r in records if r.tokens != want or not r.times]
        if short:
            raise ClientError(f"generations returned {short} tokens instead of {want}")
        return RoundResult(
            n=n,
            steady_tokens_per_second=steady_rate(records),
            wall_tokens_per_second=wall_rate(records),
            tokens=[r.tokens for r in records],
        )

    def warm_up(self) -> None:
        """Every sequence once, with a few tokens (allocations, graphs)."""
        self.round(self.parallel, 8)


def run_parallel(suite: Suite) -> None:
    """The whole section (see the module docstring)."""
    from fireside.bench import reference

    cfg = suite.config
    bench = ParallelBench(
        cfg.model,
        threads=cfg.threads,
        parallel=STREAMS,
        prompt_tokens=cfg.server_prompt_tokens,
        max_tokens=cfg.server_tokens,
    )

    def measure(n: int) -> Callable[[], None]:
        rows = []
        if suite.ref is not None:
            rows = reference.run_batched_bench(
                suite.ref,
                cfg.model,
                threads=cfg.threads,
                n_prompt=cfg.server_prompt_tokens,
                n_gen=cfg.server_tokens,
                parallel=[n],
                n_ctx=STREAMS * bench.n_ctx_seq,
            )
        got = bench.round(n)

        def commit() -> None:
            for row in rows:
                suite.fig(f"reference.batched_parallel.s_tg.c{row.b}", "t/s").add(row.s_tg)
            suite.fig(f"parallel.aggregate.c{n}", "t/s").add(got.steady_tokens_per_second)
            suite.fig(f"parallel.wall.c{n}", "t/s").add(got.wall_tokens_per_second)

        return commit

    try:
        bench.warm_up()
        for i in suite.rounds():
            for n in LEVELS:
                suite.gated(i, f"parallel.c{n}", functools.partial(measure, n))
    finally:
        bench.close()
    for n in LEVELS:
        suite.compare(
            f"parallel.c{n}_vs_batched",
            suite.figures.get(f"parallel.aggregate.c{n}"),
            suite.figures.get(f"reference.batched_parallel.s_tg.c{n}"),
        )
    suite.compare(
        f"parallel.c{STREAMS}_vs_c1",
        suite.figures.get(f"parallel.aggregate.c{STREAMS}"),
        suite.figures.get("parallel.aggregate.c1"),
    )
