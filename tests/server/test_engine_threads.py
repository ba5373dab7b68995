"""The server engine's thread policy: one per engine (not per request), fed by its batched
generation steps; /metrics shows the counts in use. Driven by an injected load source."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fireside import _core
from fireside.generation.sampling import SamplingParams, build_sampler
from fireside.generation.threads import ThreadPolicy
from fireside.server.engine import Engine
from fireside.server.jobs import Job


class FakeLoad:
    capacity = 2.0

    def __init__(self, other: float) -> None:
        self.other = other

    def sample(self) -> float:
        return self.other

    def reset(self) -> None:
        pass


@pytest.fixture(scope="module")
def core(model_path: Path) -> Iterator[_core.Model]:
    model = _core.Model(model_path)
    yield model
    model.close()


def threads_in_metrics(engine: Engine) -> tuple[int, int]:
    text = engine.metrics.render(queue_depth=0, slots_active=0, slots_total=engine.parallel)
    gen = re.search(r'^fireside_threads\{kind="generation"\} (\d+)$', text, re.MULTILINE)
    batch = re.search(r'^fireside_threads\{kind="batch"\} (\d+)$', text, re.MULTILINE)
    assert gen and batch, text
    return int(gen.group(1)), int(batch.group(1))


def run_jobs(engine: Engine, core: _core.Model, n: int) -> None:
    async def main() -> None:
        jobs = []
        for i in range(n):
            tokens = core.tokenize(f"Fact {i} about rivers:", add_special=True)
            sampler = build_sampler(core, SamplingParams(temperature=0))
            job = Job(tokens, sampler, max_tokens=10)
            engine.submit(job)
            jobs.append(job)
        for job in jobs:
            async for _ in job.events():
                pass

    asyncio.run(main())


def test_one_policy_follows_the_load_for_all_requests(core: _core.Model) -> None:
    load = FakeLoad(other=2.0)  # both cores taken by other processes
    policy = ThreadPolicy("auto", max_threads=2, batched=True, source=load, window_s=0.0)
    engine = Engine(core, parallel=3, n_ctx_seq=128, n_batch=64, thread_policy=policy)
    try:
        assert threads_in_metrics(engine) == (2, 2)
        run_jobs(engine, core, 3)
        assert (engine.ctx.n_threads, engine.ctx.n_threads_batch) == (1, 1)
        assert threads_in_metrics(engine) == (1, 1)
        assert policy.stats().changes == 1
        load.other = 0.0  # idle again
        run_jobs(engine, core, 3)
        assert (engine.ctx.n_threads, engine.ctx.n_threads_batch) == (2, 2)
        assert threads_in_metrics(engine) == (2, 2)
        assert policy.stats().changes == 2
    finally:
        engine.stop()


def test_a_fixed_count_is_never_changed(core: _core.Model) -> None:
    engine = Engine(core, parallel=2, n_ctx_seq=128, n_batch=64, n_threads=1)
    try:
        run_jobs(engine, core, 2)
        assert (engine.ctx.n_threads, engine.ctx.n_threads_batch) == (1, 1)
        stats = engine.threads.stats()
        assert not stats.auto and stats.windows == 0 and stats.changes == 0
        text = engine.metrics.render(queue_depth=0, slots_active=0, slots_total=2)
        assert "fireside_threads_auto 0" in text
    finally:
        engine.stop()
