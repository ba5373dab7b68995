"""``fireside serve --prompt-cache DIR``: a restarted server answers a returning
conversation after evaluating only what is new (the engine's counters in ``/metrics``),
the previous reply included (a chat turn stores its prompt's prefix, then the conversation
through the reply once that is realigned), with the reply a server without the cache gives;
a damaged, stale or foreign cache file is
ignored with a warning and removed, and the reply is still the same; the size bound
evicts the least recently used file.

Speculation is off so the decode counters hold nothing but prompts and replies.
"""

from __future__ import annotations

import json
import logging
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fireside.generation.prompt_cache import MAGIC, SUFFIX
from fireside.server import create_app

from .conftest import ChatPrompts, LiveServer, parse_metrics, serve

CTX = 2048
SETTINGS: dict[str, Any] = {"parallel": 1, "ctx_size": CTX, "n_threads": 1, "speculative": False}
TOPICS = ["rivers", "bridges", "mills", "lamps", "roads", "bells", "boats"]
NEXT = "Name one thing we talked about."


def conversation(n_topics: int = len(TOPICS), guide: str = "an old town") -> list[dict[str, str]]:
    messages = [{"role": "system", "content": f"You are a patient guide to {guide}."}]
    for topic in TOPICS[:n_topics]:
        messages.append({"role": "user", "content": f"Tell me about the town's {topic}."})
        messages.append(
            {
                "role": "assistant",
                "content": f"The town's {topic} are old and well kept. "
                + f"People say the {topic} were built long ago, and visitors like them. " * 8,
            }
        )
    messages.append({"role": "user", "content": "And the squares?"})
    return messages


def ask(url: str, messages: list[dict[str, str]], max_tokens: int) -> dict[str, Any]:
    model = httpx.get(url + "/v1/models", timeout=30).json()["data"][0]["id"]
    body = {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0}
    response = httpx.post(url + "/v1/chat/completions", json=body, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def complete(url: str, prompt: list[int], max_tokens: int) -> dict[str, Any]:
    """A completion of ``prompt`` (token ids): a request that stores one prefix, as it
    has no reply to realign."""
    model = httpx.get(url + "/v1/models", timeout=30).json()["data"][0]["id"]
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
    response = httpx.post(url + "/v1/completions", json=body, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def metrics(url: str) -> dict[str, float]:
    return parse_metrics(httpx.get(url + "/metrics", timeout=30).text)


def wait_saves(url: str, n: int, timeout: float = 120.0) -> None:
    """Wait until the server has written ``n`` prefixes (a chat reply's conversation is
    written once it is realigned, while the server is idle)."""
    deadline = time.monotonic() + timeout
    while (done := metrics(url)["fireside_prompt_cache_saves_total"]) < n:
        if time.monotonic() > deadline:
            pytest.fail(f"the server wrote {done:.0f} prefixes in {timeout} s, not {n}")
        time.sleep(0.05)


def evaluated(values: dict[str, float]) -> float:
    return values["fireside_prompt_tokens_total"] - values["fireside_prompt_tokens_cached_total"]


def through_reply(answer: dict[str, Any]) -> int:
    """How long a chat turn's conversation is through its reply and the end-of-turn token
    the template writes after it."""
    return int(answer["usage"]["prompt_tokens"] + answer["usage"]["completion_tokens"] + 1)


def cache_files(directory: Path) -> set[Path]:
    return set(directory.glob("*" + SUFFIX))


class CliServer:
    """``fireside serve`` in a process of its own, stopped with Ctrl-C."""

    def __init__(self, model_path: Path, cache: Path) -> None:
        args = [str(model_path), "--port", "0", "--parallel", "1", "--ctx-size", str(CTX),
                "--threads", "1", "--no-speculative", "--prompt-cache", str(cache)]  # fmt: skip
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fireside.cli", "serve", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        stderr = self.process.stderr
        assert stderr is not None
        ready, _, _ = select.select([stderr], [], [], 120)
        line = stderr.readline() if ready else ""
        match = re.search(r"serving \S+ at (http://127\.0\.0\.1:\d+)", line)
        if not match:
            self.process.kill()
            pytest.fail(f"fireside serve did not start: {line!r}")
        self.url = match[1]

    def stop(self) -> str:
        """Ctrl-C; the rest of its stderr."""
        self.process.send_signal(2)
        _, rest = self.process.communicate(timeout=60)
        assert self.process.returncode == 0, rest
        return rest


def test_a_restarted_server_evaluates_only_the_new_message(
    model_path: Path, tmp_path: Path, chat_prompts: ChatPrompts
) -> None:
    cache = tmp_path / "cache"
    history = conversation()
    server = CliServer(model_path, cache)  # the uninterrupted server answers both turns
    try:
        first = ask(server.url, history, 8)
        wait_saves(server.url, 2)  # the prompt's prefix, then the realigned conversation
        answer = first["choices"][0]["message"]["content"]
        turn = [*history, {"role": "assistant", "content": answer}, {"role": "user", "content": NEXT}]  # fmt: skip
        before = metrics(server.url)
        expected = ask(server.url, turn, 16)
        uninterrupted = evaluated(metrics(server.url)) - evaluated(before)
        wait_saves(server.url, 4)
    finally:
        server.stop()
    n_conversation = first["usage"]["prompt_tokens"]
    assert n_conversation > 1000
    headers = {}
    for path in cache_files(cache):
        headers[path] = json.loads(path.read_bytes()[len(MAGIC) :].split(b"\n", 1)[0])
    # each prompt's reusable prefix (to its last chunk boundary short of its last token),
    # then each conversation through its reply and the end-of-turn token after it (where a
    # chunk ends), which begins the next turn's prompt
    lengths = sorted(h["n_tokens"] for h in headers.values())
    realigned = through_reply(first)
    assert lengths == [
        chat_prompts.reusable(history),
        realigned,
        chat_prompts.reusable(turn),
        through_reply(expected),
    ]
    assert realigned in chat_prompts.boundaries(turn)
    # keep the first conversation's files only, as a server stopped after the first turn
    # would have left
    for path, header in headers.items():
        if header["n_tokens"] > realigned:
            path.unlink()

    server = CliServer(model_path, cache)  # restarted
    try:
        reply = ask(server.url, turn, 16)
        values = metrics(server.url)
    finally:
        server.stop()
    assert reply["choices"][0]["message"] == expected["choices"][0]["message"]
    assert reply["usage"] == expected["usage"]
    assert values["fireside_prompt_cache_hits_total"] == 1
    assert values["fireside_prompt_cache_tokens_restored_total"] == realigned
    # only what the uninterrupted server evaluated: the new message
    n_prompt = reply["usage"]["prompt_tokens"]
    assert evaluated(values) == uninterrupted == n_prompt - realigned
    # the engine decoded those prompt tokens, then each reply token that had a successor
    n_reply = reply["usage"]["completion_tokens"]
    last = 1 if reply["choices"][0]["finish_reason"] == "length" else 0
    assert values["fireside_decode_tokens_total"] == uninterrupted + n_reply - last


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip(path: Path) -> None:  # same size, one byte of the cells changed
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))


