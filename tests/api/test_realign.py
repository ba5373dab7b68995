"""A chat's previous reply is evaluated again as whole prompt chunks while the model is
idle, so the next turn reuses it instead of evaluating it as part of its prompt; the
output stays what it would be without (the engine's "Determinism"), and a request that
arrives meanwhile is not held up by it."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from fireside.model import Model

TURNS = [
    "Tell me about lighthouses in two or three sentences.",
    "And what did their keepers do all day?",
    "Which one is the oldest still working?",
]
REPLY = 96  # tokens per reply: more than one chunk of 64


@pytest.fixture(scope="module")
def model(model_path: Path):
    m = Model(model_path, n_ctx=2048, n_threads=1)
    yield m
    m.close()


def converse(model: Model, *, idle_between: bool) -> list[tuple[str, int, int, int]]:
    """Each turn's reply, its prompt and reply tokens, and the prompt tokens reused (a
    fresh session)."""
    engine = model._generation_engine()
    model.reset()
    session = model.chat_session()
    out = []
    for question in TURNS:
        reply = session.send(question, max_tokens=REPLY, temperature=0.0)
        usage = reply.usage
        reused = model.stats.last_prompt_tokens_reused
        out.append((reply.text, usage.prompt_tokens, usage.completion_tokens, reused))
        if idle_between:
            assert engine.wait_realigned(120), "the reply was not realigned"
    return out


def test_the_next_turn_reuses_the_whole_conversation(model: Model, model_path: Path) -> None:
    engine = model._generation_engine()
    before = engine.stats.n_realigned_tokens
    idle = converse(model, idle_between=True)
    assert engine.stats.n_realigned_tokens - before > 0
    for (_, n_prompt, n_reply, _), (_, _, _, reused) in itertools.pairwise(idle):
        # the previous prompt, its reply and the end of turn the template writes after
        # it: only the new message is evaluated
        assert reused == n_prompt + n_reply + 1
    # the same conversation without idle time between the turns (the realigning is
    # interrupted, or never starts) gives the same replies
    busy = converse(model, idle_between=False)
    assert [turn[0] for turn in busy] == [turn[0] for turn in idle]
    # and so does a fresh model that never realigned anything
    fresh = Model(model_path, n_ctx=2048, n_threads=1)
    try:
        session = fresh.chat_session()
        texts = [session.send(q, max_tokens=REPLY, temperature=0.0).text for q in TURNS]
    finally:
        fresh.close()
    assert texts == [turn[0] for turn in idle]


def test_a_plain_generate_is_not_realigned(model: Model) -> None:
    engine = model._generation_engine()
    model.reset()
    before = engine.stats.n_realigned_tokens
    model.generate("The history of the lighthouse", max_tokens=REPLY, temperature=0.0)
    assert not engine.realign_pending
    assert engine.stats.n_realigned_tokens == before


def test_a_request_that_arrives_meanwhile_runs(model: Model) -> None:
    engine = model._generation_engine()
    model.reset()
    session = model.chat_session()
    session.send(TURNS[0], max_tokens=4 * 64, temperature=0.0)  # a few chunks to realign
    # straight away, from another thread: it must not wait for the realigning to end
    got: list[str] = []
    worker = threading.Thread(
        target=lambda: got.append(
            model.generate("Paris is the capital of", max_tokens=6, temperature=0.0).text
        )
    )
    worker.start()
    worker.join(120)
    assert not worker.is_alive() and got
    model.reset()
    assert got[0] == model.generate("Paris is the capital of", max_tokens=6, temperature=0.0).text
    # a reset while realigning drops it; nothing is left pending
    session.send(TURNS[1], max_tokens=64, temperature=0.0)
    model.reset()
    assert engine.wait_realigned(60)
    assert engine.cached_tokens() == []


def test_another_models_requests_come_first(model: Model, model_path: Path) -> None:
    # both models compute on the process's one compute thread: a realigning chunk of one
    # would hold up the other's steps, so it waits while any model has requests
    engine = model._generation_engine()
    other = Model(model_path, n_ctx=2048, n_threads=1)
    never_ends = {t: float("-inf") for t in other.core.eog_tokens}
    try:
        model.reset()
        model.chat_session().send(TURNS[0], max_tokens=REPLY, temperature=0.0)
        stream = other.generate(
            "Paris is the capital of", max_tokens=2000, logit_bias=never_ends, stream=True
        )
        next(iter(stream))  # the other model's request runs (for seconds)
        assert engine.realign_pending
        assert not engine.wait_realigned(1.5)  # not while the other request runs
        assert stream.result is None and other._generation_engine().busy
        stream.close()
        assert engine.wait_realigned(120)
    finally:
        other.close()


EXIT_WHILE_REALIGNING = """
import sys
from fireside.model import Model
model = Model(sys.argv[1], n_ctx=2048, n_threads=1)
session = model.chat_session()
session.send("Tell me a long story about a lighthouse.", max_tokens=300, temperature=0.0)
print("pending", model._generation_engine().realign_pending, flush=True)
"""  # and exit without closing the model


def test_a_process_that_exits_while_realigning_exits_cleanly(model_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", EXIT_WHILE_REALIGNING, str(model_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "pending" in done.stdout
    assert "Traceback" not in done.stderr and "terminate" not in done.stderr
