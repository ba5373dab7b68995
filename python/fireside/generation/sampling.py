"""Sampling parameters, validated once, and the llama.cpp sampler chain they describe."""

from __future__ import annotations

import math
import numbers
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from fireside import _core

SEED_MAX = 2**32 - 1
INT32_MAX = 2**31 - 1
"""The largest count (``top_k``, ``repeat_last_n``, ...) llama.cpp accepts."""
_LLAMA_RANDOM_SEED = 0xFFFFFFFF  # llama.cpp reads this seed as "pick one at random"
_FALLBACK_CONTEXT = 4096


def _number(name: str, value: Any) -> float:
    """``value`` as a finite float, or ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")  # noqa: TRY004
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return value


def _integer(name: str, value: Any) -> int:
    """``value`` as an int (integral floats accepted), or ValueError naming ``name``."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}")  # noqa: TRY004
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
        return int(float(value))
    raise ValueError(f"{name} must be an integer, got {value!r}")


@dataclass(frozen=True)
class Bounds:
    """The values a numeric sampling option accepts: ``[lo, hi]`` (``lo`` excluded when
    ``lo_open``), described as ``text`` in error messages and documentation. The native
    sampler stages check the same bounds (``tests/native/test_sampler_bounds.py``)."""

    lo: float
    hi: float
    text: str
    integer: bool = False
    lo_open: bool = False

    def check(self, name: str, value: Any) -> float | int:
        checked: float | int = _integer(name, value) if self.integer else _number(name, value)
        if self.integer and checked > self.hi:  # llama.cpp takes 32-bit counts
            raise ValueError(f"{name} must be at most {int(self.hi)}, got {checked!r}")
        if not self.lo <= checked <= self.hi or (self.lo_open and checked == self.lo):
            raise ValueError(f"{name} must be {self.text}, got {checked!r}")
        return checked


_INF = math.inf
BOUNDS: dict[str, Bounds] = {
    "temperature": Bounds(0.0, 2.0, "in [0, 2] (0: greedy)"),
    "top_k": Bounds(0, INT32_MAX, ">= 0 (0 disables it)", integer=True),
    "top_p": Bounds(0.0, 1.0, "in [0, 1]"),
    "min_p": Bounds(0.0, 1.0, "in [0, 1]"),
    "typical_p": Bounds(0.0, 1.0, "in (0, 1]", lo_open=True),
    "repeat_penalty": Bounds(0.0, _INF, "> 0", lo_open=True),
    "repeat_last_n": Bounds(-1, INT32_MAX, ">= -1 (-1: the context)", integer=True),
    "frequency_penalty": Bounds(-2.0, 2.0, "in [-2, 2]"),
    "presence_penalty": Bounds(-2.0, 2.0, "in [-2, 2]"),
    "mirostat_tau": Bounds(0.0, _INF, "> 0", lo_open=True),
    "mirostat_eta": Bounds(0.0, _INF, "> 0", lo_open=True),
    "dry_multiplier": Bounds(0.0, _INF, ">= 0 (0 disables it)"),
    "dry_base": Bounds(1.0, _INF, ">= 1"),
    "dry_allowed_length": Bounds(0, INT32_MAX, ">= 0", integer=True),
}
"""Every numeric option's accepted values (the one place they are written)."""


class SamplingOptions(TypedDict, total=False):
    """:class:`SamplingParams` as keyword arguments: the ``**sampling`` of
    :meth:`fireside.Model.generate`, ``chat``, chat sessions (the same names, types,
    defaults and checks; ``tests/api/test_sampling_params.py`` keeps them equal)."""

    temperature: float
    top_k: int
    top_p: float
    min_p: float
    typical_p: float
    repeat_penalty: float
    repeat_last_n: int
    frequency_penalty: float
    presence_penalty: float
    seed: int | None
    mirostat: int
    mirostat_tau: float
    mirostat_eta: float
    dry_multiplier: float
    dry_base: float
    dry_allowed_length: int
    logit_bias: dict[int, float] | None
    grammar: str | None


@dataclass(frozen=True)
class SamplingParams:
    """How the next token is chosen: the one definition of fireside's sampling options,
    their defaults and their checks (every field is checked on creation; a bad value
    raises ``ValueError`` naming it). :class:`SamplingOptions` is its keyword form, and
    the server's request fields take these names, defaults and checks.

    ``temperature == 0`` means greedy decoding (the truncation stages and ``seed`` then do
    not matter). ``seed=None`` picks a fresh random seed each time a sampler is built.
    ``logit_bias`` maps token ids to values added to their logits (``-inf`` bans a token).
    ``grammar`` is a GBNF grammar that constrains the output. ``mirostat`` (1 or 2)
    replaces the truncation stages with Mirostat aiming at surprise ``mirostat_tau``,
    learning at ``mirostat_eta``. ``dry_multiplier > 0`` penalises repeating sequences
    longer than ``dry_allowed_length`` (DRY; the penalty grows as ``dry_base`` to the
    power of the length).
    """

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    typical_p: float = 1.0
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    seed: int | None = None
    mirostat: int = 0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    dry_multiplier: float = 0.0
    dry_base: float = 1.75
    dry_allowed_length: int = 2
    logit_bias: dict[int, float] | None = None
    grammar: str | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, check_option(f.name, getattr(self, f.name)))

    @property
    def greedy(self) -> bool:
        """Whether this picks the most likely token every time."""
        return self.temperature == 0.0

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> SamplingParams:
        """Params from keyword options (omitted ones take the defaults); an unknown name
        raises ``TypeError`` listing the known ones."""
        unknown = sorted(set(options) - OPTION_NAMES)
        if unknown:
            raise TypeError(
                f"unknown sampling option {unknown[0]!r}; the options are: "
                + ", ".join(OPTION_NAMES_ORDERED)
            )
        return cls(**options)


