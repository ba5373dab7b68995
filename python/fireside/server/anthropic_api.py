"""Anthropic's Messages API: ``POST /v1/messages`` and ``POST /v1/messages/count_tokens``.

A request becomes a :class:`~fireside.server.protocol.ChatCompletionRequest` (``system``
as the system message, ``stop_sequences`` as stops) and enters the engine through
:meth:`~fireside.server.serving.Service.start_chat`, like every chat; its job is answered
as one ``message``, or (``stream: true``) as Anthropic's event stream: ``message_start``,
``content_block_start``, ``ping``, one ``content_block_delta`` per piece,
``content_block_stop``, ``message_delta`` (``stop_reason``, ``stop_sequence``, output
tokens) and ``message_stop``. An error after the stream began is an ``error`` event.
``count_tokens`` renders the messages exactly as a request would be rendered and counts
the prompt's tokens (the ``input_tokens`` a reply reports).

The API key may come as ``x-api-key`` (what Anthropic's clients send) or as
``Authorization: Bearer``. Every error on these paths, including those answered before
the route runs (Host, Origin and content-type checks, body size, unknown paths), has
Anthropic's shape, ``{"type": "error", "error": {"type", "message"}}``, through
:class:`AnthropicErrorShape`; a full queue is 529 ``overloaded_error``.
"""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fireside.server import anthropic_protocol as ap
from fireside.server import protocol as p
from fireside.server.auth import check_api_key
from fireside.server.errors import APIError, bad_request, from_exception
from fireside.server.jobs import Job
from fireside.server.serving import STREAM_ERRORS, EventStream, Service, collect, parse_body

PATH = "/v1/messages"


async def require_api_key(request: Request) -> None:
    """The app's API key, from ``x-api-key`` or ``Authorization: Bearer``."""
    expected: str | None = request.app.state.config.api_key
    if expected is None:
        return
    given = request.headers.get("x-api-key")
    authorization = request.headers.get("authorization")
    if given is None and authorization is None:
        raise APIError(
            401,
            "x-api-key header is required (or 'Authorization: Bearer YOUR_KEY').",
            code="missing_api_key",
        )
    if given is None:
        check_api_key(expected, authorization)
    elif not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise APIError(401, "invalid x-api-key", code="invalid_api_key")


router = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)])


def _service(request: Request, endpoint: str) -> Service:
    service: Service = request.app.state.service
    service.engine.metrics.request(endpoint)
    return service


@router.post("/messages", response_model=ap.Message)
async def create_message(request: Request) -> Response:
    """A reply to a conversation (``stream=true``: Anthropic's event stream)."""
    service = _service(request, "messages")
    req: ap.MessagesRequest = await parse_body(request, ap.MessagesRequest)
    limit = service.max_tokens_limit
    if req.max_tokens > limit:
        raise bad_request(
            f"max_tokens: {req.max_tokens} > {limit}, which is the most this server allows "
            "per reply.",
            param="max_tokens",
        )
    chat = p.ChatCompletionRequest(
        model=req.model,
        messages=ap.chat_messages(req),
        max_tokens=req.max_tokens,
        stop=req.stop_sequences,
        temperature=req.temperature,
        top_p=req.top_p,
        top_k=req.top_k,
        user=req.metadata.user_id if req.metadata is not None else None,
    )
    run = await service.start_chat(chat)
    job, mid = run.job, f"msg_{uuid.uuid4().hex}"
    if req.stream:
        return EventStream(_events(service, job, mid), job.cancel)
    try:
        collected = await collect(job, request)
    except STREAM_ERRORS as e:  # e.g. a grammar over its budget: the request's fault
        raise from_exception(e) from None
    if collected is None:
        return Response(status_code=499)
    text, _ = collected
    body = _message(service, job, mid, [ap.TextContent(text=text)])
    return Response(body.model_dump_json(), media_type="application/json")


@router.post("/messages/count_tokens", response_model=ap.TokenCount)
async def count_tokens(request: Request) -> ap.TokenCount:
    """The prompt tokens a request with these messages would take."""
    service = _service(request, "messages.count_tokens")
    req: ap.CountTokensRequest = await parse_body(request, ap.CountTokensRequest)
    chat = p.ChatCompletionRequest(model=req.model, messages=ap.chat_messages(req))
    tokens, _ = await service.chat_prompt(chat)
    return ap.TokenCount(input_tokens=len(tokens))


