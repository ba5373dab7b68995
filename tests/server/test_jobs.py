"""How a step's events reach an event loop (fireside.server.jobs): in one wake-up that
keeps the compute thread's GIL, and never to a loop that is closed."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fireside import _core
from fireside.generation.results import Usage
from fireside.generation.sampling import SamplingParams, build_sampler
from fireside.server.jobs import Chunk, Done, Job, Outbox

from ..gil import no_forced_switches


@pytest.fixture(scope="module")
def core(model_path: Path) -> Iterator[_core.Model]:
    model = _core.Model(model_path)
    yield model
    model.close()


def make_job(loop: asyncio.AbstractEventLoop, core: _core.Model) -> Job:
    """A job created on ``loop`` (running in another thread), as the server creates them."""

    async def create() -> Job:
        return Job([1, 2, 3], build_sampler(core, SamplingParams()), max_tokens=4)

    return asyncio.run_coroutine_threadsafe(create(), loop).result(30)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running in its own thread, like the server's."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)
    loop.close()


def read_all(
    loop: asyncio.AbstractEventLoop, job: Job, seen: list[str]
) -> concurrent.futures.Future[None]:
    """Start reading ``job``'s chunks on ``loop``, noting each in ``seen`` as it comes;
    done at the job's end."""

    async def read() -> None:
        async for chunk in job.events():
            seen.append(f"delivered {chunk.text}")

    return asyncio.run_coroutine_threadsafe(read(), loop)


def test_flushes_wake_the_loop_without_giving_up_the_gil(
    loop: asyncio.AbstractEventLoop, core: _core.Model
) -> None:
    # A socket send from Python releases the GIL, and the loop it wakes would take it and
    # run first: the compute thread would wait for the loop to send a step's tokens before
    # it could start the next step. With a long switch interval nothing else hands the
    # GIL over, so the loop runs only once this thread waits, however many steps flushed.
    job = make_job(loop, core)
    outbox = Outbox()
    job.use_outbox(outbox)
    order: list[str] = []
    reading = read_all(loop, job, order)
    with no_forced_switches():
        for i in range(50):  # fifty steps
            job.emit(Chunk(str(i)))
            outbox.flush()
        order.append("flushed")
        job.emit(Done("stop", Usage(3, 50, 53), 0, None))
        outbox.flush()
        reading.result(30)  # this thread waits: the loop runs now
    assert order == ["flushed"] + [f"delivered {i}" for i in range(50)]
    assert job.result is not None and job.result.finish_reason == "stop"


def test_events_for_a_closed_loop_cancel_their_job(core: _core.Model) -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    job = make_job(loop, core)
    outbox = Outbox()
    job.use_outbox(outbox)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)
    loop.close()
    job.emit(Chunk("nobody reads this"))
    outbox.flush()  # no error: the job is cancelled, so the engine ends it
    assert job.cancel_reason == "cancelled"


class _NoReaders(asyncio.SelectorEventLoop):
    """A loop that cannot watch sockets (as Windows' proactor loop)."""

    def add_reader(self, *args: object) -> None:  # type: ignore[override]
        raise NotImplementedError


def test_a_loop_that_cannot_watch_sockets_still_gets_its_events(core: _core.Model) -> None:
    loop = _NoReaders()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    try:
        job = make_job(loop, core)
        outbox = Outbox()
        job.use_outbox(outbox)
        seen: list[str] = []
        reading = read_all(loop, job, seen)
        job.emit(Chunk("hello"))
        job.emit(Done("stop", Usage(3, 1, 4), 0, None))
        outbox.flush()
        reading.result(30)
        assert seen == ["delivered hello"]
        assert job.result is not None and job.result.finish_reason == "stop"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
