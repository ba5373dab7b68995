"""The HTTP/1.1 layer: uvicorn's h11 protocol, answering unparseable requests in OpenAI's
error shape.

A request whose head cannot be parsed (a negative or non-numeric ``Content-Length``, a
broken request line or header, a head over h11's size limit) never reaches the app: the
protocol answers it and closes the connection. uvicorn's answer is a plain-text 400; this
protocol sends ``{"error": {...}}`` instead, with h11's reason in the message and h11's
status (400, or 431 for a head too large). :func:`uvicorn_config` is how ``fireside serve``
runs the app; it always uses h11 (whether or not httptools is installed), so every
installation parses requests the same way.
"""

from __future__ import annotations

import http
import json
from typing import Any

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from fireside.server.errors import APIError


class _Connection(h11.Connection):
    """An h11 connection that remembers why the peer's last event could not be parsed."""

    parse_error: h11.RemoteProtocolError | None = None

    def next_event(self) -> Any:
        try:
            return super().next_event()
        except h11.RemoteProtocolError as e:
            self.parse_error = e
            raise


class JSONErrorH11Protocol(H11Protocol):
    """uvicorn's h11 protocol whose answer to a malformed request is OpenAI-shaped JSON."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        limit = config.h11_max_incomplete_event_size
        self.conn = _Connection(h11.SERVER, *(() if limit is None else (limit,)))

    def send_400_response(self, msg: str) -> None:
        """Answer the request h11 could not parse (``msg`` is uvicorn's generic text)."""
        problem = self.conn.parse_error if isinstance(self.conn, _Connection) else None
        status = problem.error_status_hint if problem is not None else 400
        reason = str(problem) if problem is not None and str(problem) else msg.rstrip(".")
        error = APIError(
            status,
            f"The HTTP request could not be parsed: {reason}.",
            code="invalid_http_request",
        )
        body = json.dumps(error.body()).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        phrase = http.HTTPStatus(status).phrase.encode()
        for event in (
            h11.Response(status_code=status, headers=headers, reason=phrase),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.close()


def uvicorn_config(app: ASGIApp, **options: Any) -> uvicorn.Config:
    """uvicorn's settings for a fireside app: HTTP/1.1 through
    :class:`JSONErrorH11Protocol`, no WebSockets (no endpoint uses them). ``options`` are
    :class:`uvicorn.Config`'s other arguments."""
    return uvicorn.Config(app, http=JSONErrorH11Protocol, ws="none", **options)
