"""Anthropic's Messages API: ``POST /v1/messages`` and ``POST /v1/messages/count_tokens``.

A request becomes a :class:`~fireside.server.protocol.ChatCompletionRequest` (``system``
as the system message, ``stop_sequences`` as stops, ``tools``/``tool_choice`` as its tools,
``thinking`` as ``think``) and enters the engine through
:meth:`~fireside.server.serving.Service.start_chat`, like every chat; its reply is
answered as one ``message`` whose content is a ``thinking`` block (a thinking model's
reasoning), a ``text`` block (left out when the reply is only calls) and one ``tool_use``
block per call (``stop_reason: "tool_use"``), or (``stream: true``) as Anthropic's event
stream: ``message_start``, then per block ``content_block_start`` (the first followed by
``ping``), its ``content_block_delta`` pieces (``thinking_delta``, ``text_delta``,
``input_json_delta``) and ``content_block_stop``, then ``message_delta``
(``stop_reason``, ``stop_sequence``, output tokens) and ``message_stop``. An error after
the stream began is an ``error`` event.
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
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fireside.server import anthropic_protocol as ap
from fireside.server import protocol as p
from fireside.server.auth import check_api_key
from fireside.server.errors import APIError, bad_request, from_exception
from fireside.server.jobs import Job
from fireside.server.model_lookup import engine_for
from fireside.server.serving import STREAM_ERRORS, ChatRun, EventStream, Service, parse_body

if TYPE_CHECKING:
    from fireside.chat.reply import ChatReply

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


async def _service(request: Request, endpoint: str, name: str) -> Service:
    service = await engine_for(request, name)  # the model the request names
    service.engine.metrics.request(endpoint)
    return service


@router.post("/messages", response_model=ap.Message)
async def create_message(request: Request) -> Response:
    """A reply to a conversation (``stream=true``: Anthropic's event stream)."""
    req: ap.MessagesRequest = await parse_body(request, ap.MessagesRequest)
    service = await _service(request, "messages", req.model)
    limit = service.max_tokens_limit
    if req.max_tokens > limit:
        raise bad_request(
            f"max_tokens: {req.max_tokens} > {limit}, which is the most this server allows "
            "per reply.",
            param="max_tokens",
        )
    budget = req.thinking.budget_tokens if req.thinking is not None else None
    if budget is not None and budget >= req.max_tokens:
        raise bad_request(
            f"thinking.budget_tokens ({budget}) must be less than max_tokens ({req.max_tokens}).",
            param="thinking.budget_tokens",
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
        think=req.think,
        **ap.chat_tools(req),
    )
    run = await service.start_chat(chat)
    mid = f"msg_{uuid.uuid4().hex}"
    if req.stream:
        return EventStream(_events(service, run, mid), run.job.cancel)
    try:
        collected = await run.collect(request)
    except STREAM_ERRORS as e:  # e.g. a grammar over its budget: the request's fault
        raise from_exception(e) from None
    if collected is None:
        return Response(status_code=499)
    reply, _ = collected
    body = _message(service, run, mid, _blocks(reply))
    return Response(body.model_dump_json(), media_type="application/json")


def _blocks(reply: ChatReply) -> list[ap.ContentBlock]:
    """A finished reply's content: thinking, text (left out when the reply is only
    calls), then one tool_use block per call."""
    blocks: list[ap.ContentBlock] = []
    if reply.reasoning:
        blocks.append(ap.ThinkingContent(thinking=reply.reasoning))
    if reply.content or not reply.tool_calls:
        blocks.append(ap.TextContent(text=reply.content))
    blocks.extend(_tool_use(call) for call in reply.tool_calls)
    return blocks


def _tool_use(call: dict[str, Any]) -> ap.ToolUseContent:
    function = call["function"]
    return ap.ToolUseContent(
        id=call["id"], name=function["name"], input=json.loads(function["arguments"])
    )


@router.post("/messages/count_tokens", response_model=ap.TokenCount)
async def count_tokens(request: Request) -> ap.TokenCount:
    """The prompt tokens a request with these messages would take."""
    req: ap.CountTokensRequest = await parse_body(request, ap.CountTokensRequest)
    service = await _service(request, "messages.count_tokens", req.model)
    chat = p.ChatCompletionRequest(
        model=req.model, messages=ap.chat_messages(req), think=req.think, **ap.chat_tools(req)
    )
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


def _message(
    service: Service, run: ChatRun, mid: str, content: list[ap.ContentBlock]
) -> ap.Message:
    job = run.job
    result = job.result
    stop_reason: ap.StopReason | None = None
    if result is not None:
        stop_reason = ap.STOP_REASONS[result.finish_reason]
        if run.reply is not None and run.reply.finish_reason(result.finish_reason) == "tool_calls":
            stop_reason = "tool_use"
    return ap.Message(
        id=mid,
        content=content,
        model=service.model_id,
        stop_reason=stop_reason,
        stop_sequence=None if result is None else _matched_stop(service, job),
        usage=ap.Usage(
            input_tokens=len(job.prompt),
            output_tokens=0 if result is None else result.usage.completion_tokens,
        ),
    )


def _event(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n"


class _BlockWriter:
    """Anthropic's content block events: each block starts when its first piece arrives
    and stops when the next block begins (or at the end); the first start is followed by
    a ``ping``, as Anthropic's streams do."""

    def __init__(self) -> None:
        self.index = -1
        self._open: str | None = None  # "thinking" or "text"
        self._text_seen = False

    def _start(self, block: dict[str, Any]) -> Iterator[str]:
        self.index += 1
        yield _event("content_block_start", {"index": self.index, "content_block": block})
        if self.index == 0:
            yield _event("ping", {})

    def close(self) -> Iterator[str]:
        if self._open is not None:
            yield _event("content_block_stop", {"index": self.index})
            self._open = None

    def piece(self, kind: str, text: str) -> Iterator[str]:
        """Events for ``text`` of a ``"thinking"`` or ``"text"`` block."""
        if self._open != kind:
            yield from self.close()
            empty = {"type": "thinking", "thinking": "", "signature": ""}
            yield from self._start(empty if kind == "thinking" else {"type": "text", "text": ""})
            self._open = kind
            self._text_seen = self._text_seen or kind == "text"
        delta = (
            {"type": "thinking_delta", "thinking": text}
            if kind == "thinking"
            else {"type": "text_delta", "text": text}
        )
        yield _event("content_block_delta", {"index": self.index, "delta": delta})

    def finish(self, reply: ChatReply) -> Iterator[str]:
        """Close the open block; an empty answer is still a text block; then the calls."""
        yield from self.close()
        if not reply.tool_calls and not self._text_seen:
            yield from self._start({"type": "text", "text": ""})
            yield _event("content_block_stop", {"index": self.index})
        for call in reply.tool_calls:
            block = _tool_use(call).model_dump(mode="json")
            yield from self._start({**block, "input": {}})
            partial = {"type": "input_json_delta", "partial_json": call["function"]["arguments"]}
            yield _event("content_block_delta", {"index": self.index, "delta": partial})
            yield _event("content_block_stop", {"index": self.index})


async def _events(service: Service, run: ChatRun, mid: str) -> AsyncIterator[str]:
    start = _message(service, run, mid, [])
    yield _event("message_start", {"message": start.model_dump(mode="json")})
    writer = _BlockWriter()
    try:
        async for delta, _ in run.deltas():
            if delta.reasoning:
                for line in writer.piece("thinking", delta.reasoning):
                    yield line
            if delta.content:
                for line in writer.piece("text", delta.content):
                    yield line
    except STREAM_ERRORS as e:  # the headers are sent: report it in the stream
        error = from_exception(e)
        status = ap.anthropic_status(error.status, error.code)
        yield _event("error", {"error": ap.error_body(status, error.message)["error"]})
        return
    assert run.reply is not None
    for line in writer.finish(run.reply):
        yield line
    end = _message(service, run, mid, [])
    stop: dict[str, str | None] = {
        "stop_reason": end.stop_reason,
        "stop_sequence": end.stop_sequence,
    }
    yield _event(
        "message_delta", {"delta": stop, "usage": {"output_tokens": end.usage.output_tokens}}
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
