"""The thread policy (``n_threads="auto"``): fewer threads when other processes take cores,
all of them again when the machine is idle, no flapping on noise; a fixed count is never
touched. Driven by an injected load source and simulated step times (counters, no clocks),
then on the real model and context."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
from fireside import _core
from fireside.generation import threads as tp
from fireside.generation.engine import Engine
from fireside.generation.stream import GenerationStream, StreamRequest
from fireside.generation.threads import ThreadPolicy, check_threads
from fireside.model import Model


class FakeLoad:
    """A load source whose other-process CPU use (in cores) the test sets."""

    def __init__(self, capacity: float = 2.0, other: float | None = 0.0) -> None:
        self.capacity = capacity
        self.other = other
        self.samples = 0
        self.resets = 0

    def sample(self) -> float | None:
        self.samples += 1
        return self.other

    def reset(self) -> None:
        self.resets += 1


# tokens/s of a 2-core machine by (threads, cores taken by other processes): the issue's
# llama-bench figures (idle: 2 threads 113, 1 thread 69; one busy core: 48 and 87)
SPEED = {(2, 0): 113.0, (1, 0): 69.0, (2, 1): 48.0, (1, 1): 87.0}


def run_windows(policy: ThreadPolicy, windows: int, speed: Callable[[int], float]) -> list[int]:
    """Feed ``windows`` windows of one-token steps at ``speed(threads)`` tokens/s; the
    generation count after each window."""
    counts = []
    for _ in range(windows):
        start = policy.stats().windows
        while policy.stats().windows == start:
            policy.record(1.0 / speed(policy.n_threads), 1)
        counts.append(policy.n_threads)
    return counts


def machine(load: FakeLoad, busy: Callable[[], int]) -> Callable[[int], float]:
    return lambda n: SPEED[(n, busy())]


def flips(counts: list[int]) -> int:
    return sum(a != b for a, b in itertools.pairwise(counts))


def test_a_fixed_count_never_changes() -> None:
    load = FakeLoad(other=1.5)
    policy = ThreadPolicy(2, source=load, window_s=0.01)
    assert not policy.auto
    changed = [policy.record(1.0, 1) for _ in range(200)]
    assert not any(changed)
    stats = policy.stats()
    assert (stats.n_threads, stats.n_threads_batch, stats.windows, stats.changes) == (2, 2, 0, 0)
    assert load.samples == 0  # a fixed count does not even look at the machine


def test_bad_settings_are_named() -> None:
    for bad in (0, -1, 1.5, "fast", "AUTO", True, None):
        with pytest.raises(ValueError, match="n_threads must be a positive integer or 'auto'"):
            check_threads(bad)
    with pytest.raises(ValueError, match="max_threads"):
        ThreadPolicy("auto", max_threads=0, source=FakeLoad())
    assert check_threads("auto") == "auto" and check_threads(3) == 3


def test_contention_drops_a_thread_and_idle_brings_it_back() -> None:
    load = FakeLoad()
    policy = ThreadPolicy("auto", max_threads=2, source=load, window_s=0.1)
    busy = lambda: 1 if load.other and load.other >= 0.9 else 0
    speed = machine(load, busy)
    assert run_windows(policy, 20, speed) == [2] * 20  # idle: every core
    load.other = 1.0  # a busy loop on one core
    counts = run_windows(policy, 20, speed)
    assert counts[: tp.DOWN_WINDOWS - 1] == [2] * (tp.DOWN_WINDOWS - 1)
    # 1 thread from then on: the visible load explains it, so no probe of 2 threads yet
    assert counts[tp.DOWN_WINDOWS - 1 :] == [1] * (20 - tp.DOWN_WINDOWS + 1)
    assert policy.stats().probes == 0
    load.other = 0.0  # it stopped
    counts = run_windows(policy, 20, speed)
    assert counts[: tp.UP_WINDOWS - 1] == [1] * (tp.UP_WINDOWS - 1)
    assert counts[tp.UP_WINDOWS - 1 :] == [2] * (20 - tp.UP_WINDOWS + 1)
    stats = policy.stats()
    assert stats.changes == 2 + 2 * stats.probes  # down, up, and each probe there and back
    assert stats.n_threads == 2


def test_prompt_threads_keep_a_busy_core_but_not_two() -> None:
    load = FakeLoad(capacity=2.0, other=1.0)
    policy = ThreadPolicy("auto", max_threads=2, source=load, window_s=0.1)
    run_windows(policy, 10, lambda n: 80.0)
    assert (policy.n_threads, policy.n_threads_batch) == (1, 2)
    load.other = 2.0  # both cores taken
    run_windows(policy, 10, lambda n: 40.0)
    assert (policy.n_threads, policy.n_threads_batch) == (1, 1)
    # a batched policy (the server) uses one count for both
    server = ThreadPolicy("auto", max_threads=2, batched=True, source=FakeLoad(other=1.0))
    run_windows(server, 10, lambda n: 80.0)
    assert (server.n_threads, server.n_threads_batch) == (1, 1)


def test_noise_does_not_flap() -> None:
    load = FakeLoad()
    policy = ThreadPolicy("auto", max_threads=2, source=load, window_s=0.1)
    counts = []
    # a load flickering between idle and a whole core, window by window
    for i in range(100):
        load.other = 1.0 if i % 2 else 0.0
        counts += run_windows(policy, 1, lambda n: 100.0)
    assert counts == [2] * 100
    # a load hovering between the keep and the rise limits changes nothing either way
    for start in (2, 1):
        policy = ThreadPolicy("auto", max_threads=2, source=load, window_s=0.1)
        if start == 1:
            load.other = 1.0
            run_windows(policy, tp.DOWN_WINDOWS, lambda n: 100.0)
            assert policy.n_threads == 1
        values = [0.3, 0.45, 0.35, 0.4]
        counts = []
        for i in range(100):
            load.other = values[i % len(values)]
            counts += run_windows(policy, 1, lambda n: 100.0)
        # the only other count is a probe's single window (probes lose: same speed)
        stats = policy.stats()
        assert counts.count(start) == 100 - stats.probes and stats.probes_won == 0, start
    # short bursts of load (one window at a time) among steady 1-core load
    load.other = 1.0
    policy = ThreadPolicy("auto", max_threads=2, source=load, window_s=0.1)
    counts = []
    for i in range(200):
        load.other = 0.0 if i % 3 == 0 else 1.0
        counts += run_windows(policy, 1, lambda n: 100.0)
    stats = policy.stats()
    assert flips(counts) <= 1 + 2 * stats.probes  # down once, then it stays (but for probes)
    assert stats.probes <= 4 and stats.probes_won == 0
    assert counts.count(1) >= 200 - tp.DOWN_WINDOWS - stats.probes


def test_probes_find_contention_the_load_does_not_show() -> None:
    # time stolen by another VM: the load source sees nothing, the steps slow down
    load = FakeLoad(other=0.0)
    stolen = {"on": False}
    policy = ThreadPolicy("auto", max_threads=2, source=load, window_s=0.1)
    speed = machine(load, lambda: 1 if stolen["on"] else 0)
    run_windows(policy, 40, speed)
    assert policy.n_threads == 2 and policy.stats().probes == 0  # idle and fast: no probes
    stolen["on"] = True
    counts = run_windows(policy, 3 * tp.PROBE_EVERY, speed)
    assert counts[-1] == 1
    assert policy.stats().probes_won == 1
    assert policy.stats().probes <= 3  # the winning one, then at most two that lost
    stolen["on"] = False  # the other VM went quiet: a probe of 2 threads wins again
    counts = run_windows(policy, 3 * tp.PROBE_EVERY, speed)
    assert counts[-1] == 2
    assert policy.stats().probes_won == 2


def test_losing_probes_back_off() -> None:
    load = FakeLoad(other=1.0)  # one core busy, visibly: 1 thread is right
    policy = ThreadPolicy("auto", max_threads=2, source=load, window_s=0.1)
    counts = run_windows(policy, 1000, machine(load, lambda: 1))
    stats = policy.stats()
    assert stats.probes_won == 0
    # intervals 16, 32, 64, 128, 128, ...: a handful of probes in 1000 windows
    assert 4 <= stats.probes <= 10
    assert counts.count(2) <= 2 * stats.probes + tp.DOWN_WINDOWS
    assert counts[-1] == 1


def test_a_visibly_busy_core_delays_the_probes_of_more_threads() -> None:
    # the load rule's count, explained by load it sees: the first probe of 2 threads waits
    # the longest interval (it would run a window at half speed and lose)
    load = FakeLoad(other=1.0)
    policy = ThreadPolicy("auto", max_threads=2, source=load, window_s=0.1)
    counts = run_windows(policy, tp.DOWN_WINDOWS + tp.PROBE_EVERY_MAX + 2, machine(load, lambda: 1))
    first_probe = counts.index(2, tp.DOWN_WINDOWS)
    assert first_probe >= tp.DOWN_WINDOWS + tp.PROBE_EVERY_MAX - 1
    assert policy.stats().probes == 1 and policy.stats().probes_won == 0
    # load that leaves room for 2 threads but steps that say otherwise (time stolen out of
    # sight) is not explained: the probes there keep their short first interval (see
    # test_probes_find_contention_the_load_does_not_show)


def test_an_unknown_load_leaves_the_probes() -> None:
    load = FakeLoad(other=None)
    policy = ThreadPolicy("auto", max_threads=2, source=load, window_s=0.1)
    run_windows(policy, 20, lambda n: 100.0)
    assert policy.n_threads == 2 and policy.stats().changes == 0


# -- the real loop --------------------------------------------------------------------


@pytest.fixture(scope="module")
def core_model(model_path: Path):
    m = _core.Model(model_path)
    yield m
    m.close()


def make_runner(core_model, policy: ThreadPolicy) -> Engine:
    return Engine(core_model, n_ctx_seq=256, n_batch=64, policy=policy)


def stream(engine: Engine, prompt: list[int], sampler: _core.Sampler) -> GenerationStream:
    return GenerationStream(engine, StreamRequest(prompt, sampler, max_tokens=12))


def greedy(core_model) -> _core.Sampler:
    return _core.Sampler(core_model).add_greedy()


def test_the_loop_applies_the_policy(core_model) -> None:
    load = FakeLoad(capacity=2.0, other=2.0)
    # every decode step is a window: the policy acts within a few tokens
    policy = ThreadPolicy("auto", max_threads=2, source=load, window_s=0.0)
    runner = make_runner(core_model, policy)
    try:
        prompt = core_model.tokenize("The sea is", add_special=True)
        result = stream(runner, prompt, greedy(core_model)).drain()
        assert runner.ctx.n_threads == 1 and runner.ctx.n_threads_batch == 1
        # the prompt ran with both threads, generation ends with one
        assert result.timings.n_threads == 1 and result.timings.n_threads_batch == 2
        assert policy.stats().changes == 1
        assert load.resets == 1  # the load is measured afresh for each generation
        load.other = 0.0
        result = stream(runner, prompt, greedy(core_model)).drain()
        assert runner.ctx.n_threads == 2 and runner.ctx.n_threads_batch == 2
        assert result.timings.n_threads == 2 and result.timings.n_threads_batch == 1
        assert policy.stats().changes == 2
    finally:
        runner.close()


def test_a_fixed_model_is_left_alone(model_path: Path) -> None:
    with Model(model_path, n_ctx=256, n_threads=1) as m:
        result = m.generate("Hello", max_tokens=8, temperature=0)
        assert m.n_threads == 1
        assert result.timings.n_threads == 1 and result.timings.n_threads_batch == 1
        stats = m.thread_stats
        assert not stats.auto and stats.windows == 0 and stats.changes == 0


def test_auto_is_the_default(model_path: Path) -> None:
    from fireside.defaults import default_n_threads

    with Model(model_path, n_ctx=256) as m:
        stats = m.thread_stats
        assert stats.auto and stats.max_threads == default_n_threads()
        assert 1 <= m.n_threads <= default_n_threads()
    with pytest.raises(ValueError, match="n_threads must be a positive integer or 'auto'"):
        Model(model_path, n_ctx=256, n_threads="many")  # type: ignore[arg-type]
