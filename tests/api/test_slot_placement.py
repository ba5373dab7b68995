"""Concurrent requests on a Model with more slots than requests take slots side by side.

llama.cpp decodes separate sequences in one graph only over consecutive sequence ids; each
run of consecutive ids costs a graph of its own. The engine counts the graphs of its
generation steps (``n_generation_graphs``); these tests make the least recently used slots
lie apart, where choosing by age alone would decode every step in several graphs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fireside.model import Model

N_SLOTS = 16
PASSAGE = (
    "walked along the river in the morning, counted the boats under the three bridges, "
    "stopped at the old stone mill to rest, and wrote down everything that was seen there "
    "in a small notebook, with the time, the weather and the names of the people met. "
    "In the evening the notebook went back on the shelf beside the window."
)
NAMES = [
    "Ada", "Boris", "Chen", "Dana", "Emil", "Farah", "Goran", "Hana", "Ivo", "Jun", "Kira",
    "Lev", "Mira", "Nils", "Omar", "Pia", "Quinn", "Rosa", "Sami", "Tove", "Uma", "Vik",
    "Wen", "Yara",
]  # fmt: skip


def prompt(name: str) -> str:
    return f"{name} {PASSAGE} The next day, {name}"  # text to continue, not a question to end


@pytest.fixture(scope="module")
def model(model_path: Path) -> Iterator[Model]:
    with Model(model_path, n_ctx=256, n_threads=2, n_parallel=N_SLOTS) as m:
        yield m


def generate_together(model: Model, prompts: list[str], max_tokens: int) -> list[list[int]]:
    results: dict[int, list[int]] = {}
    start = threading.Barrier(len(prompts))

    def work(i: int) -> None:
        start.wait()
        results[i] = model.generate(prompts[i], max_tokens=max_tokens, temperature=0).tokens

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert all(not t.is_alive() for t in threads)
    return [results[i] for i in range(len(prompts))]


def test_concurrent_requests_decode_in_one_graph_per_step(model: Model) -> None:
    assert len(model.tokenize(prompt(NAMES[0]))) > 64  # reusable: longer than a chunk
    # one prompt per slot, one at a time; then every other one again, from its own slot:
    # the slots unused the longest are now every other one
    for name in NAMES[:N_SLOTS]:
        model.generate(prompt(name), max_tokens=1, temperature=0)
    for name in NAMES[1:N_SLOTS:2]:
        model.generate(prompt(name), max_tokens=1, temperature=0)
        assert model.stats.last_prompt_tokens_reused > 0  # it found its own slot
    fresh = NAMES[N_SLOTS:]  # no slot holds any of them: every slot is a tie

    before = model.stats
    together = generate_together(model, [prompt(n) for n in fresh], 12)
    after = model.stats

    # each alone (now from the caches they left: the output is the same either way)
    assert together == [
        model.generate(prompt(n), max_tokens=12, temperature=0).tokens for n in fresh
    ]
    steps = after.n_generation_steps - before.n_generation_steps
    graphs = after.n_generation_graphs - before.n_generation_graphs
    print(f"{steps} generation steps in {graphs} graphs, at most {after.n_sequences_max} seqs")
    assert after.n_sequences_max > 4  # they did run together
    assert all(len(t) == 12 for t in together)  # nobody left a hole by ending early
    assert graphs == steps


def test_a_lone_request_still_reuses_its_cache(model: Model) -> None:
    """Placement only breaks ties: a prompt whose prefix a slot holds still goes there."""
    model.generate(prompt(NAMES[3]), max_tokens=1, temperature=0)
    generate_together(model, [prompt(n) for n in NAMES[8:12]], 2)
    model.generate(prompt(NAMES[3]), max_tokens=1, temperature=0)
    assert model.stats.last_prompt_tokens_reused >= 64
