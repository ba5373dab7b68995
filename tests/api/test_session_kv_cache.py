"""A chat session saved with its KV cache resumes in a new process without evaluating the
conversation again: the native counters show only the new tokens (exactly what an
uninterrupted session evaluates), and the reply is the uninterrupted session's. A damaged
or foreign cache file is ignored with a warning, and the reply is still the same.

Speculation is off here so the native decode counters hold nothing but prompt and reply.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fireside.chat.session import ChatSession
from fireside.chat.session_cache import kv_path
from fireside.model import Model

N_CTX = 2048
SETTINGS = {"n_ctx": N_CTX, "n_threads": 1, "speculative": False}
TOPICS = ["rivers", "bridges", "mills", "lamps", "roads", "bells", "boats", "gardens"]
NEXT = "Name one thing we talked about."


def long_history() -> list[dict[str, str]]:
    messages = [{"role": "system", "content": "You are a patient guide to an old town."}]
    for topic in TOPICS:
        messages.append({"role": "user", "content": f"Tell me about the town's {topic}."})
        messages.append(
            {
                "role": "assistant",
                "content": f"The town's {topic} are old and well kept. "
                + f"People say the {topic} were built long ago, and visitors like them. " * 9,
            }
        )
    return messages


RESUME = """
import json, sys
from fireside.chat.session import ChatSession
from fireside.model import Model
settings = json.loads(sys.argv[3])
with Model(sys.argv[1], **settings) as model:
    session = ChatSession.load(sys.argv[2], model)
    engine = model._generation_engine()
    before = engine.ctx.perf().n_tokens_decoded
    realigned = model.stats.n_realigned_tokens
    reply = session.send(sys.argv[4], max_tokens=16, temperature=0)
    model.wait_idle(120)  # the reply is evaluated again as prompt chunks once idle
    realigned = model.stats.n_realigned_tokens - realigned
    print(json.dumps({
        "text": reply.text,
        "tokens": reply.tokens,
        "decoded": engine.ctx.perf().n_tokens_decoded - before - realigned,
        "evaluated": model.stats.last_prompt_tokens_evaluated,
        "prompt": reply.usage.prompt_tokens,
    }))
"""


def resume_in_new_process(model_path: Path, saved: Path) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", RESUME, str(model_path), str(saved), json.dumps(SETTINGS), NEXT],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_resumed_session_evaluates_only_the_new_message(model_path: Path, tmp_path: Path) -> None:
    saved = tmp_path / "chat.json"
    with Model(model_path, **SETTINGS) as model:  # type: ignore[arg-type]
        session = model.chat_session()
        session.history = long_history()
        reply = session.send("And the squares?", max_tokens=8, temperature=0)
        n_conversation = model.stats.last_prompt_tokens
        assert n_conversation > 1000
        session.save(saved)  # right after the reply: it is evaluated again first
        record = json.loads(saved.read_text(encoding="utf-8"))["kv"]
        # whole prompt chunks: the conversation through the reply and its end-of-turn token
        kept = model._generation_engine().cached_tokens()
        assert record["n_tokens"] == len(kept) == n_conversation + len(reply.tokens) + 1
        assert model._generation_engine().chunking.boundaries(kept)[-1] == len(kept)
        assert kv_path(saved).stat().st_size == record["size"]
        # the uninterrupted session's next turn
        expected = session.send(NEXT, max_tokens=16, temperature=0)
        evaluated = model.stats.last_prompt_tokens_evaluated
    resumed = resume_in_new_process(model_path, saved)
    assert resumed["text"] == expected.text and resumed["tokens"] == expected.tokens
    assert resumed["prompt"] == expected.usage.prompt_tokens
    assert resumed["evaluated"] == evaluated  # what the uninterrupted session evaluated
    assert evaluated < resumed["prompt"] - 1000  # the conversation was not evaluated again
    # native counters: the new prompt tokens, and each reply token that had a successor
    # (after an end-of-turn token: all of them; after max_tokens: all but the last)
    last_undecoded = 1 if expected.finish_reason == "length" else 0
    assert resumed["decoded"] == evaluated + len(expected.tokens) - last_undecoded


def damage(saved: Path) -> None:
    kv = kv_path(saved)
    kv.write_bytes(kv.read_bytes()[: kv.stat().st_size // 2])


def foreign(saved: Path) -> None:
    data = json.loads(saved.read_text(encoding="utf-8"))
    data["kv"]["model_fingerprint"] = "0" * 64
    saved.write_text(json.dumps(data), encoding="utf-8")


def flip(saved: Path) -> None:  # same size, other bytes
    kv = kv_path(saved)
    data = bytearray(kv.read_bytes())
    data[len(data) // 2] ^= 0xFF
    kv.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def short_save(
    model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[int]]:
    """A short conversation saved with its cache, and the reply its next turn gets."""
    saved = tmp_path_factory.mktemp("short") / "chat.json"
    with Model(model_path, **SETTINGS) as model:  # type: ignore[arg-type]
        session = model.chat_session()
        session.history = long_history()[:5]
        session.send("And the squares?", max_tokens=4, temperature=0)
        session.save(saved)
        return saved, session.send(NEXT, max_tokens=8, temperature=0).tokens


@pytest.mark.parametrize(
    ("spoil", "why"),
    [
        (damage, r"bytes, \d+ were saved"),
        (foreign, "another model file"),
        (flip, "does not match its SHA-256"),
        (lambda saved: kv_path(saved).unlink(), "is missing"),
    ],
    ids=["truncated", "foreign", "changed", "missing"],
)
def test_a_bad_cache_file_is_ignored_with_a_warning(
    model_path: Path,
    tmp_path: Path,
    short_save: tuple[Path, list[int]],
    spoil: object,
    why: str,
) -> None:
    original, expected = short_save
    saved = tmp_path / original.name
    shutil.copy(original, saved)
    shutil.copy(kv_path(original), kv_path(saved))
    spoil(saved)  # type: ignore[operator]
    with Model(model_path, **SETTINGS) as model:  # type: ignore[arg-type]
        with pytest.warns(UserWarning, match=why):
            restored = ChatSession.load(saved, model)
        assert len(restored.history) == 7
        reply = restored.send(NEXT, max_tokens=8, temperature=0)
        assert reply.tokens == expected
        assert model.stats.last_prompt_tokens_reused == 0  # evaluated afresh


def test_the_valid_copy_restores(
    model_path: Path, tmp_path: Path, short_save: tuple[Path, list[int]]
) -> None:
    original, expected = short_save
    with Model(model_path, **SETTINGS) as model:  # type: ignore[arg-type]
        restored = ChatSession.load(original, model)
        reply = restored.send(NEXT, max_tokens=8, temperature=0)
        assert reply.tokens == expected
        assert model.stats.last_prompt_tokens_reused >= 256
        plain = tmp_path / "plain.json"
        restored.save(plain, kv_cache=False)
        assert "kv" not in json.loads(plain.read_text(encoding="utf-8"))
        assert not kv_path(plain).exists()
        assert not list(tmp_path.glob("*.part"))