def stale(path: Path) -> None:  # written by another fireside version
    data = path.read_bytes()
    line, payload = data[len(MAGIC) :].split(b"\n", 1)
    header = json.loads(line)
    header["fireside"] = "0.0.1"
    path.write_bytes(MAGIC + json.dumps(header).encode() + b"\n" + payload)


def foreign(path: Path) -> None:
    path.write_bytes(b"GGUF" + bytes(4096))


SPOILS = [
    (truncate, r"bytes of cells, \d+ were saved"),
    (flip, "do not match their SHA-256"),
    (stale, "another fireside"),
    (foreign, "not a fireside prompt cache file"),
]


@pytest.fixture(scope="module")
def cached_server(
    model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, Path]]:
    cache = tmp_path_factory.mktemp("prompt-cache")
    with serve(create_app(model_path, prompt_cache=cache, **SETTINGS)) as live:
        yield live, cache


def settle(live: LiveServer) -> None:
    """Wait until the reply is over, realigned if it was a chat's, and its prefixes
    written."""
    live.wait_idle()
    assert live.app.state.service.engine.wait_realigned(60)
    assert live.app.state.models.prompt_cache.flush(60)


@pytest.mark.parametrize(("spoil", "why"), SPOILS, ids=[s.__name__ for s, _ in SPOILS])
def test_a_bad_cache_file_is_ignored_with_a_warning(
    cached_server: tuple[LiveServer, Path],
    caplog: pytest.LogCaptureFixture,
    chat_prompts: ChatPrompts,
    spoil: Any,
    why: str,
) -> None:
    live, cache = cached_server
    prompt = chat_prompts.tokens(conversation(2))
    expected = complete(live.url, prompt, 8)  # from the cache after the first run
    settle(live)
    (saved,) = cache_files(cache)
    spoil(saved)
    live.app.state.service.engine.reset()  # nothing cached in memory: the disk is asked
    before = metrics(live.url)
    with caplog.at_level(logging.WARNING, logger="fireside.generation"):
        reply = complete(live.url, prompt, 8)
    settle(live)
    assert reply["choices"][0]["text"] == expected["choices"][0]["text"]
    warned = [r.getMessage() for r in caplog.records if "prompt cache file" in r.getMessage()]
    assert len(warned) == 1 and re.search(why, warned[0]), warned
    after = metrics(live.url)
    assert after["fireside_prompt_cache_rejected_total"] == (
        before["fireside_prompt_cache_rejected_total"] + 1
    )
    assert after["fireside_prompt_cache_hits_total"] == before["fireside_prompt_cache_hits_total"]
    assert evaluated(after) - evaluated(before) == reply["usage"]["prompt_tokens"]
    (resaved,) = cache_files(cache)  # the bad file is gone, a good one written instead
    assert resaved.read_bytes().startswith(MAGIC)
    # and the good one restores
    live.app.state.service.engine.reset()
    assert complete(live.url, prompt, 8)["choices"][0]["text"] == expected["choices"][0]["text"]
    assert metrics(live.url)["fireside_prompt_cache_hits_total"] == (
        after["fireside_prompt_cache_hits_total"] + 1
    )


