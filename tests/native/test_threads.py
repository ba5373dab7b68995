"""One Context shared by threads: calls are serialised by its mutex, and decode releases the GIL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pytest
from fireside import _core
from fireside.errors import ClosedError

from .waiting import wait_for_cpu

ContextFactory = Callable[..., _core.Context]

TEXTS = [
    "The capital of France is",
    "def fibonacci(n):\n    return",
    "Once upon a time",
    "The three primary colours are",
]


def run_threads(n: int, target: Callable[[int], None]) -> list[BaseException]:
    """Run ``target(i)`` in ``n`` threads released together; the exceptions they raised."""
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def wrapper(i: int) -> None:
        try:
            barrier.wait(30)
            target(i)
        except BaseException as e:  # noqa: BLE001 - reported to the test thread
            errors.append(e)

    threads = [threading.Thread(target=wrapper, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return errors


def long_decode_in_thread(
    ctx: _core.Context, tokens: list[int]
) -> tuple[threading.Thread, threading.Event, dict[str, float]]:
    """Start decoding ``tokens`` in a thread; its 'started' event and record (timings and
    the thread's native id)."""
    started = threading.Event()
    record: dict[str, float] = {}

    def work() -> None:
        started.set()
        record["start"] = time.monotonic()
        ctx.decode(tokens)
        record["end"] = time.monotonic()

    thread = threading.Thread(target=work)
    thread.start()
    assert started.wait(10)
    return thread, started, record


def inside_decode(thread: threading.Thread, record: dict[str, float]) -> None:
    """Wait until the decoding thread has been busy for a while (in ``decode``, holding the
    context's mutex): the process's CPU time moved, and it is still running."""
    wait_for_cpu(thread, 0.02)
    assert thread.is_alive(), "the decode ended before the test could overlap it"


@pytest.fixture(scope="module")
def long_prompt(model: _core.Model) -> list[int]:
    return model.tokenize("The quick brown fox jumps over the lazy dog. " * 60)[:256]


def test_eight_threads_hammer_one_context(new_context: ContextFactory, model: _core.Model) -> None:
    n_threads = 8
    rounds = 4
    ctx = new_context(n_ctx=8 * 64, n_seq_max=n_threads, n_batch=64)
    prompts = [model.tokenize(TEXTS[i % len(TEXTS)]) for i in range(n_threads)]

    def work(i: int) -> None:
        sampler = _core.Sampler(model).add_top_k(10).add_dist(i)
        ctx.decode(prompts[i], seq_ids=i)
        for _ in range(rounds):
            token = sampler.sample(ctx)  # may see another thread's logits: fine here
            assert 0 <= token < model.n_vocab
            assert ctx.logits().shape == (model.n_vocab,)
            ctx.decode([token], seq_ids=i)
            assert ctx.seq_pos_max(i) >= 0
            ctx.perf()

    errors = run_threads(n_threads, work)
    assert not errors, errors
    # every decode landed whole in its own sequence: nothing lost, nothing mixed
    for i in range(n_threads):
        assert ctx.seq_pos_min(i) == 0
        assert ctx.seq_pos_max(i) == len(prompts[i]) + rounds - 1
    assert ctx.perf().n_decode_calls == n_threads * (1 + rounds)


def test_threads_on_their_own_sequences_get_right_results(
    new_context: ContextFactory, model: _core.Model, run_greedy: Callable[..., list[int]]
) -> None:
    expected = []
    for text in TEXTS:
        alone = new_context()
        alone.decode(model.tokenize(text))
        expected.append(run_greedy(alone, 5))

    ctx = new_context(n_ctx=len(TEXTS) * 256, n_seq_max=len(TEXTS))
    step = threading.Lock()  # makes each decode + sample pair atomic; the mutex does the rest
    got: dict[int, list[int]] = {}

    def work(i: int) -> None:
        sampler = _core.Sampler(model).add_greedy()
        out: list[int] = []
        with step:
            ctx.decode(model.tokenize(TEXTS[i]), seq_ids=i)
            out.append(sampler.sample(ctx))
        for _ in range(4):
            with step:
                ctx.decode([out[-1]], seq_ids=i)
                out.append(sampler.sample(ctx))
        got[i] = out

    errors = run_threads(len(TEXTS), work)
    assert not errors, errors
    assert [got[i] for i in range(len(TEXTS))] == expected


def test_same_sequence_from_two_threads(new_context: ContextFactory, model: _core.Model) -> None:
    ctx = new_context(n_batch=64)
    tokens = model.tokenize("a b c d e f g h")

    def work(i: int) -> None:
        for _ in range(10):
            ctx.decode(tokens)  # positions continue: each call appends atomically
            ctx.logits()

    errors = run_threads(2, work)
    assert not errors, errors
    assert ctx.seq_pos_max(0) == 2 * 10 * len(tokens) - 1


def test_decode_releases_the_gil(new_context: ContextFactory, long_prompt: list[int]) -> None:
    ctx = new_context(n_ctx=512)
    thread, _, record = long_decode_in_thread(ctx, long_prompt)
    count = 0
    ran_during_decode = False
    while thread.is_alive():  # pure Python work, only possible while decode runs GIL-free
        count += 1
        if count == 20_000:
            ran_during_decode = thread.is_alive()
            break
    thread.join()
    took = record["end"] - record["start"]
    assert ran_during_decode, f"Python ran only {count} iterations during a {took:.2f}s decode"


def test_calls_wait_for_a_running_decode(
    new_context: ContextFactory, long_prompt: list[int]
) -> None:
    ctx = new_context(n_ctx=512)
    thread, _, record = long_decode_in_thread(ctx, long_prompt)
    inside_decode(thread, record)  # the worker holds the mutex (it releases the GIL inside)
    # seq_pos_max waits on the context's mutex: it sees the whole batch, never a part
    observed = ctx.seq_pos_max(0)
    returned = time.monotonic()
    thread.join()
    assert observed == len(long_prompt) - 1
    assert returned >= record["end"]


def test_close_while_another_thread_decodes(
    new_context: ContextFactory, model: _core.Model, long_prompt: list[int]
) -> None:
    ctx = new_context(n_ctx=512)
    thread, _, record = long_decode_in_thread(ctx, long_prompt)
    inside_decode(thread, record)
    ctx.close()  # waits for the decode to finish, then frees the context
    thread.join()
    assert ctx.closed
    assert "end" in record, "the running decode failed"
    with pytest.raises(ClosedError):
        ctx.decode([1])
    with pytest.raises(ClosedError):
        ctx.logits()
    # the model is unaffected
    other = new_context()
    other.decode(model.tokenize("Hello"))
    assert np.isfinite(other.logits()).all()
