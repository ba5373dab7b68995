"""Speculative decoding in the server: with 8 streams at once, each verifying its drafts
in the steps it shares with the others, every completion is token for token what the
library gives without speculation, and ``/metrics`` counts the drafted and accepted tokens.

The server's engine drafts with its verification cost pinned low (as
``speculative="always"`` does): on the test machine's CPU the measured cost would seldom
let it draft (see fireside.generation.speculative).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fireside.generation.results import OPENAI_FINISH_REASON
from fireside.model import Model
from fireside.server import ServerConfig, create_app

from ..speculative_corpus import KINDS
from .conftest import PARALLEL, SLOT_CTX, LiveServer, serve

N_TOKENS = 24


@pytest.fixture(scope="module")
def plain(model_path: Path) -> Iterator[Model]:
    with Model(model_path, n_ctx=256, n_threads=1, speculative=False) as m:
        yield m


def completion(server: LiveServer, prompt: str) -> tuple[str, str]:
    reply = server.client().completions.create(
        model=server.model_id, prompt=prompt, max_tokens=N_TOKENS, temperature=0
    )
    choice = reply.choices[0]
    return choice.text, choice.finish_reason


def test_eight_streams_give_the_plain_greedy_output(server: LiveServer, plain: Model) -> None:
    prompts = [p for kind in KINDS.values() for p in kind]
    assert len(prompts) == 60
    expected = []
    for prompt in prompts:
        result = plain.generate(prompt, max_tokens=N_TOKENS, temperature=0)
        expected.append((result.text, OPENAI_FINISH_REASON[result.finish_reason]))
    engine = server.app.state.service.engine
    engine.verify_cost.pin(0.1)
    try:
        before = server.wait_idle()
        with ThreadPoolExecutor(PARALLEL) as pool:
            served = list(pool.map(lambda p: completion(server, p), prompts))
        after = server.wait_idle()
    finally:
        engine.verify_cost.pin(None)
    for prompt, got, want in zip(prompts, served, expected, strict=True):
        assert got == want, prompt
    drafted = after["fireside_draft_tokens_total"] - before["fireside_draft_tokens_total"]
    accepted = (
        after["fireside_draft_tokens_accepted_total"]
        - before["fireside_draft_tokens_accepted_total"]
    )
    assert accepted > 50  # the quoting prompts' drafts were kept
    assert drafted >= accepted
    assert engine.stats.n_sequences_max > 1  # the streams really shared steps


def test_speculation_can_be_turned_off(model_path: Path) -> None:
    app = create_app(model_path, parallel=2, ctx_size=SLOT_CTX, n_threads=1, speculative=False)
    with serve(app) as live:
        engine = live.app.state.service.engine
        assert engine.speculative is False
        engine.verify_cost.pin(0.0)  # would draft all it can, were it on
        text, _ = completion(live, KINDS["quoting"][0])
        assert text
        values = live.wait_idle()
        assert values["fireside_draft_tokens_total"] == 0
        assert engine.stats.exact_batch == 0  # never even probed
    with pytest.raises(TypeError, match="speculative must be True or False"):
        ServerConfig(speculative="yes")  # type: ignore[arg-type]
