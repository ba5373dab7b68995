"""OpenAI's Responses API: ``POST /v1/responses``, ``GET`` and ``DELETE /v1/responses/{id}``.

A request becomes a :class:`~fireside.server.protocol.ChatCompletionRequest` (``instructions``
as the system message, then the stored conversation of ``previous_response_id``, then
``input``; ``text.format`` as ``response_format``; ``max_output_tokens`` as ``max_tokens``)
and enters the engine through :meth:`~fireside.server.serving.Service.start_chat`, like
every chat. Its job is answered as one response object, or (``stream: true``) as the
Responses event stream: ``response.created``, ``response.in_progress``,
``response.output_item.added``, ``response.content_part.added``, one
``response.output_text.delta`` per piece, the matching ``.done`` events, then
``response.completed`` (``response.incomplete`` when ``max_output_tokens`` cut it short).
An error after the stream began is an ``error`` event followed by ``response.failed``.

Finished responses are kept in the app's :class:`~fireside.server.responses_store.ResponseStore`
(unless ``store: false``), so ``previous_response_id`` continues them; ``instructions`` are
not carried over, as in OpenAI's API. Errors have OpenAI's shape
(:mod:`fireside.server.errors`).
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError

from fireside.generation.sampling import SamplingParams
from fireside.server import protocol as p
from fireside.server import responses_protocol as rp
from fireside.server.auth import require_api_key
from fireside.server.errors import APIError, bad_request, from_exception, validation_error
from fireside.server.jobs import Job
from fireside.server.responses_store import MissingResponseError, ResponseStore, StoredResponse
from fireside.server.serving import STREAM_ERRORS, EventStream, Service, collect, parse_body

router = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)])

_PARAMS = {"messages": "input", "response_format": "text.format", "max_tokens": "max_output_tokens"}
"""Chat completions' parameter names -> the Responses API's, for errors."""


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    service.engine.metrics.request("responses")
    return service


def _store(request: Request) -> ResponseStore:
    store: ResponseStore = request.app.state.responses
    return store


def _not_found(response_id: str) -> APIError:
    return APIError(
        404,
        f"No response with id '{response_id}' is stored on this server.",
        param="response_id",
        code="response_not_found",
    )


@router.post("/responses", response_model=rp.ResponseObject)
async def create_response(request: Request) -> Response:
    """Create a model response (``stream=true``: the Responses event stream)."""
    service = _service(request)
    req: rp.ResponsesRequest = await parse_body(request, rp.ResponsesRequest)
    return await _create(service, _store(request), req, request)


@router.get("/responses/{response_id}", response_model=rp.ResponseObject)
async def get_response(response_id: str, request: Request) -> Response:
    """A stored response, as it was returned."""
    _service(request)
    stored = _store(request).get(response_id)
    if stored is None:
        raise _not_found(response_id)
    return Response(json.dumps(stored.body), media_type="application/json")


@router.delete("/responses/{response_id}", response_model=rp.DeletedResponse)
async def delete_response(response_id: str, request: Request) -> rp.DeletedResponse:
    """Forget a stored response (responses that continued it can no longer be continued)."""
    _service(request)
    if not _store(request).delete(response_id):
        raise _not_found(response_id)
    return rp.DeletedResponse(id=response_id)


@dataclass(frozen=True)
class _Turn:
    """What one response is built from: the request, its ids and its new messages."""

    req: rp.ResponsesRequest
    model_id: str
    id: str
    message_id: str
    created: int
    input: list[dict[str, Any]]

    def response(
        self,
        status: str,
        output: list[rp.OutputMessage],
        job: Job | None = None,
        error: rp.ResponseError | None = None,
    ) -> rp.ResponseObject:
        req = self.req
        fmt = req.text.format if req.text is not None else None
        usage = None
        if job is not None and job.result is not None:
            counts = job.result.usage
            usage = rp.ResponseUsage(
                input_tokens=counts.prompt_tokens,
                input_tokens_details=rp.InputTokensDetails(cached_tokens=job.result.n_cached),
                output_tokens=counts.completion_tokens,
                total_tokens=counts.total_tokens,
            )
        finished = status in ("completed", "incomplete")
        return rp.ResponseObject(
            id=self.id,
            created_at=self.created,
            status=status,  # type: ignore[arg-type]
            completed_at=int(time.time()) if finished else None,
            error=error,
            incomplete_details=rp.IncompleteDetails(reason="max_output_tokens")
            if status == "incomplete"
            else None,
            instructions=req.instructions,
            max_output_tokens=req.max_output_tokens,
            model=self.model_id,
            output=output,
            parallel_tool_calls=req.parallel_tool_calls is not False,
            previous_response_id=req.previous_response_id,
            store=req.stored,
            temperature=SamplingParams.temperature if req.temperature is None else req.temperature,
            top_p=SamplingParams.top_p if req.top_p is None else req.top_p,
            text={"format": {"type": "text"} if fmt is None else fmt.model_dump(by_alias=True)},
            tool_choice=req.tool_choice or "auto",
            usage=usage,
            user=req.user,
            metadata=req.metadata or {},
        )

    def finished(self, text: str, job: Job) -> rp.ResponseObject:
        assert job.result is not None
        status: Literal["completed", "incomplete"] = (
            "incomplete" if job.result.finish_reason == "length" else "completed"
        )
        message = rp.OutputMessage(
            id=self.message_id, status=status, content=[rp.OutputText(text=text)]
        )
        return self.response(status, [message], job)

    def keep(self, store: ResponseStore, body: rp.ResponseObject, text: str) -> None:
        """Store the finished response unless ``store: false``; ``body.store`` then says
        whether it was kept (a response larger than the whole store is not)."""
        if not self.req.stored:
            return
        messages = [*self.input, {"role": "assistant", "content": text}]
        stored = StoredResponse.of(
            self.id, self.req.previous_response_id, messages, body.model_dump(mode="json")
        )
        body.store = store.put(stored)


def _history(store: ResponseStore, previous_id: str) -> list[dict[str, Any]]:
    try:
        return store.conversation(previous_id)
    except MissingResponseError as e:
        if e.response_id == previous_id:
            message = f"Previous response with id '{previous_id}' not found."
        else:
            message = (
                f"Previous response with id '{previous_id}' continues '{e.response_id}', "
                "which is no longer stored."
            )
        raise APIError(
            400,
            f"{message} This server keeps at most {store.max_responses} responses "
            f"({store.max_bytes} bytes), the least recently used are dropped first, and "
            "never those created with store: false.",
            param="previous_response_id",
            code="previous_response_not_found",
        ) from None


def _chat_request(
    req: rp.ResponsesRequest, messages: list[dict[str, Any]]
) -> p.ChatCompletionRequest:
    fields: dict[str, Any] = {
        "model": req.model,
        "messages": messages,
        "max_tokens": req.max_output_tokens,
        "response_format": rp.response_format(req.text),
    }
    for name in ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "seed"):
        fields[name] = getattr(req, name)
    try:
        return p.ChatCompletionRequest.model_validate(fields)
    except ValidationError as e:  # pragma: no cover - the fields were checked already
        raise validation_error(e.errors(include_url=False)) from None


async def _create(
    service: Service, store: ResponseStore, req: rp.ResponsesRequest, request: Request
) -> Response:
    rp.check_tools(req)
    service.check_model(req.model)
    limit = service.max_tokens_limit
    if req.max_output_tokens is not None and req.max_output_tokens > limit:
        raise bad_request(
            f"max_output_tokens is {req.max_output_tokens}, but this server allows at most "
            f"{limit} tokens per response.",
            param="max_output_tokens",
        )
    new = rp.input_messages(req.input)
    history = [] if req.previous_response_id is None else _history(store, req.previous_response_id)
    system = [] if req.instructions is None else [{"role": "system", "content": req.instructions}]
    try:
        run = await service.start_chat(_chat_request(req, [*system, *history, *new]))
    except APIError as e:
        e.param = _PARAMS.get(e.param or "", e.param)
        raise
    rid, mid = f"resp_{uuid.uuid4().hex}", f"msg_{uuid.uuid4().hex}"
    turn = _Turn(req, service.model_id, rid, mid, int(time.time()), new)
    job = run.job
    if req.stream:
        return EventStream(_events(turn, job, store), job.cancel)
    try:
        collected = await collect(job, request)
    except STREAM_ERRORS as e:  # e.g. a grammar over its budget: the request's fault
        raise from_exception(e) from None
    if collected is None:
        return Response(status_code=499)
    text, _ = collected
    body = turn.finished(text, job)
    turn.keep(store, body, text)
    return Response(body.model_dump_json(), media_type="application/json")


async def _events(turn: _Turn, job: Job, store: ResponseStore) -> AsyncIterator[str]:
    numbers = itertools.count()

    def event(kind: str, **data: Any) -> str:
        payload = {"type": kind, "sequence_number": next(numbers), **data}
        return f"event: {kind}\ndata: {json.dumps(payload)}\n\n"

    def dump(model: Any) -> Any:
        return model.model_dump(mode="json")

    where = {"item_id": turn.message_id, "output_index": 0, "content_index": 0}
    started = dump(turn.response("in_progress", []))
    yield event("response.created", response=started)
    yield event("response.in_progress", response=started)
    item = rp.OutputMessage(id=turn.message_id, status="in_progress", content=[])
    yield event("response.output_item.added", output_index=0, item=dump(item))
    yield event("response.content_part.added", **where, part=dump(rp.OutputText(text="")))
    parts: list[str] = []
    try:
        async for chunk in job.events():
            parts.append(chunk.text)
            yield event("response.output_text.delta", **where, delta=chunk.text, logprobs=[])
    except STREAM_ERRORS as e:  # the headers are sent: report it in the stream
        error = from_exception(e)
        yield event("error", code=error.code, message=error.message, param=error.param)
        failure = rp.ResponseError(code="server_error", message=error.message)
        yield event("response.failed", response=dump(turn.response("failed", [], error=failure)))
        return
    text = "".join(parts)
    body = turn.finished(text, job)
    turn.keep(store, body, text)
    yield event("response.output_text.done", **where, text=text, logprobs=[])
    yield event("response.content_part.done", **where, part=dump(body.output[0].content[0]))
    yield event("response.output_item.done", output_index=0, item=dump(body.output[0]))
    kind = "response.incomplete" if body.status == "incomplete" else "response.completed"
    yield event(kind, response=dump(body))
