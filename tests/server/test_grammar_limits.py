"""One request's grammar cannot stall the others: schemas over a limit are refused with a
400 naming it, a grammar over its run-time budget ends its own request with an error while
other streams go on and /health answers, and bad sampling values are clear 400s with no
traceback in the server's log."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fireside.server import create_app

from .conftest import LiveServer, chat_body, serve

AMBIGUOUS: dict[str, Any] = {  # s = anyOf[[s, 1], [s, 2], 0]
    "anyOf": [
        {"type": "array", "prefixItems": [{"$ref": "#"}, {"const": 1}], "items": False},
        {"type": "array", "prefixItems": [{"$ref": "#"}, {"const": 2}], "items": False},
        {"const": 0},
    ]
}


class Records(logging.Handler):
    """Every record the server's loggers emit while installed."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def tracebacks(self) -> list[str]:
        return [self.format(r) for r in self.records if r.exc_info or "Traceback" in r.getMessage()]


@pytest.fixture(scope="module")
def live(model_path: Path) -> Iterator[LiveServer]:
    app = create_app(model_path, parallel=2, ctx_size=256, n_threads=1, max_queue=4)
    with serve(app) as server:
        yield server


@pytest.fixture
def log_records() -> Iterator[Records]:
    handler = Records()
    loggers = [logging.getLogger(name) for name in ("", "uvicorn", "uvicorn.error", "fireside")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


def token_id(live: LiveServer, text: str) -> int:
    tokens = live.app.state.service.core.tokenize(text, add_special=False)
    assert len(tokens) == 1
    return tokens[0]


def schema_format(schema: Any) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}


def post(live: LiveServer, body: dict[str, Any], path: str = "/v1/chat/completions") -> Any:
    return httpx.post(live.url + path, json=body, timeout=120)


def test_a_50000_value_enum_is_a_400_naming_the_limit(
    live: LiveServer, log_records: Records
) -> None:
    schema = {"type": "string", "enum": [f"value-{i}" for i in range(50_000)]}
    body = chat_body(live, "Pick one", max_tokens=4, response_format=schema_format(schema))
    response = post(live, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "response_format"
    assert "max_enum_values" in error["message"] and "1024" in error["message"]
    assert live.app.state.service.engine.active_slots == 0
    assert log_records.tracebacks() == []


def test_an_ambiguous_grammar_ends_alone_while_others_stream(live: LiveServer) -> None:
    """The ambiguous schema with a bias forcing "[" tracked 2**n parse states (token 14
    took 30 s, and nothing else ran meanwhile). Now it ends with an error after a few
    tokens, its slot freed, while another stream goes on and /health answers."""
    eos = live.app.state.service.core.eos
    good_body = {
        "model": live.model_id,
        "prompt": "1, 2, 3, 4, 5,",
        "max_tokens": 150,
        "temperature": 0,
        "logit_bias": {str(eos): -100},
        "stream": True,
    }
    bad_body = chat_body(
        live,
        "Nest some arrays.",
        max_tokens=20,
        temperature=0,
        stream=True,
        logit_bias={str(token_id(live, "[")): 100},
        response_format=schema_format(AMBIGUOUS),
    )

    async def scenario() -> dict[str, Any]:
        found: dict[str, Any] = {"good_chunks": 0, "bad_chunks": 0}
        good_started = asyncio.Event()
        async with httpx.AsyncClient(base_url=live.url, timeout=120) as client:

            async def good() -> None:
                async with client.stream("POST", "/v1/completions", json=good_body) as r:
                    assert r.status_code == 200
                    async for line in r.aiter_lines():
                        if not line.startswith("data: {"):
                            continue
                        choice = json.loads(line[6:])["choices"][0]
                        if choice["text"]:
                            found["good_chunks"] += 1
                            good_started.set()
                        found["good_finish"] = choice["finish_reason"] or found.get("good_finish")

            async def bad() -> None:
                await good_started.wait()
                async with client.stream("POST", "/v1/chat/completions", json=bad_body) as r:
                    assert r.status_code == 200
                    async for line in r.aiter_lines():
                        if not line.startswith("data: {"):
                            continue
                        event = json.loads(line[6:])
                        if "error" in event:
                            found["bad_error"] = event["error"]
                            found["good_chunks_at_error"] = found["good_chunks"]
                            continue
                        if event["choices"][0]["delta"].get("content"):
                            found["bad_chunks"] += 1
                            if "health" not in found:  # asked while the bad one runs
                                health = await client.get("/health", timeout=30)
                                found["health"] = health.status_code

            await asyncio.gather(good(), bad())
        return found

    found = asyncio.run(scenario())
    assert "max_states" in found["bad_error"]["message"], found
    assert found["bad_chunks"] < 20
    assert found["health"] == 200
    assert found["good_chunks_at_error"] < found["good_chunks"]  # still streaming then
    assert found["good_finish"] == "length"
    live.wait_idle()


def test_the_budget_error_without_streaming_is_a_400(
    live: LiveServer, log_records: Records
) -> None:
    body = chat_body(
        live,
        "Nest some arrays.",
        max_tokens=20,
        temperature=0,
        logit_bias={str(token_id(live, "[")): 100},
        response_format=schema_format(AMBIGUOUS),
    )
    response = post(live, body)
    assert response.status_code == 400, response.text
    assert "max_states" in response.json()["error"]["message"]
    live.wait_idle()
    assert log_records.tracebacks() == []


@pytest.mark.parametrize(
    ("change", "param", "words"),
    [
        ({"top_k": 2**64}, "top_k", "2147483647"),
        ({"logit_bias": {"²": 1}}, "logit_bias", "token ids"),
        ({"logit_bias": {"9" * 5000: 1}}, "logit_bias", "token ids"),
        ({"logit_bias": {str(i): 1 for i in range(1025)}}, "logit_bias", "at most 1024"),
        ({"logit_bias": {"99999": 1}}, None, "out of range"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_bad_sampling_values_are_clear_400s_without_tracebacks(
    live: LiveServer,
    log_records: Records,
    change: dict[str, Any],
    param: str | None,
    words: str,
    path: str,
) -> None:
    if path == "/v1/completions":
        body: dict[str, Any] = {"model": live.model_id, "prompt": "Hi", "max_tokens": 2}
    else:
        body = chat_body(live, "Hi", max_tokens=2)
    body.update(change)
    response = post(live, body, path)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert words in error["message"]
    if param is not None:
        assert error["param"] == param
        assert param in error["message"]
    for internal in ("incompatible function arguments", "invalid literal", "Traceback"):
        assert internal not in error["message"]
    assert log_records.tracebacks() == []
