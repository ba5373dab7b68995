"""The server and the library run the same engine: for the same prompt and sampling, the
server's streamed text, tokens and finish reason equal Model.generate's, alone or beside
other streams, after any cache history; a cancelled request ends the same way in both.

Tokens are compared through ``logprobs``: the server streams each token's text and
log-probability, the library lists the token ids (whose pieces must be those texts) and
the same log-probabilities. fireside's finish reasons map to OpenAI's once
(:data:`fireside.generation.results.OPENAI_FINISH_REASON`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fireside.generation.results import OPENAI_FINISH_REASON, GenerationResult
from fireside.model import Model

from .conftest import LiveServer

PREFIX = "Notes: the lighthouse stands on the northern cape; its lamp burns oil. " * 6
PROMPTS = [f"{PREFIX}\nQ: {q}\nA:" for q in ("Where is it?", "What burns?", "Which cape?")]
UNRELATED = [f"A list of {n} fruits, one per line:\n" for n in range(2, 10)]


def chat_prompt(question: str) -> str:
    return f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


HELLO = chat_prompt("Write the word 'hello' in Chinese characters, then in Japanese.")
"""Greedy: 'Hello in Chinese characters is "晴" (zhǎ) and in Japanese is "おまえ" (お...';
its CJK characters take two or three tokens each."""
EMOJI = "Emoji list: 😀 😃 😄 😁 😆"
"""Greedy: ' 😇 😊...', each emoji's four bytes in two tokens."""


@pytest.fixture(scope="module")
def model(model_path: Path) -> Iterator[Model]:
    with Model(model_path, n_ctx=1024, n_threads=1) as m:
        yield m


@dataclass
class Reply:
    text: str
    finish_reason: str
    tokens: list[str]
    """Each token's text (its piece, invalid UTF-8 replaced)."""
    logprobs: list[float]
    n_tokens: int


def library(model: Model, prompt: str, **options: object) -> Reply:
    result: GenerationResult = model.generate(prompt, logprobs=0, **options)  # type: ignore[call-overload]
    assert result.logprobs is not None
    pieces = [model.core.token_to_piece(t).decode("utf-8", errors="replace") for t in result.tokens]
    assert [lp.text for lp in result.logprobs] == pieces  # the texts stand for these ids
    return Reply(
        result.text,
        OPENAI_FINISH_REASON[result.finish_reason],
        pieces,
        [lp.logprob for lp in result.logprobs],
        result.usage.completion_tokens,
    )


def served(server: LiveServer, prompt: str, **options: object) -> Reply:
    client = server.client()
    reply = Reply("", "", [], [], -1)
    for chunk in client.completions.create(
        model=server.model_id,
        prompt=prompt,
        stream=True,
        logprobs=0,
        stream_options={"include_usage": True},
        **options,  # type: ignore[call-overload]
    ):
        if chunk.usage is not None:
            reply.n_tokens = chunk.usage.completion_tokens
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        reply.text += choice.text
        reply.finish_reason = choice.finish_reason or reply.finish_reason
        if choice.logprobs is not None:
            reply.tokens += choice.logprobs.tokens or []
            reply.logprobs += choice.logprobs.token_logprobs or []
    return reply


def stream_text(server: LiveServer, prompt: str, **options: object) -> tuple[str, str]:
    """Text and finish reason, streamed without logprobs (chunks of text only)."""
    client = server.client()
    text, finish = "", ""
    for chunk in client.completions.create(
        model=server.model_id,
        prompt=prompt,
        stream=True,
        **options,  # type: ignore[call-overload]
    ):
        choice = chunk.choices[0]
        text += choice.text
        finish = choice.finish_reason or finish
    return text, finish


@pytest.mark.parametrize(
    "options",
    [
        {"max_tokens": 10, "temperature": 0},  # max_tokens reached
        {"max_tokens": 40, "temperature": 0.9, "seed": 3},  # sampled with a seed
        {"max_tokens": 40, "temperature": 0, "stop": ["e"]},  # a stop string
    ],
)
def test_server_streams_what_the_library_generates(
    server: LiveServer, model: Model, options: dict[str, object]
) -> None:
    expected = []
    for prompt in PROMPTS:
        result = model.generate(prompt, **options)  # type: ignore[arg-type]
        expected.append((result.text, OPENAI_FINISH_REASON[result.finish_reason]))
    alone = [stream_text(server, p, **options) for p in PROMPTS]
    assert alone == expected
    with ThreadPoolExecutor(len(PROMPTS) * 2) as pool:  # beside neighbours, twice each
        together = list(pool.map(lambda p: stream_text(server, p, **options), PROMPTS * 2))
    assert together == expected * 2


