"""The server and the library run the same engine: for the same prompt and sampling, the
server's streamed text and finish reason equal Model.generate's, alone or beside other
streams, after any cache history."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fireside.model import Model

from .conftest import LiveServer

PREFIX = "Notes: the lighthouse stands on the northern cape; its lamp burns oil. " * 6
PROMPTS = [f"{PREFIX}\nQ: {q}\nA:" for q in ("Where is it?", "What burns?", "Which cape?")]


@pytest.fixture(scope="module")
def model(model_path: Path) -> Iterator[Model]:
    with Model(model_path, n_ctx=1024, n_threads=1) as m:
        yield m


def stream_text(server: LiveServer, prompt: str, **options: object) -> tuple[str, str]:
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
        expected.append(
            (result.text, {"eos": "stop"}.get(result.finish_reason, result.finish_reason))
        )
    alone = [stream_text(server, p, **options) for p in PROMPTS]
    assert alone == expected
    with ThreadPoolExecutor(len(PROMPTS) * 2) as pool:  # beside neighbours, twice each
        together = list(pool.map(lambda p: stream_text(server, p, **options), PROMPTS * 2))
    assert together == expected * 2