def test_the_size_bound_evicts_the_least_recently_used(
    model_path: Path, tmp_path: Path, chat_prompts: ChatPrompts
) -> None:
    cache = tmp_path / "cache"
    # each prompt stores 256..320 tokens: about 6-7.5 MB of cells; two fit, three do not
    budget = 16 << 20
    app = create_app(model_path, prompt_cache=cache, prompt_cache_size=budget, **SETTINGS)
    guides = ["an old town", "a quiet harbour", "a mountain village"]
    prompts = [chat_prompts.tokens(conversation(2, guide)) for guide in guides]
    with serve(app) as live:
        files = []
        for prompt in prompts[:2]:
            complete(live.url, prompt, 4)
            settle(live)
            (new,) = cache_files(cache) - set(files)
            files.append(new)
        assert sum(f.stat().st_size for f in files) <= budget
        complete(live.url, prompts[0], 4)  # a hit: the first file is now the most recently used
        settle(live)
        complete(live.url, prompts[2], 4)
        settle(live)
        values = live.metrics()
    assert values["fireside_prompt_cache_hits_total"] == 1
    assert values["fireside_prompt_cache_evictions_total"] == 1
    left = cache_files(cache)
    assert files[0] in left and files[1] not in left and len(left) == 2
    assert values["fireside_prompt_cache_bytes"] == sum(f.stat().st_size for f in left) <= budget


def test_bad_prompt_cache_flags_fail_before_loading(model_path: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    for flags, message in (
        (["--prompt-cache", str(blocker / "cache")], "--prompt-cache: the prompt cache directory"),
        (["--prompt-cache", str(tmp_path), "--prompt-cache-size", "lots"], "--prompt-cache-size"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "fireside.cli", "serve", str(model_path), "--port", "0", *flags],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 1, done.stderr
        assert message in done.stderr and "Traceback" not in done.stderr
        assert "serving" not in done.stderr


def test_a_shared_system_prompt_is_restored_from_a_longer_prefix(
    model_path: Path, tmp_path: Path, chat_prompts: ChatPrompts
) -> None:
    system = {"role": "system", "content": "You guide visitors. " + "Be kind and brief. " * 60}
    first = [system, {"role": "user", "content": "Tell me about the bridges."}]
    other = [system, {"role": "user", "content": "What do the bells sound like?"}]
    with serve(create_app(model_path, **SETTINGS)) as live:
        expected = ask(live.url, other, 8)
    cache = tmp_path / "cache"
    with serve(create_app(model_path, prompt_cache=cache, **SETTINGS)) as live:
        stored = ask(live.url, first, 4)
        settle(live)
        # the prompt's prefix, and the conversation through the reply once realigned
        saved, realigned = sorted(cache_files(cache), key=lambda f: f.stat().st_size)
        live.app.state.service.engine.reset()  # as after a restart
        reply = ask(live.url, other, 8)
        values = live.metrics()
    assert reply["choices"][0]["message"] == expected["choices"][0]["message"]
    # the file held the first prompt's prefix; the part the other prompt shares was used
    restored = values["fireside_prompt_cache_tokens_restored_total"]
    assert values["fireside_prompt_cache_hits_total"] == 1
    header = json.loads(saved.read_bytes()[len(MAGIC) :].split(b"\n", 1)[0])
    assert header["n_tokens"] == chat_prompts.reusable(first)
    longer = json.loads(realigned.read_bytes()[len(MAGIC) :].split(b"\n", 1)[0])
    assert longer["n_tokens"] == through_reply(stored)
    assert 256 <= restored < header["n_tokens"]  # its start only: the rest was cut
    assert restored in chat_prompts.boundaries(other) and evaluated(values) == (
        stored["usage"]["prompt_tokens"] + reply["usage"]["prompt_tokens"] - restored
    )
    assert saved in cache_files(cache)
