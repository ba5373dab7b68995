"""response_format through llama.cpp's own JSON Schema converter, over real HTTP.

Each schema uses what llama-server's converter supports (``pattern``, ``format: date``,
``minItems``, nested ``$ref``); every reply, at several seeds, validates with
``jsonschema`` (formats checked). A keyword the converter would drop is a 400 naming it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from fireside.server import create_app

from .conftest import LiveServer, chat_body, serve

SCHEMAS: dict[str, dict[str, Any]] = {
    "pattern": {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2}$"}},
        "required": ["code"],
        "additionalProperties": False,
    },
    "date": {
        "type": "object",
        "properties": {"born": {"type": "string", "format": "date"}},
        "required": ["born"],
    },
    "minItems": {
        "type": "array",
        "items": {"type": "integer", "minimum": 0, "maximum": 9},
        "minItems": 3,
        "maxItems": 4,
    },
    "nested $ref": {
        "$defs": {
            "city": {
                "type": "object",
                "properties": {"name": {"type": "string", "maxLength": 12}},
                "required": ["name"],
            },
            "person": {
                "type": "object",
                "properties": {"home": {"$ref": "#/$defs/city"}, "age": {"type": "integer"}},
                "required": ["home", "age"],
            },
        },
        "$ref": "#/$defs/person",
    },
}


@pytest.fixture(scope="module")
def live(model_path: Path) -> Iterator[LiveServer]:
    app = create_app(model_path, parallel=2, ctx_size=512, n_threads=1)
    with serve(app) as server:
        yield server


def schema_format(schema: Any) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}


def post(live: LiveServer, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(live.url + "/v1/chat/completions", json=body, timeout=120)


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_every_reply_validates(live: LiveServer, name: str) -> None:
    schema = SCHEMAS[name]
    for seed in (1, 2):
        body = chat_body(
            live,
            f"Reply with compact JSON on one line ({name}), for example [1, 2, 3] or {{}}.",
            response_format=schema_format(schema),
            max_tokens=200,
            seed=seed,
            temperature=0.8,
        )
        reply = post(live, body)
        assert reply.status_code == 200, reply.text
        choice = reply.json()["choices"][0]
        assert choice["finish_reason"] == "stop", choice
        data = json.loads(choice["message"]["content"])
        jsonschema.validate(data, schema, format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize(
    ("schema", "named"),
    [
        ({"type": "array", "uniqueItems": True}, "uniqueItems"),
        ({"type": "number", "minimum": 0, "maximum": 1}, "minimum"),
        ({"type": "string", "pattern": "^(?=x)y$"}, "unsupported group syntax"),
    ],
)
def test_an_unsupported_keyword_is_a_400_naming_it(
    live: LiveServer, schema: dict[str, Any], named: str
) -> None:
    body = chat_body(live, "Hi", response_format=schema_format(schema), max_tokens=4)
    reply = post(live, body)
    assert reply.status_code == 400, reply.text
    assert named in reply.json()["error"]["message"]
