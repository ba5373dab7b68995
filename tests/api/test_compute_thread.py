"""Every engine's token loop runs on the compute thread: no decode is handed between
threads, a reader that stops reading stops its generation, and a step's callbacks run
there while a stream's token callback runs on its reader's thread."""

from __future__ import annotations

import gc
import threading
import weakref
from pathlib import Path

import pytest
from fireside import _core
from fireside.generation import compute
from fireside.model import Model

from ..gil import Witness, no_forced_switches

PROMPT = "The history of the lighthouse begins"


def test_generations_hand_no_decode_to_another_thread(model: Model) -> None:
    model.generate(PROMPT, max_tokens=4)  # warm: the engine exists
    before = _core._compute_handovers()
    model.generate(PROMPT, max_tokens=8, temperature=0.0)
    "".join(model.generate(PROMPT, max_tokens=8, stream=True))
    model.chat([{"role": "user", "content": "Hi!"}], max_tokens=8)
    worker = threading.Thread(target=lambda: model.generate(PROMPT, max_tokens=8))
    worker.start()
    worker.join(120)
    model.wait_idle(120)  # the chat's reply is realigned there too
    assert model.stats.n_generated_tokens > 0
    assert _core._compute_handovers() == before
    # the counter counts: a decode called from this thread is handed over
    ctx = _core.Context(model.core, n_ctx=64, n_threads=1)
    try:
        ctx.decode(model.tokenize(PROMPT))
    finally:
        ctx.close()
    assert _core._compute_handovers() == before + 1


def test_a_reader_that_raises_stops_its_generation(model: Model) -> None:
    never_ends = {t: float("-inf") for t in model.core.eog_tokens}

    def callback(token: int, text: str) -> bool:
        raise RuntimeError("the reader gave up")

    before = model.stats.n_generated_tokens
    params = model.sampling_params(logit_bias=never_ends)
    with pytest.raises(RuntimeError, match="gave up"):
        model.start(PROMPT, params, max_tokens=400, callback=callback).drain()
    # the request was cancelled, not left running: the next call gets the one slot at once
    assert model.generate(PROMPT, max_tokens=3, temperature=0.0).finish_reason == "length"
    assert model.stats.n_generated_tokens - before < 100


def test_callbacks_run_where_documented(model: Model) -> None:
    seen: list[bool] = []
    reader = threading.get_ident()
    model.start(
        PROMPT,
        model.sampling_params(),
        max_tokens=4,
        callback=lambda token, text: seen.append(threading.get_ident() == reader),
    ).drain()
    assert seen and all(seen)  # the token callback: on the reading thread
    assert not _core._on_compute_thread()
    engine = model._generation_engine()
    stepped_on: list[bool] = []
    engine._on_step = lambda: stepped_on.append(_core._on_compute_thread())
    try:
        model.generate(PROMPT, max_tokens=4)
    finally:
        engine._on_step = None
    assert stepped_on and all(stepped_on)  # a step's callback: on the compute thread


def test_two_models_step_in_turn(model: Model, model_path: Path) -> None:
    other = Model(model_path, n_ctx=512, n_threads=1)
    engine = weakref.ref(other._generation_engine())
    try:
        alone = [m.generate(PROMPT, max_tokens=24, temperature=0.0).text for m in (model, other)]
        before = compute.turn_waits()
        got: dict[int, str] = {}
        start = threading.Barrier(2)

        def work(i: int, m: Model) -> None:
            start.wait()
            got[i] = m.generate(PROMPT, max_tokens=24, temperature=0.0).text

        threads = [threading.Thread(target=work, args=(i, m)) for i, m in enumerate((model, other))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert [got.get(0), got.get(1)] == alone
        assert compute.turn_waits() > before  # rounds stepped both models
    finally:
        other.close()
    # a model that is gone is no longer driven (the compute thread holds engines weakly)
    assert engine() in compute.drivables()
    del other
    gc.collect()
    assert engine() is None
    assert all(d is not None for d in compute.drivables())


@pytest.mark.parametrize("timeout", ["5", -1, True])
def test_wait_idle_names_a_bad_timeout(model: Model, timeout: object) -> None:
    with pytest.raises(ValueError, match="timeout must be"):
        model.wait_idle(timeout)  # type: ignore[arg-type]


class _Steps:
    """A drivable with ``n`` steps to run; the first step wakes a waiting thread."""

    def __init__(self, n: int, wakes: Witness, log: list[str]) -> None:
        self.left = n
        self.first = True
        self.wakes = wakes
        self.log = log
        self.finished = threading.Event()

    @property
    def busy(self) -> bool:
        return self.left > 0

    def drive_step(self) -> bool:
        if self.left <= 0:
            return False
        if self.first:
            self.first = False
            self.wakes.wake()
        self.left -= 1
        self.log.append("step")
        if not self.left:
            self.finished.set()
        return True

    def drive_idle(self) -> bool:
        return False

    def interrupt_idle(self) -> None:
        pass

    def fail(self, error: BaseException) -> None:
        self.log.append(f"failed: {error}")


def test_steps_in_a_row_keep_the_gil_from_the_threads_they_wake() -> None:
    # A thread woken by a step (an event loop with the step's tokens to send) runs when
    # the compute thread gives up the GIL: in the next step's decode, never between two
    # steps, where it would hold the next step back. With a long switch interval Python
    # forces no hand-over either, so the woken thread runs only after the last step.
    log: list[str] = []
    with no_forced_switches():
        woken = Witness(log, "woken thread")
        steps = _Steps(20, woken, log)
        compute.register(steps)
        compute.wake()
        assert steps.finished.wait(60)
        woken.join()
    assert log == ["step"] * 20 + ["woken thread"]
