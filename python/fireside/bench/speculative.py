"""The ``speculative`` section: speculative decoding on input-grounded tasks and on free
writing (asked for by name only).

Tasks (each a chat prompt rendered with the model's template, greedy, ``n`` tokens with
the end-of-generation tokens banned on every side, as ``--ignore-eos`` does):

* ``answer``: answer a question from a given passage, quoting it;
* ``summarize``: summarize a given passage;
* ``rewrite``: rewrite a given function with one change;
* ``free``: free writing (nothing to quote).

Sides, alternated in each round: ``generate()`` with speculation (the default,
``speculative=True``: it drafts only when the measured verification cost pays) and with
``speculative="always"``, ``generate()`` without it (``speculative=False``),
``llama-completion`` (its ``eval time`` rate) and, when built, llama.cpp's ``llama-lookup``
example (prompt-lookup speculation; its ``decoded ... speed`` line). fireside's rate is
the steady state of the token loop (:func:`fireside.bench.generation.steady_rate`).

Ratios: ``speculative.<task>.vs_completion``, ``.vs_plain``, ``.always_vs_completion``,
``.vs_lookup``; figures ``speculative.<task>.accepted`` (the share of drafted tokens kept)
and ``speculative.<task>.identical`` (1 when every round's tokens equal the plain ones).
Targets: the input-grounded tasks >= 1.5x llama-completion, free writing >= 0.97x of
plain decoding.
"""

from __future__ import annotations

from collections.abc import Callable
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


def run_speculative(suite: Suite) -> None:
    from fireside.bench.reference import run_llama_completion, run_llama_lookup
    from fireside.model import Model

    cfg = suite.config
    n_gen = cfg.speculative_tokens
    lookup = suite.ref / "llama-lookup" if suite.ref is not None else None
    if lookup is not None and not lookup.is_file():
        suite.notes.append(
            "speculative: llama-lookup is not built (python benchmarks/build_reference.py)"
        )
        lookup = None
    settings: dict[str, Any] = {"n_ctx": 2048, "n_threads": cfg.threads}
    models = {
        "spec": Model(cfg.model, speculative=True, **settings),
        "always": Model(cfg.model, speculative="always", **settings),
        "plain": Model(cfg.model, speculative=False, **settings),
    }
    try:
        ban = eog_tokens(models["plain"])
        for task, text in TASKS.items():
            prompt = _prompt(models["plain"], text)
            identical = True
            drafted = accepted = 0

            def measure(prompt: str = prompt, task: str = task) -> Callable[[], None]:
                nonlocal identical, drafted, accepted
                rates: dict[str, float] = {}
                tokens: dict[str, list[int]] = {}
                for mode, model in models.items():
                    rate, result = _ours(model, prompt, n_gen, ban)
                    rates[mode], tokens[mode] = rate, result.tokens
                    if mode == "always":
                        drafted += result.timings.draft_tokens
                        accepted += result.timings.accepted_tokens
                identical = identical and tokens["spec"] == tokens["plain"] == tokens["always"]
                if suite.ref is not None:
                    done = run_llama_completion(
                        suite.ref, cfg.model, prompt, threads=cfg.threads, n_predict=n_gen,
                        n_ctx=2048,
                    )  # fmt: skip
                    rates["completion"] = done.eval_tokens_per_second
                if lookup is not None:
                    rates["lookup"] = run_llama_lookup(
                        suite.ref,  # type: ignore[arg-type]
                        cfg.model,
                        prompt,
                        threads=cfg.threads,
                        n_predict=n_gen,
                        n_ctx=2048,
                    )

                def commit() -> None:
                    for side, rate in rates.items():
                        suite.fig(f"speculative.{task}.{side}", "tokens/s").add(rate)

                return commit

            for i in suite.rounds():
                suite.gated(i, f"speculative.{task}", measure)
            suite.fig(f"speculative.{task}.identical", "bool").add(1.0 if identical else 0.0)
            if drafted:
                suite.fig(f"speculative.{task}.accepted", "share").add(accepted / drafted)
            figures = suite.figures
            key = f"speculative.{task}"
            for ratio, ours, reference in (
                ("vs_completion", "spec", "completion"),
                ("always_vs_completion", "always", "completion"),
                ("vs_plain", "spec", "plain"),
                ("always_vs_plain", "always", "plain"),
                ("vs_lookup", "spec", "lookup"),
            ):
                if f"{key}.{ours}" in figures and f"{key}.{reference}" in figures:
                    suite.compare(
                        f"{key}.{ratio}", figures[f"{key}.{ours}"], figures[f"{key}.{reference}"]
                    )
    finally:
        for model in models.values():
            model.close()
