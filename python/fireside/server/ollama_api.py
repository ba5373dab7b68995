"""Ollama's REST API beside OpenAI's: ``/api/chat``, ``/api/generate``, ``/api/embed`` and
``/api/embeddings`` here, the model endpoints in :mod:`fireside.server.ollama_models`.

Each request is translated into the server's own request (Ollama's ``options`` into the
sampling fields, ``format`` into ``response_format``, ``num_predict`` into
``max_tokens``) and enters the engine through :meth:`Service.start_chat` or
:meth:`Service.start_completion`, as ``/v1`` requests do; the job is then written in
Ollama's shape: one JSON object, or (``stream``, Ollama's default) NDJSON lines ending
with ``"done": true`` and the statistics, durations in nanoseconds measured on this
request (``total_duration`` from arrival to the last token, ``load_duration`` finding the
engine, ``prompt_eval_duration`` until the first token could be sampled,
``eval_duration`` generating). Errors are ``{"error": "..."}``
(:mod:`fireside.server.ollama_errors`); once a stream has started, an error is its last
line. The routes are behind the API key when one is set (``/api/version`` excepted).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from fireside.generation.results import OPENAI_FINISH_REASON, TokenLogprob
from fireside.server import ollama_protocol as o
from fireside.server import protocol as p
from fireside.server.auth import require_api_key
from fireside.server.errors import bad_request, from_exception, validation_error
from fireside.server.jobs import Job
from fireside.server.model_lookup import engine_for, manager_of
from fireside.server.ollama_models import NDJSONStream, now
from fireside.server.ollama_models import public as models_public
from fireside.server.ollama_models import router as models_router
from fireside.server.serving import STREAM_ERRORS, ChatRun, Service, collect, parse_body

router = APIRouter(prefix="/api", dependencies=[Depends(require_api_key)])
router.include_router(models_router)
public = APIRouter(prefix="/api")
public.include_router(models_public)

_SAMPLING = (*o.SAMPLING_OPTIONS, "seed", "stop")
_OLLAMA_NAMES: dict[str, tuple[str, ...]] = {
    **{name: ("options", name) for name in _SAMPLING},
    "max_tokens": ("options", "num_predict"),
    "response_format": ("format",),
    "prompt": ("prompt",),
}


def _json(body: o._Response) -> Response:
    return Response(body.model_dump_json(exclude_none=True), media_type="application/json")


def _count(service: Service, endpoint: str) -> None:
    service.engine.metrics.request(endpoint)


async def _engine(request: Request, name: str, keep_alive: Any) -> tuple[Service, int]:
    """The engine for ``name`` and the nanoseconds finding (or loading) it took."""
    started = time.perf_counter_ns()
    seconds = o.keep_alive_seconds(keep_alive)
    service = await engine_for(request, name, keep_alive=seconds)
    return service, time.perf_counter_ns() - started


async def _load_or_unload(request: Request, name: str, keep_alive: Any) -> str:
    """Ollama's request with no prompt: load model ``name`` (its ``keep_alive`` set), or
    with ``keep_alive`` 0 unload it; the ``done_reason`` to answer."""
    if o.keep_alive_seconds(keep_alive) == 0:
        await manager_of(request).unload(name)
        return "unload"
    service, _ = await _engine(request, name, keep_alive)
    _count(service, "ollama.load")
    return "load"


def _refuse(generation: o._Generation) -> None:
    """What ``/api/generate`` does not take (``/api/chat`` takes it)."""
    if generation.options is not None and generation.options.tool_choice is not None:
        raise bad_request(
            "options.tool_choice applies to /api/chat with tools, not to /api/generate.",
            param="options.tool_choice",
        )


def _sampling(service: Service, options: o.Options | None) -> dict[str, Any]:
    """The server request's sampling fields for Ollama's ``options``."""
    if options is None:
        return {}
    fields = {k: getattr(options, k) for k in _SAMPLING if getattr(options, k) is not None}
    if options.seed is not None and options.seed < 0:
        del fields["seed"]  # Ollama's -1: a random seed
    n = options.num_predict
    if n is not None and n > service.max_tokens_limit:
        raise bad_request(
            f"options.num_predict is {n}, but this server allows at most "
            f"{service.max_tokens_limit} tokens per completion.",
            param="options.num_predict",
        )
    fields["max_tokens"] = n if n is not None and n > 0 else None
    return fields


def _response_format(value: o.Format) -> dict[str, Any] | None:
    if value is None or value == "":
        return None
    if value == "json":
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": "format", "schema": value}}


def _internal(model: type[BaseModel], fields: dict[str, Any]) -> Any:
    """The server's own request, its validation errors named by Ollama's field names."""
    try:
        return model.model_validate(fields)
    except ValidationError as e:
        errors = []
        for error in e.errors(include_url=False):
            loc = tuple(error.get("loc", ()))
            if loc and isinstance(loc[0], str) and loc[0] in _OLLAMA_NAMES:
                loc = (*_OLLAMA_NAMES[loc[0]], *loc[1:])
            errors.append({**error, "loc": loc})
        raise validation_error(errors) from None


def _messages(messages: list[o.Message]) -> list[dict[str, Any]]:
    out = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if message.images:
            raise bad_request(
                f"{where} has images, but this server's model reads text only.",
                param=f"{where}.images",
            )
        item: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:  # Ollama's calls have no ids: a tool result answers the
            item["tool_calls"] = [  # earliest call not yet answered
                {
                    "id": f"call_{i}_{j}",
                    "type": "function",
                    "function": {
                        "name": call.function.name,
                        "arguments": json.dumps(call.function.arguments, ensure_ascii=False),
                    },
                }
                for j, call in enumerate(message.tool_calls)
            ]
        if message.thinking:
            item["reasoning_content"] = message.thinking
        if message.tool_name:
            item["name"] = message.tool_name
        out.append(item)
    return out


def _think(think: bool | str | None) -> dict[str, Any]:
    """Ollama's ``think`` (true, false, or an effort: "low", "medium", "high") as chat
    completions' ``think`` and ``reasoning_effort``."""
    if think is None or isinstance(think, bool):
        return {"think": think}
    return {"reasoning_effort": think}


