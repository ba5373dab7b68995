"""Errors under ``/api/`` in Ollama's shape: ``{"error": "message"}``.

The server raises one kind of error (:class:`fireside.server.errors.APIError`, answered in
OpenAI's shape by its handlers and by the Host/Origin middleware); this ASGI middleware
sits outside all of them and rewrites the JSON error answers to requests under ``/api/``
into Ollama's shape, keeping the status code and headers (``Retry-After``, CORS). Ollama's
clients read the ``error`` string (the official Python client raises it as
``ResponseError``). Answers that are not errors, streams included, pass untouched.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIX = "/api/"


def ollama_error_body(body: bytes) -> bytes:
    """An OpenAI-shaped error body as Ollama's; other bodies are returned unchanged."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        return body
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        message = data["error"].get("message")
        if isinstance(message, str):
            return json.dumps({"error": message}).encode()
    return body


class OllamaErrors:
    """ASGI middleware: error answers under ``/api/`` in Ollama's shape."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        parts: list[bytes] = []

        async def rewrite(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                named = dict(message.get("headers", ()))
                kind = named.get(b"content-type", b"").split(b";")[0].strip()
                if message["status"] >= 400 and kind == b"application/json":
                    start = message  # hold it until the whole body is here
                    return
                await send(message)
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            parts.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = ollama_error_body(b"".join(parts))
            headers = [
                (k, v) for k, v in start.get("headers", ()) if k.lower() != b"content-length"
            ]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, rewrite)
