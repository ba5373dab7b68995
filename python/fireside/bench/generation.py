"""End-to-end ``Model.generate()`` throughput: sampling, detokenizing and stop checks
included, compared with ``llama-completion``'s eval rate.

Both sides generate exactly ``n_gen`` tokens: llama-completion with ``--ignore-eos``
(which bans the end-of-generation tokens with a -inf logit bias), fireside with the same
bias. The rate is the steady state of the token loop, ``(n - 1)`` tokens over the time
from the first sampled token to the last (the prompt is not part of it), taken from the
result's own timings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fireside import _core
    from fireside.model import Model

PROMPT = (
    "The history of the lighthouse begins in the ancient world, where fires were lit on "
    "hilltops to guide ships safely into harbour. Over the centuries"
)
"""A plain-text prompt (no chat template) both sides continue."""

GREEDY: dict[str, Any] = {"temperature": 0.0}
TYPICAL: dict[str, Any] = {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05}
"""fireside's (and llama.cpp's) default sampling settings."""


def completion_sampling_args(settings: dict[str, Any], seed: int) -> list[str]:
    """The same settings as llama-completion options."""
    if settings.get("temperature", 0.8) <= 0:
        return ["--temp", "0"]
    return [
        "--temp",
        str(settings["temperature"]),
        "--top-k",
        str(settings["top_k"]),
        "--top-p",
        str(settings["top_p"]),
        "--min-p",
        str(settings["min_p"]),
        "--seed",
        str(seed),
    ]


def eog_tokens(model: Model) -> list[int]:
    """Every end-of-generation token of the vocabulary (what ``--ignore-eos`` bans)."""
    core = model.core
    return [t for t in range(core.n_vocab) if core.is_eog(t)]


@dataclass
class GenerateSample:
    tokens_per_second: float
    n_tokens: int
    finish_reason: str
    eval_tokens_per_second: float | None
    """llama.cpp's own eval rate inside this generation (its ``eval time`` counter, the
    figure llama-completion prints): the decode alone, without fireside's loop."""


def steady_rate(n_tokens: int, generation_ms: float, ttft_ms: float, prompt_ms: float) -> float:
    """``(n - 1)`` tokens over the time from the first sampled token to the end."""
    loop_ms = generation_ms - (ttft_ms - prompt_ms)
    if n_tokens < 2 or loop_ms <= 0:
        return 0.0
    return (n_tokens - 1) / (loop_ms / 1000.0)


def run_generate(
    model: Model,
    *,
    n_gen: int,
    settings: dict[str, Any],
    ban: Sequence[int],
    seed: int = 42,
    prompt: str = PROMPT,
) -> GenerateSample:
    """One ``generate()`` of ``n_gen`` tokens; the cache is reset so the prompt is
    evaluated like llama-completion's."""
    model.reset()
    ctx = _context_of(model)
    if ctx is not None:
        ctx.reset_perf()
    bias = {t: float("-inf") for t in ban}
    result = model.generate(prompt, max_tokens=n_gen, seed=seed, logit_bias=bias, **settings)
    t = result.timings
    rate = steady_rate(len(result.tokens), t.generation_ms, t.time_to_first_token_ms, t.prompt_ms)
    eval_rate = None
    if ctx is not None:
        perf = ctx.perf()
        if perf.n_eval and perf.t_eval_ms > 0:
            eval_rate = perf.n_eval / (perf.t_eval_ms / 1000.0)
    return GenerateSample(rate, len(result.tokens), result.finish_reason, eval_rate)


def _context_of(model: Model) -> _core.Context | None:
    """The context the model generates on (a diagnostic; ``None`` if it cannot be found)."""
    engine = getattr(model, "_engine", None)
    ctx = getattr(engine, "ctx", None)
    return ctx if ctx is not None and hasattr(ctx, "perf") else None
