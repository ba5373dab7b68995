"""OpenAI's Responses API: ``POST /v1/responses``, ``GET`` and ``DELETE /v1/responses/{id}``.

A request becomes a :class:`~fireside.server.protocol.ChatCompletionRequest` (``instructions``
as the system message, then the stored conversation of ``previous_response_id``, then
``input``; ``text.format`` as ``response_format``; ``max_output_tokens`` as ``max_tokens``)
and enters the engine through :meth:`~fireside.server.serving.Service.start_chat`, like
every chat (function ``tools`` and ``tool_choice`` as its tools, ``reasoning.effort`` as
``reasoning_effort``). Its reply is answered as one response object whose ``output`` holds
a ``reasoning`` item (a thinking model's reasoning), a ``message`` (the answer; left out
when the reply is only calls) and one ``function_call`` item per call, or
(``stream: true``) as the Responses event stream: ``response.created``,
``response.in_progress``, then per item ``response.output_item.added``, its pieces
(``response.reasoning_text.delta``; ``response.content_part.added`` and
``response.output_text.delta``; ``response.function_call_arguments.delta``), the matching
``.done`` events and ``response.output_item.done``, then ``response.completed``
(``response.incomplete`` when ``max_output_tokens`` cut it short). An error after the
stream began is an ``error`` event followed by ``response.failed``.

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
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError

from fireside.generation.sampling import SamplingParams
from fireside.server import protocol as p
from fireside.server import responses_protocol as rp
from fireside.server.auth import require_api_key
from fireside.server.errors import APIError, bad_request, from_exception, validation_error
from fireside.server.jobs import Job
from fireside.server.model_lookup import engine_for
from fireside.server.responses_store import MissingResponseError, ResponseStore, StoredResponse
from fireside.server.serving import STREAM_ERRORS, ChatRun, EventStream, Service, parse_body

if TYPE_CHECKING:
    from fireside.chat.reply import ChatReply

router = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)])

_PARAMS = {
    "messages": "input",
    "response_format": "text.format",
    "max_tokens": "max_output_tokens",
    "reasoning_effort": "reasoning.effort",
    "think": "reasoning.effort",
}
"""Chat completions' parameter names -> the Responses API's, for errors."""


def _count(request: Request) -> None:
    request.app.state.metrics.request("responses")


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
    req: rp.ResponsesRequest = await parse_body(request, rp.ResponsesRequest)
    _count(request)
    service = await engine_for(request, req.model)  # the model the request names
    return await _create(service, _store(request), req, request)


@router.get("/responses/{response_id}", response_model=rp.ResponseObject)
async def get_response(response_id: str, request: Request) -> Response:
    """A stored response, as it was returned."""
    _count(request)
    stored = _store(request).get(response_id)
    if stored is None:
        raise _not_found(response_id)
    return Response(json.dumps(stored.body), media_type="application/json")


@router.delete("/responses/{response_id}", response_model=rp.DeletedResponse)
async def delete_response(response_id: str, request: Request) -> rp.DeletedResponse:
    """Forget a stored response (responses that continued it can no longer be continued)."""
    _count(request)
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

    @property
    def reasoning_id(self) -> str:
        return "rs_" + self.id.removeprefix("resp_")

    def call_id(self, index: int) -> str:
        """The id of the ``index``-th function_call item (its ``call_id`` is the call's)."""
        return f"fc_{self.id.removeprefix('resp_')}_{index}"

    def response(
        self,
        status: str,
        output: list[Any],
        job: Job | None = None,
        error: rp.ResponseError | None = None,
        reasoning_tokens: int = 0,
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
                output_tokens_details=rp.OutputTokensDetails(reasoning_tokens=reasoning_tokens),
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
            tools=req.tools or [],
            usage=usage,
            user=req.user,
            metadata=req.metadata or {},
        )

    def items(self, reply: ChatReply, status: _Status) -> list[Any]:
        """The output items of a finished reply: its reasoning, its answer (left out when
        the reply is only calls) and its calls, in the order they were written."""
        items: list[Any] = []
        if reply.reasoning:
            items.append(self.reasoning_item(reply.reasoning, status))
        if reply.content or not reply.tool_calls:
            items.append(self.message_item(reply.content, status))
        for i, call in enumerate(reply.tool_calls):
            items.append(self.function_call(i, call, status))
        return items

    def reasoning_item(self, text: str, status: _Status) -> rp.ReasoningItem:
        content = [rp.ReasoningText(text=text)] if text else []
        return rp.ReasoningItem(id=self.reasoning_id, content=content, status=status)

    def message_item(self, text: str | None, status: _Status) -> rp.OutputMessage:
        content = [] if text is None else [rp.OutputText(text=text)]
        return rp.OutputMessage(id=self.message_id, status=status, content=content)

    def function_call(
        self, index: int, call: dict[str, Any], status: _Status, arguments: str | None = None
    ) -> rp.FunctionCallItem:
        function = call["function"]
        return rp.FunctionCallItem(
            id=self.call_id(index),
            call_id=call["id"],
            name=function["name"],
            arguments=function["arguments"] if arguments is None else arguments,
            status=status,
        )

    def finished(self, reply: ChatReply, job: Job) -> rp.ResponseObject:
        assert job.result is not None
        status: _Status = "incomplete" if job.result.finish_reason == "length" else "completed"
        items = self.items(reply, status)
        return self.response(status, items, job, reasoning_tokens=reply.reasoning_tokens)

    def keep(self, store: ResponseStore, body: rp.ResponseObject, reply: ChatReply) -> None:
        """Store the finished response unless ``store: false``; ``body.store`` then says
        whether it was kept (a response larger than the whole store is not)."""
        if not self.req.stored:
            return
        messages = [*self.input, reply.message()]
        stored = StoredResponse.of(
            self.id, self.req.previous_response_id, messages, body.model_dump(mode="json")
        )
        body.store = store.put(stored)


_Status = Literal["in_progress", "completed", "incomplete"]


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
        "tools": rp.chat_tools(req.tools),
        "tool_choice": rp.chat_tool_choice(req.tool_choice),
        "parallel_tool_calls": req.parallel_tool_calls,
        "reasoning_effort": req.reasoning.effort if req.reasoning is not None else None,
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
    rp.check_call_outputs(history, req.input)
    system = [] if req.instructions is None else [{"role": "system", "content": req.instructions}]
    try:
        run = await service.start_chat(_chat_request(req, [*system, *history, *new]))
    except APIError as e:
        e.param = _PARAMS.get(e.param or "", e.param)
        raise
    rid, mid = f"resp_{uuid.uuid4().hex}", f"msg_{uuid.uuid4().hex}"
    turn = _Turn(req, service.model_id, rid, mid, int(time.time()), new)
    if req.stream:
        return EventStream(_events(turn, run, store), run.job.cancel)
    try:
        collected = await run.collect(request)
    except STREAM_ERRORS as e:  # e.g. a grammar over its budget: the request's fault
        raise from_exception(e) from None
    if collected is None:
        return Response(status_code=499)
    reply, _ = collected
    body = turn.finished(reply, run.job)
    turn.keep(store, body, reply)
    return Response(body.model_dump_json(), media_type="application/json")


class _EventWriter:
    """The Responses event stream of one turn: opens each output item when its first
    piece arrives and closes it when the next item begins (or at the end)."""

    def __init__(self, turn: _Turn) -> None:
        self.turn = turn
        self._numbers = itertools.count()
        self._index = -1  # the open item's output_index
        self._open: str | None = None  # "reasoning" or "message"
        self._text: list[str] = []
        self._message_seen = False

    def event(self, kind: str, **data: Any) -> str:
        payload = {"type": kind, "sequence_number": next(self._numbers), **data}
        return f"event: {kind}\ndata: {json.dumps(payload)}\n\n"

    def _where(self) -> dict[str, Any]:
        item_id = self.turn.reasoning_id if self._open == "reasoning" else self.turn.message_id
        return {"item_id": item_id, "output_index": self._index, "content_index": 0}

    def piece(self, kind: str, text: str) -> Iterator[str]:
        """Events for ``text`` of the ``"reasoning"`` or the ``"message"`` item."""
        if self._open != kind:
            yield from self.close()
            yield from self._start(kind)
        self._text.append(text)
        name = "reasoning_text" if kind == "reasoning" else "output_text"
        extra: dict[str, Any] = {} if kind == "reasoning" else {"logprobs": []}
        yield self.event(f"response.{name}.delta", **self._where(), delta=text, **extra)

    def _start(self, kind: str) -> Iterator[str]:
        self._index += 1
        self._open, self._text = kind, []
        self._message_seen = self._message_seen or kind == "message"
        turn = self.turn
        item = (
            turn.reasoning_item("", "in_progress")
            if kind == "reasoning"
            else turn.message_item(None, "in_progress")
        )
        yield self.event("response.output_item.added", output_index=self._index, item=_dump(item))
        if kind == "message":
            part = _dump(rp.OutputText(text=""))
            yield self.event("response.content_part.added", **self._where(), part=part)

    def close(self, status: _Status = "completed") -> Iterator[str]:
        """Close the open reasoning or message item."""
        if self._open is None:
            return
        text, where, turn = "".join(self._text), self._where(), self.turn
        if self._open == "reasoning":
            yield self.event("response.reasoning_text.done", **where, text=text)
            item: Any = turn.reasoning_item(text, status)
        else:
            yield self.event("response.output_text.done", **where, text=text, logprobs=[])
            part = _dump(rp.OutputText(text=text))
            yield self.event("response.content_part.done", **where, part=part)
            item = turn.message_item(text, status)
        yield self.event("response.output_item.done", output_index=self._index, item=_dump(item))
        self._open = None

    def calls(self, reply: ChatReply, status: _Status) -> Iterator[str]:
        """The reply's function calls, each item added, its arguments, and done."""
        yield from self.close(status)
        if not reply.tool_calls and not self._message_seen:  # an empty answer: a message
            yield from self._start("message")
            yield from self.close(status)
        for i, call in enumerate(reply.tool_calls):
            self._index += 1
            turn, index = self.turn, self._index
            added = turn.function_call(i, call, "in_progress", arguments="")
            yield self.event("response.output_item.added", output_index=index, item=_dump(added))
            where = {"item_id": added.id, "output_index": index}
            arguments = call["function"]["arguments"]
            yield self.event("response.function_call_arguments.delta", **where, delta=arguments)
            yield self.event("response.function_call_arguments.done", **where, arguments=arguments)
            done = turn.function_call(i, call, status)
            yield self.event("response.output_item.done", output_index=index, item=_dump(done))


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json")


async def _events(turn: _Turn, run: ChatRun, store: ResponseStore) -> AsyncIterator[str]:
    writer = _EventWriter(turn)
    started = _dump(turn.response("in_progress", []))
    yield writer.event("response.created", response=started)
    yield writer.event("response.in_progress", response=started)
    try:
        async for delta, _ in run.deltas():
            if delta.reasoning:
                for line in writer.piece("reasoning", delta.reasoning):
                    yield line
            if delta.content:
                for line in writer.piece("message", delta.content):
                    yield line
    except STREAM_ERRORS as e:  # the headers are sent: report it in the stream
        error = from_exception(e)
        yield writer.event("error", code=error.code, message=error.message, param=error.param)
        failure = rp.ResponseError(code="server_error", message=error.message)
        failed = _dump(turn.response("failed", [], error=failure))
        yield writer.event("response.failed", response=failed)
        return
    reply, job = run.reply, run.job
    assert reply is not None
    body = turn.finished(reply, job)
    turn.keep(store, body, reply)
    for line in writer.calls(reply, body.status):  # type: ignore[arg-type]
        yield line
    kind = "response.incomplete" if body.status == "incomplete" else "response.completed"
    yield writer.event(kind, response=_dump(body))
