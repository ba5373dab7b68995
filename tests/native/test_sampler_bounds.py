"""The native sampler stages accept exactly the values fireside's one definition of the
sampling options accepts (:data:`fireside.generation.sampling.BOUNDS`): at each bound,
just inside and just outside it, Python and C++ agree."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from fireside import _core
from fireside.generation.sampling import BOUNDS, INT32_MAX, SamplingParams

Stage = Callable[[_core.Sampler, float], object]

STAGES: dict[str, Stage] = {
    "temperature": lambda s, v: s.add_temperature(v),
    "top_k": lambda s, v: s.add_top_k(int(v)),
    "top_p": lambda s, v: s.add_top_p(v),
    "min_p": lambda s, v: s.add_min_p(v),
    "typical_p": lambda s, v: s.add_typical(v),
    "repeat_penalty": lambda s, v: s.add_penalties(64, v, 0.0, 0.0),
    "repeat_last_n": lambda s, v: s.add_penalties(int(v), 1.1, 0.0, 0.0),
    "frequency_penalty": lambda s, v: s.add_penalties(64, 1.0, v, 0.0),
    "presence_penalty": lambda s, v: s.add_penalties(64, 1.0, 0.0, v),
    "mirostat_tau": lambda s, v: s.add_mirostat_v2(1, v, 0.1),
    "mirostat_eta": lambda s, v: s.add_mirostat_v2(1, 5.0, v),
    "dry_multiplier": lambda s, v: s.add_dry(v),
    "dry_base": lambda s, v: s.add_dry(0.5, v),
    "dry_allowed_length": lambda s, v: s.add_dry(0.5, 1.75, int(v)),
}


def probes(name: str) -> list[float]:
    bounds = BOUNDS[name]
    step = 1 if bounds.integer else 0.01
    values = [bounds.lo, bounds.lo - step, bounds.lo + step, math.nan, math.inf, -math.inf]
    if math.isfinite(bounds.hi) and bounds.hi < INT32_MAX:  # huge windows would allocate
        values += [bounds.hi, bounds.hi + step, bounds.hi - step]
    if bounds.integer:
        values = [v for v in values if math.isfinite(v)]
    return values


def test_every_numeric_option_with_a_stage_is_probed() -> None:
    assert set(STAGES) == set(BOUNDS)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_native_stages_agree_with_the_definition(model: _core.Model, name: str) -> None:
    for value in probes(name):
        try:
            SamplingParams(**{name: value})
            python_ok = True
        except ValueError:
            python_ok = False
        try:
            STAGES[name](_core.Sampler(model), value)
            native_ok = True
        except ValueError:
            native_ok = False
        assert native_ok == python_ok, f"{name}={value!r}: Python {python_ok}, C++ {native_ok}"


def test_logit_bias_agrees(model: _core.Model) -> None:
    for value, ok in ((-math.inf, True), (math.inf, False), (math.nan, False), (3.0, True)):
        try:
            SamplingParams(logit_bias={1: value})
            python_ok = True
        except ValueError:
            python_ok = False
        try:
            _core.Sampler(model).add_logit_bias({1: value})
            native_ok = True
        except ValueError:
            native_ok = False
        assert python_ok == native_ok == ok, value