def check_option(name: str, value: Any) -> Any:
    """``value`` checked (and normalised) as sampling option ``name``; ``ValueError``
    naming it when it is out of range."""
    bounds = BOUNDS.get(name)
    if bounds is not None:
        return bounds.check(name, value)
    check = _CHECKS.get(name)
    if check is None:
        raise TypeError(f"unknown sampling option {name!r}")
    return check(value)


def _check_seed(value: Any) -> int | None:
    if value is None:
        return None
    value = _integer("seed", value)
    if not 0 <= value <= SEED_MAX:
        raise ValueError(f"seed must be None or an integer in [0, {SEED_MAX}], got {value!r}")
    return value


def _check_mirostat(value: Any) -> int:
    value = _integer("mirostat", value)
    if value not in (0, 1, 2):
        raise ValueError(f"mirostat must be 0 (off), 1 or 2, got {value!r}")
    return value


def _check_logit_bias(value: Any) -> dict[int, float] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"logit_bias must be a dict of token id to float, got {value!r}")  # noqa: TRY004
    checked: dict[int, float] = {}
    for token, bias in value.items():
        token = _integer("logit_bias token id", token)
        if token < 0:
            raise ValueError(f"logit_bias token id must be >= 0, got {token}")
        if isinstance(bias, bool) or not isinstance(bias, numbers.Real) or math.isnan(bias):
            raise ValueError(f"logit_bias[{token}] must be a number, got {bias!r}")
        if float(bias) == math.inf:
            raise ValueError(f"logit_bias[{token}] must be finite or -inf (to ban), got inf")
        checked[token] = float(bias)
    return checked


def _check_grammar(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"grammar must be None or a non-empty GBNF string, got {value!r}")
    return value


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "seed": _check_seed,
    "mirostat": _check_mirostat,
    "logit_bias": _check_logit_bias,
    "grammar": _check_grammar,
}
OPTION_NAMES_ORDERED = tuple(f.name for f in fields(SamplingParams))
OPTION_NAMES = frozenset(OPTION_NAMES_ORDERED)
DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(SamplingParams)}
"""Each option's default."""


def resolve_seed(seed: int | None) -> int:
    """The seed to hand llama.cpp: a fresh random one for ``None``.

    llama.cpp treats ``0xFFFFFFFF`` as "random", so that one value is mapped to
    ``0xFFFFFFFE`` to keep every explicit seed reproducible.
    """
    if seed is None:
        return secrets.randbelow(_LLAMA_RANDOM_SEED)
    return _LLAMA_RANDOM_SEED - 1 if seed == _LLAMA_RANDOM_SEED else seed


def build_sampler(
    model: _core.Model, params: SamplingParams, *, n_ctx: int | None = None
) -> _core.Sampler:
    """Build the llama.cpp sampler chain that ``params`` describes.

    Order: grammar (first, so no later stage can leave only forbidden tokens), logit
    bias, penalties, DRY, then either greedy (``temperature == 0``), mirostat (temperature
    then mirostat), or top-k, typical, top-p, min-p, temperature and a seeded draw.
    Stages that would do nothing are left out. ``n_ctx`` is the context size that
    ``repeat_last_n=-1`` stands for and that DRY looks back over (default: the model's
    trained context).
    Raises :class:`fireside.errors.GrammarError` for an invalid grammar and
    ``ValueError`` for logit-bias token ids outside the vocabulary.
    """
    from fireside import _core

    if params.logit_bias:
        n_vocab = model.n_vocab
        for token in params.logit_bias:
            if token >= n_vocab:
                raise ValueError(
                    f"logit_bias token id {token} is out of range for a vocabulary of "
                    f"{n_vocab} tokens"
                )
    sampler = _core.Sampler(model)
    if params.grammar is not None:
        sampler.add_grammar(params.grammar)
    if params.logit_bias:
        sampler.add_logit_bias(params.logit_bias)
    # a vocab-only model reports no trained context; any window works for it
    context = n_ctx or model.n_ctx_train or _FALLBACK_CONTEXT
    last_n = context if params.repeat_last_n == -1 else params.repeat_last_n
    penalised = (
        params.repeat_penalty != 1.0
        or params.frequency_penalty != 0.0
        or params.presence_penalty != 0.0
    )
    if penalised and last_n != 0:
        sampler.add_penalties(
            last_n, params.repeat_penalty, params.frequency_penalty, params.presence_penalty
        )
    if params.dry_multiplier > 0.0:
        sampler.add_dry(
            params.dry_multiplier, params.dry_base, params.dry_allowed_length, last_n=context
        )
    if params.greedy:
        return sampler.add_greedy()
    seed = resolve_seed(params.seed)
    if params.mirostat:
        sampler.add_temperature(params.temperature)
        if params.mirostat == 1:
            return sampler.add_mirostat(seed, params.mirostat_tau, params.mirostat_eta)
        return sampler.add_mirostat_v2(seed, params.mirostat_tau, params.mirostat_eta)
    if params.top_k > 0:
        sampler.add_top_k(params.top_k)
    if params.typical_p < 1.0:
        sampler.add_typical(params.typical_p)
    if params.top_p < 1.0:
        sampler.add_top_p(params.top_p)
    if params.min_p > 0.0:
        sampler.add_min_p(params.min_p)
    sampler.add_temperature(params.temperature)
    return sampler.add_dist(seed)
