"""The ``speculative`` section: speculative decoding on input-grounded tasks and on free
writing (asked for by name only).

Tasks (each a chat prompt rendered with the model's template, greedy, ``n`` tokens with
the end-of-generation tokens banned on every side, as ``--ignore-eos`` does):

* ``answer``: answer a question from a given passage, quoting it;
* ``summarize``: summarize a given passage;
* ``rewrite``: rewrite a given function with one change;
* ``free``: free writing (nothing to quote).

Sides, one after another in each round: ``generate()`` with speculation (the default,
``speculative=True``: it drafts only when the measured verification cost pays), with
``speculative="always"`` and without it (``speculative=False``), each on its own
``Model``; ``llama-completion`` (its ``eval time`` rate: the decode alone, its sampling
not counted) and, when built, llama.cpp's ``llama-lookup`` example (prompt-lookup
speculation, drafts of up to 16 like fireside's; its ``decoded ... speed`` line: every
token over the time after the prompt). fireside's rate is the steady state of the token
loop, sampling and detokenizing included (:func:`fireside.bench.generation.steady_rate`).
Both llama.cpp tools run with ``-ub 64``: fireside evaluates a prompt in 64-token chunks
(:data:`fireside.generation.engine.CHUNK`), and a 64-token batch rounds differently from
llama.cpp's default 512, so with ``-ub 512`` llama-completion's greedy text departs from
fireside's on some prompts (summarize, rewrite) although neither speculates; ``-ub``
changes only how the prompt is split (verifications and single-token steps are smaller),
not the rates measured.

Ratios: ``speculative.<task>.vs_completion`` (the issue's target on the grounded tasks),
``.vs_lookup``, ``.always_vs_completion``, ``.always_vs_lookup``, ``.vs_plain`` (the
target on ``free``), ``.always_vs_plain``, ``.plain_vs_completion``. Figures
``speculative.<task>.accepted`` / ``.always_accepted`` / ``.lookup_accepted`` (the share of
drafted tokens kept), ``.drafted`` (tokens ``speculative=True`` drafted per generated
token: 0 when it judged drafting not worth it) and the checks, 1 when every round agreed:
``.identical`` (the three fireside modes give the same tokens), ``.same_as_completion``
(that text is llama-completion's), ``.same_as_lookup`` (llama-lookup's text starts with
it: it generates a few tokens past ``-n``). ``speculative.identical`` (a ratio, target
>= 1) is 1 when every check of every task held.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from fireside.bench.generation import eog_tokens, steady_rate

if TYPE_CHECKING:
    from fireside.bench.suite import Suite
    from fireside.model import Model

PASSAGE = (
    "The Rules-Requires-Root field states whether building the package needs root. It may "
    "be no, binary-targets, or a space separated list of keywords. With no, the builder "
    "never uses root, and the files in the package belong to root by default. With "
    "binary-targets, the binary targets of debian/rules are run under root, as before. "
    "Keywords name the other places where root is needed, each prefixed with its namespace."
)
FUNCTION = '''def area(width, height):
    """The area of a rectangle."""
    if width < 0 or height < 0:
        raise ValueError("negative size")
    return width * height


def perimeter(width, height):
    """The perimeter of a rectangle."""
    if width < 0 or height < 0:
        raise ValueError("negative size")
    return 2 * (width + height)
'''
TASKS: dict[str, str] = {
    "answer": f"{PASSAGE}\n\nWhat values can the Rules-Requires-Root field take? Quote the "
    "text above.",
    "summarize": f"{PASSAGE}\n\nSummarize the text above.",
    "rewrite": f"{FUNCTION}\nRewrite these functions so that the error message says "
    '"sizes must not be negative". Give the whole code.',
    "free": "Write a story about a lighthouse keeper who finds a message in a bottle.",
}
GROUNDED = ("answer", "summarize", "rewrite")
N_CTX = 2048


def _prompt(model: Model, text: str) -> str:
    rendered = model.apply_chat_template([{"role": "user", "content": text}])
    assert isinstance(rendered, str)
    return rendered


def _ours(model: Model, prompt: str, n_gen: int, ban: list[int]) -> tuple[float, Any]:
    model.reset()
    bias = {t: float("-inf") for t in ban}
    result = model.generate(prompt, max_tokens=n_gen, temperature=0.0, logit_bias=bias)
    t = result.timings
    rate = steady_rate(len(result.tokens), t.generation_ms, t.time_to_first_token_ms, t.prompt_ms)
    return rate, result


RATIOS = (
    ("vs_completion", "spec", "completion", "generate() speculative=True vs llama-completion"),
    ("vs_lookup", "spec", "lookup", "generate() speculative=True vs llama-lookup"),
    (
        "always_vs_completion",
        "always",
        "completion",
        'generate() speculative="always" vs llama-completion',
    ),
    ("always_vs_lookup", "always", "lookup", 'generate() speculative="always" vs llama-lookup'),
    ("vs_plain", "spec", "plain", "generate() speculative=True vs speculative=False"),
    ("always_vs_plain", "always", "plain", 'generate() "always" vs speculative=False'),
    (
        "plain_vs_completion",
        "plain",
        "completion",
        "generate() speculative=False vs llama-completion",
    ),
)
"""``(ratio, ours, reference, label)``: ``speculative.<task>.<ratio>`` is
``speculative.<task>.<ours> / .<reference>`` (tokens/s)."""
CHECKS = ("identical", "same_as_completion", "same_as_lookup")


def comparisons(figures: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The report's rows for the section's ratios (those whose figures were measured)."""
    rows = []
    for task in TASKS:
        kind = "input-grounded" if task in GROUNDED else "free writing"
        for name, ours, reference, label in RATIOS:
            key = f"speculative.{task}"
            if f"{key}.{ours}" in figures:
                ref = f"{key}.{reference}"
                rows.append(
                    {
                        "ratio": f"{key}.{name}",
                        "label": f"speculative, {task} ({kind}): {label}",
                        "ours": f"{key}.{ours}",
                        "reference": ref if ref in figures else None,
                    }
                )
    return rows


