"""Ollama's ``options`` take SamplingParams' ranges (one definition): every bound in
``BOUNDS`` is accepted or refused by ``Options`` exactly as by the library, with its
message. No server needed: the request model alone."""

from __future__ import annotations

import math

import pytest
from fireside.generation.sampling import BOUNDS, check_option
from fireside.server.ollama_protocol import SAMPLING_OPTIONS, Options
from pydantic import ValidationError


def probes(name: str) -> list[float]:
    bounds = BOUNDS[name]
    step = 1 if bounds.integer else 1e-3
    values = [bounds.lo, bounds.lo - step, bounds.lo + step]
    if math.isfinite(bounds.hi):
        values += [bounds.hi, bounds.hi + step]
    return [int(v) if bounds.integer else v for v in values]


@pytest.mark.parametrize("name", [n for n in SAMPLING_OPTIONS if n in BOUNDS])
def test_each_bound_is_the_librarys(name: str) -> None:
    for value in probes(name):
        try:
            expected = check_option(name, value)
        except ValueError as e:
            with pytest.raises(ValidationError) as info:
                Options(**{name: value})
            assert str(e) in str(info.value), (name, value)
        else:
            assert getattr(Options(**{name: value}), name) == expected, (name, value)


def test_every_sampling_option_is_checked_by_the_library() -> None:
    assert set(SAMPLING_OPTIONS) <= set(Options.model_fields)
    with pytest.raises(ValidationError, match="mirostat must be 0 \\(off\\), 1 or 2"):
        Options(mirostat=3)
    assert Options(seed=-1).seed == -1  # Ollama's "random": not SamplingParams' check
    assert Options().model_dump(exclude_none=True) == {}
