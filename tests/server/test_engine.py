"""The batching engine on its own (no HTTP): chunked prompts, joins, limits, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from fireside import _core
from fireside.errors import ContextLengthError
from fireside.generation.sampling import SamplingParams, build_sampler
from fireside.server.engine import Engine, QueueFullError
from fireside.server.jobs import Job

QUESTIONS = [
    "Write one sentence about the moon.",
    "What is the largest ocean on Earth?",
    "Give me two words that rhyme with cat.",
]


@pytest.fixture(scope="module")
def core(model_path: Path) -> Iterator[_core.Model]:
    model = _core.Model(model_path)
    yield model
    model.close()


def prompt(core: _core.Model, question: str) -> list[int]:
    text = f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
    return core.tokenize(text, add_special=True, parse_special=True)


def greedy(core: _core.Model) -> _core.Sampler:
    return build_sampler(core, SamplingParams(temperature=0))


async def run_job(engine: Engine, job: Job) -> str:
    engine.submit(job)
    return "".join([chunk.text async for chunk in job.events()])


def test_chunked_prompts_beside_generating_slots_give_the_single_outputs(
    core: _core.Model,
) -> None:
    """With an 8-token batch, prompts are evaluated in chunks interleaved with the other
    slots' generation; each output still equals the output of the request alone."""
    engine = Engine(core, parallel=3, n_ctx_seq=128, n_batch=8, n_threads=1)
    try:

        async def main() -> tuple[list[str], list[str]]:
            alone = []
            for q in QUESTIONS:
                alone.append(
                    await run_job(engine, Job(prompt(core, q), greedy(core), max_tokens=8))
                )
            jobs = [Job(prompt(core, q), greedy(core), max_tokens=8) for q in QUESTIONS]
            together = await asyncio.gather(*(run_job(engine, job) for job in jobs))
            return alone, list(together)

        steps_before = engine.metrics.decode_steps
        alone, together = asyncio.run(main())
        assert together == alone
        assert all(len(prompt(core, q)) > 8 for q in QUESTIONS)  # really chunked
        assert engine.metrics.decode_sequences_max == 3
        assert engine.metrics.decode_steps > steps_before
    finally:
        engine.stop()


def test_limits_and_queue(core: _core.Model) -> None:
    engine = Engine(core, parallel=1, n_ctx_seq=64, n_batch=64, n_threads=1, max_queue=1)
    try:

        async def main() -> None:
            n_ctx = engine.n_ctx_seq  # llama.cpp rounds the context up (to 256 tokens)
            too_long = list(range(100, 100 + n_ctx + 10))
            with pytest.raises(ContextLengthError) as caught:
                engine.submit(Job(too_long, greedy(core), max_tokens=4))
            assert caught.value.n_prompt_tokens == n_ctx + 10 and caught.value.n_ctx == n_ctx
            with pytest.raises(ValueError, match="empty"):
                engine.submit(Job([], greedy(core), max_tokens=4))
            # max_tokens is capped by the room the prompt leaves
            job = Job(prompt(core, "Count to one hundred."), greedy(core), max_tokens=1000)
            engine.submit(job)
            assert job.max_tokens == n_ctx - len(job.prompt)
            waiting = Job(prompt(core, "Hi"), greedy(core), max_tokens=2)
            engine.submit(waiting)  # the queue holds one
            with pytest.raises(QueueFullError):
                engine.submit(Job(prompt(core, "Hi"), greedy(core), max_tokens=2))
            job.cancel()
            async for _ in job.events():
                pass
            assert job.result is not None and job.result.finish_reason == "cancelled"
            async for _ in waiting.events():
                pass
            assert waiting.result is not None and waiting.result.usage.completion_tokens <= 2

        asyncio.run(main())
        assert engine.active_slots == 0 and engine.queue_depth == 0
    finally:
        engine.stop()


def test_stopping_the_engine_ends_running_jobs_with_an_error(core: _core.Model) -> None:
    engine = Engine(core, parallel=1, n_ctx_seq=256, n_threads=1)

    async def main() -> None:
        job = Job(prompt(core, "Write a long story."), greedy(core), max_tokens=200)
        engine.submit(job)
        events = job.events()
        await events.__anext__()  # it is generating
        await asyncio.to_thread(engine.stop)
        with pytest.raises(RuntimeError, match="stopped"):
            async for _ in events:
                pass

    asyncio.run(main())
    assert not engine.running


def test_one_event_loop_wake_up_per_step(
    core: _core.Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks of all slots reach the event loop together: the loop's thread is woken about
    once per decode step, not once per token (each wake-up stalls a decode on a busy CPU)."""
    engine = Engine(core, parallel=4, n_ctx_seq=128, n_batch=64, n_threads=1)
    wake_ups = 0
    by_socket = 0  # the loop's inbox: woken without giving up the GIL
    send_wakeup = _core._send_wakeup

    def counting_send(fd: int) -> bool:
        nonlocal wake_ups, by_socket
        wake_ups += 1
        by_socket += 1
        return send_wakeup(fd)

    monkeypatch.setattr(_core, "_send_wakeup", counting_send)
    try:

        async def main() -> int:
            loop = asyncio.get_running_loop()
            schedule = loop.call_soon_threadsafe

            def counting(callback, *args, **kwargs):  # type: ignore[no-untyped-def]
                nonlocal wake_ups
                wake_ups += 1
                return schedule(callback, *args, **kwargs)

            loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
            jobs = [
                Job(prompt(core, q), greedy(core), max_tokens=16) for q in QUESTIONS + QUESTIONS[:1]
            ]
            for job in jobs:
                engine.submit(job)
            chunks = 0
            for job in jobs:
                async for _ in job.events():
                    chunks += 1
            return chunks

        steps_before = engine.metrics.decode_steps
        chunks = asyncio.run(main())
        steps = engine.metrics.decode_steps - steps_before
        assert chunks >= 4 * 8, chunks  # 4 streams of (up to) 16 tokens
        assert by_socket > 0
        assert wake_ups <= steps + 2, (wake_ups, steps)
        assert wake_ups * 2 < chunks, (wake_ups, chunks)
    finally:
        engine.stop()