def run_speculative(suite: Suite) -> None:
    from fireside.model import Model

    cfg = suite.config
    ref = suite.ref
    lookup = ref is not None and (ref / "llama-lookup").is_file()
    if ref is not None and not lookup:
        suite.notes.append(
            "speculative: llama-lookup is not built (python benchmarks/build_reference.py)"
        )
    settings: dict[str, Any] = {"n_ctx": N_CTX, "n_threads": cfg.threads}
    models = {
        "spec": Model(cfg.model, speculative=True, **settings),
        "always": Model(cfg.model, speculative="always", **settings),
        "plain": Model(cfg.model, speculative=False, **settings),
    }
    try:
        ban = eog_tokens(models["plain"])
        held = [_run_task(suite, models, ban, task, lookup=lookup) for task in TASKS]
        suite.ratios["speculative.identical"] = 1.0 if all(held) else 0.0
    finally:
        for model in models.values():
            model.close()


def _run_task(
    suite: Suite, models: dict[str, Model], ban: list[int], task: str, *, lookup: bool
) -> bool:
    """Every round of one task; whether all its checks held."""
    from fireside.bench.reference import run_llama_completion, run_llama_lookup
    from fireside.generation.engine import CHUNK

    cfg, ref = suite.config, suite.ref
    n_gen = cfg.speculative_tokens
    prompt = _prompt(models["plain"], TASKS[task])
    key = f"speculative.{task}"
    checks = {"identical": True, "same_as_completion": True, "same_as_lookup": True}
    counts = {side: [0, 0] for side in (*models, "lookup")}  # drafted, accepted
    generated = [0]

    def measure() -> Callable[[], None]:
        rates: dict[str, float] = {}
        results: dict[str, Any] = {}
        drafts: dict[str, tuple[int, int]] = {}
        for mode, model in models.items():
            rates[mode], results[mode] = _ours(model, prompt, n_gen, ban)
            t = results[mode].timings
            drafts[mode] = (t.draft_tokens, t.accepted_tokens)
        plain = results["plain"]
        # the checks count every round, warm-up ones too
        checks["identical"] &= results["spec"].tokens == plain.tokens == results["always"].tokens
        if len(plain.tokens) != n_gen:
            suite.notes.append(
                f"speculative {task}: {len(plain.tokens)} tokens instead of {n_gen} "
                f"({plain.finish_reason})"
            )
        if ref is not None:
            done = run_llama_completion(
                ref, cfg.model, prompt, threads=cfg.threads, n_predict=n_gen, n_ctx=N_CTX,
                show_prompt=False, ubatch=CHUNK,
            )  # fmt: skip
            rates["completion"] = done.eval_tokens_per_second
            checks["same_as_completion"] &= done.text == plain.text
        if lookup:
            assert ref is not None
            run = run_llama_lookup(
                ref, cfg.model, prompt, threads=cfg.threads, n_predict=n_gen, n_ctx=N_CTX,
                ubatch=CHUNK,
            )  # fmt: skip
            rates["lookup"] = run.tokens_per_second
            if run.n_drafted is not None and run.n_accepted is not None:
                drafts["lookup"] = (run.n_drafted, run.n_accepted)
            if run.text is None:
                suite.notes.append(
                    f"speculative {task}: the prompt is not in llama-lookup's output, so its "
                    "text was not compared"
                )
            checks["same_as_lookup"] &= run.text is not None and run.text.startswith(plain.text)

        def commit() -> None:
            for side, rate in rates.items():
                suite.fig(f"{key}.{side}", "tokens/s").add(rate)
            for side, (n_drafted, n_accepted) in drafts.items():
                counts[side][0] += n_drafted
                counts[side][1] += n_accepted
            generated[0] += len(results["spec"].tokens)

        return commit

    for i in suite.rounds():
        suite.gated(i, key, measure)
    measured = {"identical": True, "same_as_completion": ref is not None, "same_as_lookup": lookup}
    for check, ok in checks.items():
        if measured[check]:
            suite.fig(f"{key}.{check}", "bool").add(1.0 if ok else 0.0)
    for side, name in (
        ("spec", "accepted"),
        ("always", "always_accepted"),
        ("lookup", "lookup_accepted"),
    ):
        n_drafted, n_accepted = counts[side]
        if n_drafted:
            suite.fig(f"{key}.{name}", "share").add(n_accepted / n_drafted)
    if generated[0]:
        suite.fig(f"{key}.drafted", "per token").add(counts["spec"][0] / generated[0])
    figures = suite.figures
    for ratio, ours, reference, _ in RATIOS:
        if f"{key}.{ours}" in figures and f"{key}.{reference}" in figures:
            suite.compare(f"{key}.{ratio}", figures[f"{key}.{ours}"], figures[f"{key}.{reference}"])
    return all(ok for check, ok in checks.items() if measured[check])