def _matched_stop(service: Service, job: Job) -> str | None:
    """The stop sequence that ended ``job``: the earliest in its generated text (as the
    engine's holdback finds it; the first given wins a tie)."""
    assert job.result is not None
    if job.result.finish_reason != "stop" or not job.stops:
        return None
    if len(job.stops) == 1:
        return job.stops[0]
    piece = service.core.token_to_piece
    text = b"".join(piece(t) for t in job.result.tokens).decode("utf-8", errors="replace")
    found = [(text.find(s), i, s) for i, s in enumerate(job.stops) if s in text]
    return min(found)[2] if found else None


def _message(service: Service, job: Job, mid: str, content: list[ap.TextContent]) -> ap.Message:
    result = job.result
    return ap.Message(
        id=mid,
        content=content,
        model=service.model_id,
        stop_reason=None if result is None else ap.STOP_REASONS[result.finish_reason],
        stop_sequence=None if result is None else _matched_stop(service, job),
        usage=ap.Usage(
            input_tokens=len(job.prompt),
            output_tokens=0 if result is None else result.usage.completion_tokens,
        ),
    )


def _event(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n"


async def _events(service: Service, job: Job, mid: str) -> AsyncIterator[str]:
    start = _message(service, job, mid, [])
    yield _event("message_start", {"message": start.model_dump(mode="json")})
    block = {"type": "text", "text": ""}
    yield _event("content_block_start", {"index": 0, "content_block": block})
    yield _event("ping", {})
    try:
        async for chunk in job.events():
            text = {"type": "text_delta", "text": chunk.text}
            yield _event("content_block_delta", {"index": 0, "delta": text})
    except STREAM_ERRORS as e:  # the headers are sent: report it in the stream
        error = from_exception(e)
        status = ap.anthropic_status(error.status, error.code)
        yield _event("error", {"error": ap.error_body(status, error.message)["error"]})
        return
    yield _event("content_block_stop", {"index": 0})
    end = _message(service, job, mid, [])
    delta: dict[str, str | None] = {
        "stop_reason": end.stop_reason,
        "stop_sequence": end.stop_sequence,
    }
    yield _event(
        "message_delta", {"delta": delta, "usage": {"output_tokens": end.usage.output_tokens}}
    )
    yield _event("message_stop", {})


class AnthropicErrorShape:
    """Rewrites error answers on ``/v1/messages`` paths into Anthropic's error shape.

    Errors are raised as :class:`~fireside.server.errors.APIError` everywhere (routes,
    the API key check, the Host/Origin/content-type policy, the body size limit); on
    these paths their OpenAI-shaped JSON body becomes ``{"type": "error", "error":
    {"type", "message"}}``, with Anthropic's status for a full queue (529). Added as the
    outermost middleware, it sees every answer; other paths pass untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path != PATH and not path.startswith(PATH + "/"):
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        body: list[bytes] = []

        async def reshaping_send(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and message["status"] >= 400:
                headers = dict(message.get("headers", []))
                if headers.get(b"content-type", b"").startswith(b"application/json"):
                    held = message
                    return
            if held is None or message["type"] != "http.response.body":
                await send(message)
                return
            body.append(message.get("body", b""))
            if not message.get("more_body", False):
                for reshaped in _reshaped(held, b"".join(body)):
                    await send(reshaped)

        await self.app(scope, receive, reshaping_send)


def _reshaped(start: Message, raw: bytes) -> list[Message]:
    """An OpenAI-shaped error answer as Anthropic's (left as it is when it is not one)."""
    status: int = start["status"]
    try:
        error = json.loads(raw)["error"]
        message, code = str(error["message"]), error.get("code")
    except (ValueError, KeyError, TypeError):
        return [start, {"type": "http.response.body", "body": raw}]
    status = ap.anthropic_status(status, code)
    data = json.dumps(ap.error_body(status, message)).encode()
    headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
    headers.append((b"content-length", str(len(data)).encode()))
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": data},
    ]