CASES = {
    # the reply ends inside a multi-byte character: its first bytes are dropped in both
    "inside-a-character": (HELLO, {"max_tokens": 29, "temperature": 0}),
    "inside-an-emoji": (EMOJI, {"max_tokens": 3, "temperature": 0}),
    # a stop string that starts inside one token and ends in the next
    "stop-across-tokens": (HELLO, {"max_tokens": 40, "temperature": 0, "stop": ["ters is"]}),
    # a stop string inside a character's bytes: '"晴"' is five tokens
    "stop-across-a-character": (HELLO, {"max_tokens": 40, "temperature": 0, "stop": ['晴"']}),
    "max-tokens": (PROMPTS[0], {"max_tokens": 12, "temperature": 0}),
    "eos": (chat_prompt("What is 2+2? Answer with a number."), {"max_tokens": 60}),
    "eos-seeded": (
        chat_prompt("Reply with the word yes."),
        {"max_tokens": 60, "temperature": 0.9, "seed": 5},
    ),
}
EXPECTED_FINISH = {
    "inside-a-character": "length",
    "inside-an-emoji": "length",
    "stop-across-tokens": "stop",
    "stop-across-a-character": "stop",
    "max-tokens": "length",
    "eos": "stop",
    "eos-seeded": "stop",
}


@pytest.mark.parametrize("case", list(CASES))
def test_server_streams_the_library_tokens_text_and_finish_reason(
    server: LiveServer, model: Model, case: str
) -> None:
    prompt, options = CASES[case]
    options = {"temperature": 0, **options}
    expected = library(model, prompt, **options)
    assert expected.finish_reason == EXPECTED_FINISH[case]
    if case.startswith("inside"):  # the last token began a character that never ended
        assert expected.tokens[-1].endswith("\ufffd")
        assert not expected.text.endswith("\ufffd")
    if case == "eos":
        assert model.generate(prompt, **options).finish_reason == "eos"  # type: ignore[arg-type]
    if case.startswith("stop"):  # the stop really spans tokens
        (stop,) = options["stop"]  # type: ignore[misc]
        full = model.generate(prompt, max_tokens=40, temperature=0)
        pieces = [model.core.token_to_piece(t) for t in full.tokens]
        assert not any(stop.encode() in piece for piece in pieces)
        assert stop in full.text
    assert served(server, prompt, **options) == expected


def test_after_any_cache_history_the_server_gives_the_same_tokens(
    server: LiveServer, model: Model
) -> None:
    options = {"max_tokens": 12, "temperature": 0.9, "seed": 21}
    expected = [library(model, p, **options) for p in PROMPTS]
    engine = server.app.state.service.engine
    for i, prompt in enumerate(PROMPTS):  # after prompts that share the long prefix
        for other in PROMPTS:
            served(server, other, **options)
            assert served(server, prompt, **options) == expected[i]
            assert engine.stats.last_prompt_tokens_reused >= 64  # the prefix was reused
    with ThreadPoolExecutor(len(UNRELATED)) as pool:  # every slot now holds unrelated text
        list(pool.map(lambda p: served(server, p, max_tokens=4), UNRELATED))
    assert [served(server, p, **options) for p in PROMPTS] == expected


def sse_texts(response: httpx.Response) -> Iterator[str]:
    """The text of each streamed completion chunk that has some."""
    for line in response.iter_lines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        choices = json.loads(line[len("data: ") :])["choices"]
        if choices and choices[0]["text"]:
            yield choices[0]["text"]


@pytest.mark.parametrize("n_chunks", [1, 5])
def test_a_cancelled_request_ends_alike(server: LiveServer, model: Model, n_chunks: int) -> None:
    prompt, options = PROMPTS[1], {"max_tokens": 120, "temperature": 0}
    stream = model.generate(prompt, stream=True, **options)  # type: ignore[call-overload]
    chunks = [next(stream) for _ in range(n_chunks)]
    stream.close()
    result = stream.result
    assert result is not None and result.finish_reason == "cancelled"
    assert result.text == "".join(chunks)
    assert len(result.tokens) == result.usage.completion_tokens
    assert model.detokenize(result.tokens) == result.text
    full = model.generate(prompt, **options)  # type: ignore[call-overload]
    assert full.tokens[: len(result.tokens)] == result.tokens

    before = server.wait_idle()
    body = {"model": server.model_id, "prompt": prompt, "stream": True, **options}
    received = []
    with (
        httpx.Client(timeout=120) as client,
        client.stream("POST", server.url + "/v1/completions", json=body) as response,
    ):
        assert response.status_code == 200
        for text in sse_texts(response):
            received.append(text)
            if len(received) == n_chunks:
                break  # the client goes away: the server cancels the request
    after = server.wait_idle()
    assert received == chunks
    key = 'fireside_generations_total{reason="cancelled"}'
    assert after.get(key, 0) == before.get(key, 0) + 1
