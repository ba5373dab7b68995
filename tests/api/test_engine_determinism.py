"""One engine, exact results: a request's tokens do not depend on what the cache held
before or on the requests beside it; concurrent callers of one Model share decode steps.

See fireside.generation.engine, "Determinism".
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fireside.model import Model

PREFIX = (
    "You are a careful assistant. Answer in one short sentence, with no preamble. "
    "The facts below may help. The river flows north past the old mill, then east "
    "through the town, where three bridges cross it; the oldest is made of stone. "
) * 3
QUESTIONS = [
    "Which way does the river flow first?",
    "How many bridges cross it?",
    "What is the oldest bridge made of?",
    "Where is the mill?",
]
N_TOKENS = 12


@pytest.fixture(scope="module")
def model(model_path: Path) -> Iterator[Model]:
    with Model(model_path, n_ctx=512, n_threads=1, n_parallel=8) as m:
        yield m


def ask(model: Model, question: str, **sampling: object) -> list[int]:
    prompt = f"{PREFIX}\nQuestion: {question}\nAnswer:"
    options = {"temperature": 0.0, **sampling}
    return model.generate(prompt, max_tokens=N_TOKENS, **options).tokens  # type: ignore[arg-type]


def test_same_tokens_after_any_cache_history(model: Model) -> None:
    assert len(model.tokenize(PREFIX)) > 128  # longer than two prompt chunks
    for sampling in ({}, {"temperature": 0.9, "seed": 7}):
        fresh = {}
        for q in QUESTIONS:
            model.reset()
            fresh[q] = ask(model, q, **sampling)
        for q in QUESTIONS:  # after a prompt sharing the long prefix
            for other in QUESTIONS:
                ask(model, other, **sampling)
                assert ask(model, q, **sampling) == fresh[q], (q, other, sampling)
        model.generate("Unrelated: a poem about the sea.", max_tokens=4)
        assert [ask(model, q, **sampling) for q in QUESTIONS] == list(fresh.values())
        assert model.stats.last_prompt_tokens_reused > 0  # the prefix really was reused


@pytest.mark.parametrize(
    "sampling", [{}, {"temperature": 0.9, "seed": 11}], ids=["greedy", "seeded"]
)
def test_eight_threads_give_their_sequential_outputs_in_shared_steps(
    model: Model, sampling: dict[str, object]
) -> None:
    questions = QUESTIONS * 2
    model.reset()
    alone = [ask(model, q, **sampling) for q in questions]
    before = model.stats
    results: dict[int, list[int]] = {}
    start = threading.Barrier(len(questions))

    def work(i: int) -> None:
        start.wait()
        results[i] = ask(model, questions[i], **sampling)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(questions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert [results[i] for i in range(len(questions))] == alone
    after = model.stats
    generated = after.n_generated_tokens - before.n_generated_tokens
    steps = after.n_generation_steps - before.n_generation_steps
    print(f"{generated} tokens in {steps} generation steps, at most {after.n_sequences_max} seqs")
    assert steps < generated  # the threads shared decode steps
    assert after.n_sequences_max > 1


def test_a_stream_beside_others_matches_it_alone(model: Model) -> None:
    prompt = f"{PREFIX}\nQuestion: {QUESTIONS[0]}\nAnswer:"
    model.reset()
    alone = model.generate(prompt, max_tokens=N_TOKENS, temperature=0).text
    streams = [
        model.generate(
            prompt if i == 0 else QUESTIONS[i], max_tokens=N_TOKENS, temperature=0, stream=True
        )
        for i in range(4)
    ]
    # one thread interleaves four streams: each next() may run a step for all of them
    texts = ["" for _ in streams]
    live = set(range(len(streams)))
    while live:
        for i in sorted(live):
            try:
                texts[i] += next(streams[i])
            except StopIteration:
                live.discard(i)
    assert texts[0] == alone
