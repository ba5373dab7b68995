"""Vocabulary-sized and file-bound native calls release the GIL while they run.

With Python's switch interval set very long, a spinning Python thread gets the GIL only
when the running thread lets it go; so if its counter moves during a native call, that call
released the GIL. Each call is checked over several repetitions (counters, no timings).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fireside import _core

from .conftest import make_context

GRAMMAR = 'root ::= "x" [a-z]*'  # rejects almost every token greedy would pick: the fallback


class Spinner:
    """A Python thread that counts while it holds the GIL, yielding it after each count."""

    def __init__(self) -> None:
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)

    def _spin(self) -> None:
        while not self._stop.is_set():
            self.count += 1
            time.sleep(0)  # hand the GIL back at once

    def __enter__(self) -> Spinner:  # noqa: PYI034
        self._old = sys.getswitchinterval()
        sys.setswitchinterval(1000.0)  # no forced switches: only voluntary releases
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        sys.setswitchinterval(self._old)

    def ran_during(self, call: Callable[[], object], repeat: int = 200) -> int:
        """How many times the spinner counted while ``call`` ran, over ``repeat`` calls."""
        total = 0
        for _ in range(repeat):
            before = self.count
            call()
            total += self.count - before
        return total


@pytest.fixture
def ctx(model: _core.Model) -> Iterator[_core.Context]:
    c = make_context(model)
    c.decode(model.tokenize("The capital of France is"))
    yield c
    c.close()


def test_sampling_and_logprobs_release_the_gil(model: _core.Model, ctx: _core.Context) -> None:
    greedy = _core.Sampler(model).add_greedy()
    chain = _core.Sampler(model).add_top_k(40).add_temperature(0.8).add_dist(1)
    grammar = _core.Sampler(model).add_grammar(GRAMMAR).add_greedy()
    with Spinner() as spinner:
        # (a greedy argmax is too short for the spinner to wake within: not asserted)
        greedy.sample(ctx)
        assert spinner.ran_during(lambda: chain.sample(ctx)) > 0
        assert spinner.ran_during(lambda: (grammar.sample(ctx), grammar.reset())) > 0
        assert spinner.ran_during(lambda: ctx.logprobs(-1, 0, top_n=20)) > 0


def test_state_files_and_schema_conversion_release_the_gil(
    model: _core.Model, ctx: _core.Context, tmp_path: Path
) -> None:
    path = tmp_path / "state.bin"
    ctx.state_save(path)
    schema = json.dumps(
        {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(200)}}
    )
    with Spinner() as spinner:
        assert spinner.ran_during(lambda: ctx.state_save(path)) > 0
        assert spinner.ran_during(lambda: ctx.state_load(path)) > 0
        assert spinner.ran_during(lambda: _core.json_schema_to_grammar(schema), repeat=5) > 0