def _tool_calls(calls: list[dict[str, Any]]) -> list[o.ToolCall] | None:
    """OpenAI-shaped calls as Ollama's (arguments as an object)."""
    out = [
        o.ToolCall(
            function=o.ToolCallFunction(
                name=call["function"]["name"], arguments=json.loads(call["function"]["arguments"])
            )
        )
        for call in calls
    ]
    return out or None


def _token_bytes(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def _logprobs(items: list[TokenLogprob]) -> list[o.Logprob]:
    return [
        o.Logprob(
            token=lp.text,
            logprob=lp.logprob,
            bytes=_token_bytes(lp.text),
            top_logprobs=[
                o.TopLogprob(token=t, logprob=v, bytes=_token_bytes(t)) for t, v in lp.top
            ],
        )
        for lp in items
    ]


def _stats(job: Job, started: int, load_ns: int) -> dict[str, Any]:
    """The statistics of a finished job, in nanoseconds."""
    assert job.result is not None
    result = job.result
    timings = result.timings
    return {
        "done_reason": OPENAI_FINISH_REASON[result.finish_reason],
        "total_duration": time.perf_counter_ns() - started,
        "load_duration": load_ns,
        "prompt_eval_count": result.usage.prompt_tokens,
        "prompt_eval_duration": int(timings.prompt_ms * 1e6) if timings else 0,
        "eval_count": result.usage.completion_tokens,
        "eval_duration": int(timings.generation_ms * 1e6) if timings else 0,
    }


Frame = Callable[[str, "list[o.Logprob] | None", "dict[str, Any] | None"], o._Response]
"""Builds one answer: its text, its logprobs, and the final statistics (``None`` for a
piece of a stream)."""


async def _answer(
    request: Request,
    job: Job,
    *,
    stream: bool,
    frame: Frame,
    with_logprobs: bool,
    started: int,
    load_ns: int,
) -> Response:
    """The job as one JSON body or as NDJSON lines."""
    if stream:

        async def lines() -> AsyncIterator[str]:
            try:
                async for event in job.events():
                    logprobs = _logprobs(event.logprobs) if with_logprobs else None
                    yield frame(event.text, logprobs, None).json_line()
            except STREAM_ERRORS as e:  # the headers are sent: the error is the last line
                yield o.ErrorLine(error=from_exception(e).message).json_line()
                return
            yield frame("", None, _stats(job, started, load_ns)).json_line()

        return NDJSONStream(lines(), job.cancel)
    try:
        collected = await collect(job, request)
    except STREAM_ERRORS as e:
        raise from_exception(e) from None
    if collected is None:
        return Response(status_code=499)
    text, logprobs = collected
    return _json(
        frame(text, _logprobs(logprobs) if with_logprobs else None, _stats(job, started, load_ns))
    )


async def _answer_reply(
    request: Request,
    run: ChatRun,
    *,
    stream: bool,
    frame: Callable[..., o._Response],
    with_logprobs: bool,
    started: int,
    load_ns: int,
) -> Response:
    """A templated ``/api/generate`` answer: the reply's answer as ``response`` and its
    reasoning as ``thinking`` (``frame(text, logprobs, stats, thinking)``)."""
    job = run.job
    if stream:

        async def lines() -> AsyncIterator[str]:
            try:
                async for delta, items in run.deltas():
                    logprobs = _logprobs(items) if with_logprobs else None
                    yield frame(delta.content, logprobs, None, delta.reasoning).json_line()
            except STREAM_ERRORS as e:  # the headers are sent: the error is the last line
                yield o.ErrorLine(error=from_exception(e).message).json_line()
                return
            yield frame("", None, _stats(job, started, load_ns)).json_line()

        return NDJSONStream(lines(), job.cancel)
    try:
        collected = await run.collect(request)
    except STREAM_ERRORS as e:
        raise from_exception(e) from None
    if collected is None:
        return Response(status_code=499)
    reply, logprobs = collected
    items = _logprobs(logprobs) if with_logprobs else None
    return _json(frame(reply.content, items, _stats(job, started, load_ns), reply.reasoning))


@router.post("/chat")
async def chat(request: Request) -> Response:
    """A chat answer (``stream``, the default: NDJSON pieces, then the statistics)."""
    started = time.perf_counter_ns()
    req: o.ChatRequest = await parse_body(request, o.ChatRequest)
    if not req.messages:  # Ollama's way to load (or, keep_alive 0, unload) a model
        reason = await _load_or_unload(request, req.model, req.keep_alive)
        return _json(
            o.ChatResponse(
                model=req.model,
                created_at=now(),
                message=o.AssistantMessage(content=""),
                done=True,
                done_reason=reason,
            )
        )
    service, load_ns = await _engine(request, req.model, req.keep_alive)
    _count(service, "ollama.chat")
    fields: dict[str, Any] = {
        "model": service.model_id,
        "messages": _messages(req.messages),
        "stream": True,
        "response_format": _response_format(req.format),
        "logprobs": req.logprobs,
        "top_logprobs": req.top_logprobs,
        "tools": req.tools,
        "tool_choice": req.options.tool_choice if req.options else None,
        **_think(req.think),
        **_sampling(service, req.options),
    }
    run = await service.start_chat(
        _internal(p.ChatCompletionRequest, fields),
        n_ctx=req.options.num_ctx if req.options else None,
    )
    with_logprobs = run.top_logprobs is not None

    def frame(
        message: o.AssistantMessage,
        logprobs: list[TokenLogprob] | None = None,
        stats: dict[str, Any] | None = None,
    ) -> o._Response:
        return o.ChatResponse(
            model=req.model,
            created_at=now(),
            message=message,
            done=stats is not None,
            logprobs=_logprobs(logprobs) if with_logprobs and logprobs is not None else None,
            **(stats or {}),
        )

    if req.stream:

        async def lines() -> AsyncIterator[str]:
            try:
                async for delta, items in run.deltas():
                    message = o.AssistantMessage(
                        content=delta.content,
                        thinking=delta.reasoning or None,
                        tool_calls=_tool_calls(delta.tool_calls),
                    )
                    yield frame(message, items).json_line()
            except STREAM_ERRORS as e:  # the headers are sent: the error is the last line
                yield o.ErrorLine(error=from_exception(e).message).json_line()
                return
            end = frame(o.AssistantMessage(content=""), None, _stats(run.job, started, load_ns))
            yield end.json_line()

        return NDJSONStream(lines(), run.job.cancel)
    try:
        collected = await run.collect(request)
    except STREAM_ERRORS as e:
        raise from_exception(e) from None
    if collected is None:
        return Response(status_code=499)
    reply, logprobs = collected
    message = o.AssistantMessage(
        content=reply.content, thinking=reply.reasoning, tool_calls=_tool_calls(reply.tool_calls)
    )
    return _json(frame(message, logprobs, _stats(run.job, started, load_ns)))


@router.post("/generate")
async def generate(request: Request) -> Response:
    """A completion of ``prompt``: through the chat template (with ``system``), or as it
    is with ``raw`` (then ``context`` tokens of an earlier answer may lead it)."""
    started = time.perf_counter_ns()
    req: o.GenerateRequest = await parse_body(request, o.GenerateRequest)
    if not req.prompt and not req.context and not (req.template or req.suffix or req.images):
        # Ollama's way to load (or, keep_alive 0, unload) a model
        reason = await _load_or_unload(request, req.model, req.keep_alive)
        return _json(
            o.GenerateResponse(
                model=req.model, created_at=now(), response="", done=True, done_reason=reason
            )
        )
    service, load_ns = await _engine(request, req.model, req.keep_alive)
    _count(service, "ollama.generate")
    _refuse(req)
    if req.template:
        raise bad_request(
            "template is not supported: fireside renders prompts with the model's own chat "
            "template (Jinja), not Ollama's Go templates. Send the formatted prompt with "
            "raw: true instead.",
            param="template",
        )
    if req.suffix:
        raise bad_request("suffix (fill-in-the-middle) is not supported.", param="suffix")
    if req.images:
        raise bad_request("images are not supported: this server's model reads text only.")
    options = req.options or o.Options()
    sampling = _sampling(service, req.options)
    job: Job
    if req.raw:
        if req.system:
            raise bad_request(
                "system does not apply with raw: true (the prompt is sent as it is).",
                param="system",
            )
        prompt: str | list[int] = req.prompt
        if req.context:
            tail = await anyio.to_thread.run_sync(
                functools.partial(
                    service.core.tokenize, req.prompt, add_special=False, parse_special=True
                )
            )
            prompt = [*req.context, *tail]
        if req.format not in (None, ""):
            raise bad_request("format applies to chat-templated prompts, not raw ones.")
        if req.think:
            raise bad_request(
                "think applies to chat-templated prompts, not raw ones (the prompt is sent "
                "as it is); leave raw out to let the model's template switch thinking.",
                param="think",
            )
        fields: dict[str, Any] = {
            "model": service.model_id,
            "prompt": prompt,
            "stream": True,
            "logprobs": (req.top_logprobs or 0) if req.logprobs else None,
            **sampling,
        }
        job = await service.start_completion(
            _internal(p.CompletionRequest, fields), n_ctx=options.num_ctx
        )
        with_logprobs = job.top_logprobs is not None
    else:
        if req.context:
            raise bad_request(
                "context works with raw: true only here; send the conversation to /api/chat.",
                param="context",
            )
        messages = [{"role": "system", "content": req.system}] if req.system else []
        messages.append({"role": "user", "content": req.prompt})
        fields = {
            "model": service.model_id,
            "messages": messages,
            "stream": True,
            "response_format": _response_format(req.format),
            "logprobs": req.logprobs,
            "top_logprobs": req.top_logprobs,
            **_think(req.think),
            **sampling,
        }
        run = await service.start_chat(
            _internal(p.ChatCompletionRequest, fields), n_ctx=options.num_ctx
        )
        job, with_logprobs = run.job, run.top_logprobs is not None
    raw = req.raw

    def frame(
        text: str,
        logprobs: list[o.Logprob] | None,
        stats: dict[str, Any] | None,
        thinking: str | None = None,
    ) -> o._Response:
        context = None
        if stats is not None and raw and job.result is not None:
            context = [*job.prompt, *job.result.tokens]
        return o.GenerateResponse(
            model=req.model,
            created_at=now(),
            response=text,
            thinking=thinking or None,
            done=stats is not None,
            context=context,
            logprobs=logprobs,
            **(stats or {}),
        )

    if not raw:  # the reply read back as the chat's: its thinking apart from the answer
        return await _answer_reply(
            request,
            run,
            stream=req.stream,
            frame=frame,
            with_logprobs=with_logprobs,
            started=started,
            load_ns=load_ns,
        )
    return await _answer(
        request,
        job,
        stream=req.stream,
        frame=frame,
        with_logprobs=with_logprobs,
        started=started,
        load_ns=load_ns,
    )


def _no_options(options: o.Options | None) -> None:
    if options is not None and options.model_dump(exclude_none=True):
        raise bad_request("options do not apply to embeddings.", param="options")


async def _vectors(
    service: Service,
    texts: list[str],
    *,
    normalize: bool,
    truncate: bool = True,
    dimensions: int | None = None,
) -> tuple[list[list[float]], int]:
    for i, text in enumerate(texts):
        if not text:
            raise bad_request(f"input[{i}] is empty.", param="input")
    limit = service.config.max_embedding_inputs
    if len(texts) > limit:
        raise bad_request(
            f"input has {len(texts)} items; at most {limit} are allowed per request.",
            param="input",
        )
    if not texts:
        return [], 0
    width = await anyio.to_thread.run_sync(service.embedding_width)
    if dimensions is not None and dimensions != width:
        raise bad_request(
            f"dimensions is {dimensions}, but this model's embeddings have {width} "
            "dimensions (they cannot be shortened).",
            param="dimensions",
        )
    vectors, n_tokens = await anyio.to_thread.run_sync(
        functools.partial(service.embed_texts, texts, truncate=truncate, normalize=normalize)
    )
    return [v.tolist() for v in vectors], n_tokens


@router.post("/embed")
async def embed(request: Request) -> Response:
    """Embedding vectors (L2-normalized) of one text or a list of texts."""
    started = time.perf_counter_ns()
    req: o.EmbedRequest = await parse_body(request, o.EmbedRequest)
    service, load_ns = await _engine(request, req.model, req.keep_alive)
    _count(service, "ollama.embed")
    _no_options(req.options)
    texts = [req.input] if isinstance(req.input, str) else list(req.input)
    if texts == [""]:  # Ollama's way to load a model
        texts = []
    vectors, n_tokens = await _vectors(
        service, texts, normalize=True, truncate=req.truncate, dimensions=req.dimensions
    )
    return _json(
        o.EmbedResponse(
            model=req.model,
            embeddings=vectors,
            total_duration=time.perf_counter_ns() - started,
            load_duration=load_ns,
            prompt_eval_count=n_tokens,
        )
    )


@router.post("/embeddings")
async def embeddings(request: Request) -> Response:
    """Ollama's older endpoint: the raw (not normalized) vector of one ``prompt``."""
    req: o.EmbeddingsRequest = await parse_body(request, o.EmbeddingsRequest)
    service, _ = await _engine(request, req.model, req.keep_alive)
    _count(service, "ollama.embeddings")
    _no_options(req.options)
    vectors, _ = await _vectors(service, [req.prompt] if req.prompt else [], normalize=False)
    return _json(o.EmbeddingsResponse(embedding=vectors[0] if vectors else []))
