"""Serving the OpenAI endpoints: requests become engine jobs, results become responses.

:class:`Service` (one per loaded model, kept by the model manager on
``app.state.models``) owns the loaded model, the batching engine and the embedder. Each handler checks the request, renders and tokenizes the
prompt, builds the job's sampler, submits the job, and answers either with one JSON body
or with a Server-Sent Events stream ending in ``data: [DONE]``. A client that goes away
cancels its job, which frees the slot at the engine's next step.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.types import Receive, Scope, Send

from fireside.errors import (
    ContextLengthError,
    FiresideError,
    GrammarError,
    TemplateError,
    ToolError,
)
from fireside.generation.context_room import prompt_fits, reply_limit
from fireside.generation.results import OPENAI_FINISH_REASON, TokenLogprob
from fireside.generation.sampling import SamplingParams, build_sampler
from fireside.server import protocol as p
from fireside.server.errors import APIError, bad_request, from_exception, validation_error
from fireside.server.jobs import Chunk, Job

if TYPE_CHECKING:
    from fireside.chat.grounding import Reference
    from fireside.chat.reply import ChatPlan, ChatReply, ReplyDelta
    from fireside.embeddings import Embedder
    from fireside.model import Model
    from fireside.server.config import ServerConfig
    from fireside.server.docs_api import DocsService
    from fireside.server.engine import Engine

_DONE = "data: [DONE]\n\n"
STREAM_ERRORS = (FiresideError, ValueError, RuntimeError)
"""What a job's events may raise that is reported to the client (in a stream: as an event)."""


def _sse(payload: BaseModel | dict[str, Any]) -> str:
    data = payload.model_dump_json() if isinstance(payload, BaseModel) else json.dumps(payload)
    return f"data: {data}\n\n"


class EventStream(StreamingResponse):
    """An SSE response that runs ``on_close`` however it ends (finished, client gone)."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[str], on_close: Callable[[], None]) -> None:
        super().__init__(content, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


async def parse_body(request: Request, model: type[BaseModel]) -> Any:
    """The request's JSON body validated as ``model`` (400 in OpenAI's shape otherwise).

    Any content type is accepted (``curl -d`` sends a form type), the body must be JSON.
    """
    raw = await request.body()
    if not raw.strip():
        raise bad_request("The request body is empty; send a JSON object.")
    try:
        return model.model_validate_json(raw)
    except ValidationError as e:
        raise validation_error(e.errors(include_url=False)) from None


async def _wait_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def collect(
    job: Job, request: Request, on_chunk: Callable[[Chunk], object] | None = None
) -> tuple[str, list[TokenLogprob]] | None:
    """All of a job's text, or ``None`` when the client disconnected first (job cancelled);
    ``on_chunk`` sees each chunk as it comes."""

    async def gather() -> tuple[str, list[TokenLogprob]]:
        parts: list[str] = []
        logprobs: list[TokenLogprob] = []
        async for chunk in job.events():
            if on_chunk is not None:
                on_chunk(chunk)
            parts.append(chunk.text)
            logprobs.extend(chunk.logprobs)
        return "".join(parts), logprobs

    result = asyncio.ensure_future(gather())
    watcher = asyncio.ensure_future(_wait_disconnect(request))
    try:
        await asyncio.wait({result, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if result.done():
            return result.result()
        job.cancel()
        result.cancel()
        return None
    finally:
        watcher.cancel()
        if not result.done():
            result.cancel()


def _token_bytes(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def _chat_logprobs(items: list[TokenLogprob]) -> p.ChatLogprobs:
    return p.ChatLogprobs(
        content=[
            p.TokenLogprobEntry(
                token=lp.text,
                logprob=lp.logprob,
                bytes=_token_bytes(lp.text),
                top_logprobs=[
                    p.TopLogprob(token=t, logprob=v, bytes=_token_bytes(t)) for t, v in lp.top
                ],
            )
            for lp in items
        ]
    )


def _completion_logprobs(items: list[TokenLogprob], offset: int) -> p.CompletionLogprobs:
    offsets = []
    for lp in items:
        offsets.append(offset)
        offset += len(lp.text)
    return p.CompletionLogprobs(
        tokens=[lp.text for lp in items],
        token_logprobs=[lp.logprob for lp in items],
        top_logprobs=[dict(lp.top) for lp in items],
        text_offset=offsets,
    )


def _doc_references(references: list[Reference] | None) -> list[p.DocReference] | None:
    return None if references is None else [p.DocReference.of(r) for r in references]


def _chat_message(reply: ChatReply) -> p.ChatMessage:
    """The assistant message of a finished reply (``content`` is ``null`` when the reply
    is only tool calls)."""
    calls = [p.ToolCall.model_validate(call) for call in reply.tool_calls] or None
    return p.ChatMessage(
        content=None if calls and not reply.content else reply.content,
        reasoning_content=reply.reasoning,
        tool_calls=calls,
    )


def _chat_delta(delta: ReplyDelta) -> p.ChatDelta:
    """One streamed piece: answer text, reasoning text and tool-call deltas, each only
    when it carries something."""
    calls = [
        p.ToolCallDelta(
            index=call["index"],
            id=call.get("id"),
            type=call.get("type"),
            function=p.FunctionCallDelta(**call["function"]) if call.get("function") else None,
        )
        for call in delta.tool_calls
    ]
    return p.ChatDelta(
        content=delta.content or None,
        reasoning_content=delta.reasoning or None,
        tool_calls=calls or None,
    )


def _usage(job: Job, reply: ChatReply | None = None) -> p.Usage:
    """The job's token counts; with a chat ``reply``, how many of them reasoned too."""
    assert job.result is not None
    usage = job.result.usage
    details = None
    if reply is not None:
        details = p.CompletionTokensDetails(reasoning_tokens=reply.reasoning_tokens)
    return p.Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
        completion_tokens_details=details,
    )


@dataclass
class ChatRun:
    """A submitted chat: its job (events, result), the excerpts it cites, its logprobs,
    and its plan (:class:`~fireside.chat.reply.ChatPlan`), which reads the job's text back
    as answer, reasoning and tool calls."""

    job: Job
    references: list[Reference] | None
    top_logprobs: int | None
    plan: ChatPlan
    reply: ChatReply | None = None
    """The whole reply, once :meth:`collect` or :meth:`deltas` has read it to the end."""

    async def collect(self, request: Request) -> tuple[ChatReply, list[TokenLogprob]] | None:
        """The whole reply and its logprobs, or ``None`` when the client disconnected
        first (the job is then cancelled)."""
        reader = self.plan.reader()
        collected = await collect(
            self.job, request, lambda chunk: reader.feed(chunk.text, len(chunk.tokens))
        )
        if collected is None:
            return None
        _, logprobs = collected
        reader.finish()
        self.reply = reader.reply
        assert self.reply is not None
        return self.reply, logprobs

    async def deltas(
        self, *, stream_calls: bool = False
    ) -> AsyncIterator[tuple[ReplyDelta, list[TokenLogprob]]]:
        """The job's events read as :class:`~fireside.chat.reply.ReplyDelta` (answer,
        reasoning, tool-call deltas), each with its tokens' logprobs; the last, from the
        reader's ``finish``, carries what was held back and every call. Empty deltas
        without logprobs are skipped; :attr:`reply` is set at the end. ``stream_calls``:
        Hermes/Qwen calls in pieces (OpenAI's chat stream), else whole at the end."""
        reader = self.plan.reader(stream_calls=stream_calls)
        async for event in self.job.events():
            delta = reader.feed(event.text, len(event.tokens))
            if delta or event.logprobs:
                yield delta, event.logprobs
        last = reader.finish()
        self.reply = reader.reply
        if last:
            yield last, []


class Service:
    """The model, the engine and the request handlers of one server."""

    def __init__(
        self,
        model: Model,
        engine: Engine,
        config: ServerConfig,
        model_id: str,
        *,
        owns_model: bool,
        docs: DocsService | None = None,
        owns_docs: bool = True,
        answers_to: Callable[[str], bool] | None = None,
    ) -> None:
        self.model = model
        self.docs = docs
        self._owns_docs = owns_docs
        self._answers_to = answers_to  # more names, e.g. the model manager's aliases
        self.core = model.core
        self.engine = engine
        self.config = config
        self.model_id = model_id
        self.created = int(time.time())
        self._names = {model_id, model.name, model.path.name}
        self._owns_model = owns_model
        self._embedder: Embedder | None = None
        self._embedder_lock = threading.Lock()
        limit = engine.n_ctx_seq - 1
        self.max_tokens_limit = min(config.max_tokens or limit, limit)

    def close(self) -> None:
        """Stop the engine and free what this service loaded."""
        self.engine.stop()
        if self.docs is not None and self._owns_docs:
            self.docs.close()
        if self._embedder is not None:
            self._embedder.close()
        if self._owns_model:
            self.model.close()

    # -- checks ------------------------------------------------------------------------

    def check_model(self, name: str) -> None:
        if name in self._names or (self._answers_to is not None and self._answers_to(name)):
            return
        raise APIError(
            404,
            f"The model '{name}' does not exist. This server serves '{self.model_id}'.",
            param="model",
            code="model_not_found",
        )

    def _context(self, n_ctx: int | None) -> int:
        """Tokens a request may use: the slot's context, or less when it asks for less."""
        return self.engine.n_ctx_seq if n_ctx is None else min(n_ctx, self.engine.n_ctx_seq)

    def _max_tokens(self, requested: int | None, n_prompt: int, n_ctx: int | None = None) -> int:
        if requested is not None and requested > self.max_tokens_limit:
            raise bad_request(
                f"max_tokens is {requested}, but this server allows at most "
                f"{self.max_tokens_limit} tokens per completion.",
                param="max_tokens",
            )
        return reply_limit(self._context(n_ctx), n_prompt, requested)

    def _check_prompt(self, n_prompt: int, param: str, n_ctx: int | None = None) -> None:
        context = self._context(n_ctx)
        if not prompt_fits(context, n_prompt):
            raise from_exception(
                ContextLengthError("prompt too long", n_prompt_tokens=n_prompt, n_ctx=context),
                param=param,
            )

    def _sampler(
        self, req: p._GenerationRequest, response_format: Any = None, grammar: str | None = None
    ) -> Any:
        """The job's sampler (with its grammar: ``response_format``'s, or a forced tool
        call's); runs in a worker thread, since a grammar takes a while to build
        (llama.cpp's part runs without the GIL)."""
        forced = grammar is not None
        if grammar is None:
            grammar = self._grammar(response_format)
        options = req.sampling
        try:  # GrammarError (a ValueError) is answered as a response_format error
            params = SamplingParams.of({**options, "grammar": grammar})
            return build_sampler(self.core, params, n_ctx=self.engine.n_ctx_seq)
        except GrammarError as e:
            if forced:
                raise bad_request(
                    f"A forced tool call cannot be built from these tools: {e}", param="tools"
                ) from None
            raise from_exception(e) from None
        except ValueError as e:
            raise from_exception(e) from None

    def _submit(self, job: Job) -> None:
        try:
            self.engine.submit(job)
        except (FiresideError, ValueError) as e:
            raise from_exception(e) from None

    # -- chat --------------------------------------------------------------------------

    def _chat_plan(
        self, req: p.ChatCompletionRequest, references: list[Reference] | None = None
    ) -> tuple[ChatPlan, list[int]]:
        """Check and render ``req`` (through :func:`~fireside.chat.reply.plan_chat`, the
        one place a chat becomes a prompt): its plan and prompt tokens. Each check names
        the field it is about (messages, tools, tool_choice, the reasoning switches)."""
        from fireside.chat.grounding import grounded_messages
        from fireside.chat.messages import validate_messages
        from fireside.chat.reasoning import detect_markers
        from fireside.chat.reply import plan_chat
        from fireside.chat.tools import check_tool_choice, check_tool_messages, check_tools

        try:
            checked = validate_messages(req.messages)
            if any(m.get("tool_calls") or m["role"] == "tool" for m in checked):
                check_tool_messages(checked)  # a tool_call_id must name an earlier call
        except (ValueError, TypeError) as e:
            raise from_exception(e, param="messages") from None
        try:
            tools = check_tools(req.tools)
        except (ValueError, TypeError) as e:
            raise from_exception(e, param="tools") from None
        try:
            check_tool_choice(req.tool_choice, tools)
        except (ValueError, TypeError) as e:
            raise from_exception(e, param="tool_choice") from None
        if references:
            checked = grounded_messages(checked, references)
        template = self.model.chat_template
        think = req.think
        if think is False and detect_markers(template.source) is None:
            think = None  # nothing to turn off (clients send think: false to any model)
        try:
            plan = plan_chat(
                template,
                checked,
                tools=tools,
                tool_choice=req.tool_choice,
                parallel_tool_calls=req.parallel_tool_calls is not False,
                think=think,
                reasoning_effort=req.reasoning_effort,
                reasoning_format=req.reasoning_format or "auto",
                extra=req.chat_template_kwargs,
            )
        except ToolError as e:  # what is left: the template cannot render the tools
            raise from_exception(e, param="tools") from None
        except GrammarError as e:  # a parameter schema the converter cannot enforce
            raise bad_request(
                f"A forced tool call cannot be built from these tools: {e}", param="tools"
            ) from None
        except TemplateError as e:
            raise from_exception(e, param="messages") from None
        except (ValueError, TypeError) as e:  # a thinking switch the template lacks
            param = "think" if req.think is not None else "reasoning_effort"
            raise from_exception(e, param=param) from None
        return plan, self.model.tokenize_rendered(plan.text)

    @staticmethod
    def _grammar(response_format: Any) -> str | None:
        if response_format is None or response_format.type == "text":
            return None
        from fireside.generation.json_schema import json_schema_to_grammar

        schema: Any = {"type": "object"}
        if (
            response_format.type == "json_schema"
            and response_format.json_schema.schema_ is not None
        ):
            schema = response_format.json_schema.schema_
        try:
            return json_schema_to_grammar(schema)
        except ValueError as e:
            raise bad_request(f"Invalid JSON schema: {e}", param="response_format") from None

    async def chat_prompt(
        self, req: p.ChatCompletionRequest
    ) -> tuple[list[int], list[Reference] | None]:
        """The prompt tokens of ``req`` and the excerpts they carry, checked and rendered
        exactly as :meth:`start_chat` renders them (so token counts match its usage)."""
        _, tokens, references = await self._chat_plan_of(req)
        return tokens, references

    async def _chat_plan_of(
        self, req: p.ChatCompletionRequest
    ) -> tuple[ChatPlan, list[int], list[Reference] | None]:
        self.check_model(req.model)
        references = await self._references(req)
        plan, tokens = await anyio.to_thread.run_sync(self._chat_plan, req, references)
        return plan, tokens, references

    async def start_chat(
        self, req: p.ChatCompletionRequest, *, n_ctx: int | None = None
    ) -> ChatRun:
        """Check ``req``, render and submit it: the running job and what it cites.

        The one way into the engine for a chat: ``/v1/chat/completions`` and the other API
        shapes (which build a :class:`~fireside.server.protocol.ChatCompletionRequest` from
        their own requests) read the job's events and result in their own format.
        ``n_ctx`` limits prompt plus completion to fewer tokens than the slot holds.
        """
        self.check_model(req.model)
        if req.stream_options is not None and not req.stream:
            raise bad_request(
                "stream_options is only allowed when stream is true.", param="stream_options"
            )
        if req.top_logprobs is not None and not req.logprobs:
            raise bad_request("top_logprobs requires logprobs to be true.", param="top_logprobs")
        plan, tokens, references = await self._chat_plan_of(req)
        self._check_prompt(len(tokens), "messages", n_ctx)
        requested = req.max_completion_tokens or req.max_tokens
        max_tokens = self._max_tokens(requested, len(tokens), n_ctx)
        response_format = req.response_format
        if plan.grammar is not None and response_format is not None:
            if response_format.type != "text":
                raise bad_request(
                    "response_format cannot be combined with a tool_choice that forces a "
                    "call: the call's own grammar shapes the reply.",
                    param="response_format",
                )
            response_format = None
        sampler = await anyio.to_thread.run_sync(self._sampler, req, response_format, plan.grammar)
        top = (req.top_logprobs or 0) if req.logprobs else None
        # a chat's next request usually continues this one: realign the reply when idle
        job = Job(
            tokens, sampler, max_tokens=max_tokens, stops=req.stops, top_logprobs=top, realign=True
        )
        self._submit(job)
        return ChatRun(job, references, top, plan)

    async def chat(self, request: Request) -> Response:
        """``POST /v1/chat/completions``."""
        req: p.ChatCompletionRequest = await parse_body(request, p.ChatCompletionRequest)
        run = await self.start_chat(req)
        job, references, top = run.job, run.references, run.top_logprobs
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if req.stream:
            return EventStream(
                self._chat_events(run, cid, created, req.include_usage, top is not None),
                job.cancel,
            )
        try:
            collected = await run.collect(request)
        except STREAM_ERRORS as e:  # e.g. a grammar over its budget: the request's fault
            raise from_exception(e) from None
        if collected is None:
            return Response(status_code=499)
        reply, logprobs = collected
        assert job.result is not None
        body = p.ChatCompletion(
            id=cid,
            created=created,
            model=self.model_id,
            choices=[
                p.ChatChoice(
                    message=_chat_message(reply),
                    logprobs=_chat_logprobs(logprobs) if top is not None else None,
                    finish_reason=reply.finish_reason(job.result.finish_reason),
                    references=_doc_references(references),
                )
            ],
            usage=_usage(job, reply),
        )
        return Response(body.model_dump_json(), media_type="application/json")

    async def _chat_events(
        self, run: ChatRun, cid: str, created: int, include_usage: bool, with_logprobs: bool
    ) -> AsyncIterator[str]:
        job = run.job

        def chunk(
            delta: p.ChatDelta,
            finish: str | None = None,
            logprobs: p.ChatLogprobs | None = None,
            cited: list[p.DocReference] | None = None,
        ) -> str:
            choice = p.ChatChunkChoice(
                delta=delta, logprobs=logprobs, finish_reason=finish, references=cited
            )
            return _sse(
                p.ChatCompletionChunk(
                    id=cid, created=created, model=self.model_id, choices=[choice]
                )
            )

        yield chunk(p.ChatDelta(role="assistant", content=""))
        try:
            async for delta, items in run.deltas(stream_calls=True):
                logprobs = _chat_logprobs(items) if with_logprobs and items else None
                yield chunk(_chat_delta(delta), logprobs=logprobs)
        except STREAM_ERRORS as e:  # the headers are sent: report it in the stream
            yield _sse(from_exception(e).body())
            yield _DONE
            return
        assert job.result is not None and run.reply is not None
        yield chunk(
            p.ChatDelta(),
            finish=run.reply.finish_reason(job.result.finish_reason),
            cited=_doc_references(run.references),
        )
        if include_usage:
            yield _sse(
                p.ChatCompletionChunk(
                    id=cid,
                    created=created,
                    model=self.model_id,
                    choices=[],
                    usage=_usage(job, run.reply),
                )
            )
        yield _DONE

    async def _references(self, req: p.ChatCompletionRequest) -> list[Reference] | None:
        """The excerpts for a request with ``docs`` (``None`` without): retrieved for its
        last user message from the served collections, within the slot's budget."""
        if req.docs is None:
            return None
        from fireside.chat.grounding import query_of

        if self.docs is None:  # pragma: no cover - create_app always gives one
            raise APIError(404, "This server serves no document collections.", param="docs")
        grounding = self.docs.grounding(req.docs)
        query = query_of(req.messages)
        if query is None:
            raise bad_request(
                "docs needs a user message with text to search for.", param="messages"
            )

        def count(text: str) -> int:
            return len(self.core.tokenize(text, add_special=False, parse_special=False))

        def retrieve() -> list[Reference]:
            return grounding.retrieve(query, count, n_ctx=self.engine.n_ctx_seq)

        try:
            return await anyio.to_thread.run_sync(retrieve)
        except (FiresideError, ValueError) as e:  # e.g. a collection's embedder is gone
            raise from_exception(e, param="docs") from None

    # -- text completions --------------------------------------------------------------

    def _completion_prompt(self, prompt: Any) -> list[int]:
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], (str, list)):
            if len(prompt) != 1:
                raise bad_request(
                    f"Only one prompt per request is supported, got {len(prompt)}.",
                    param="prompt",
                )
            prompt = prompt[0]
        if isinstance(prompt, str):
            tokens = self.core.tokenize(prompt, add_special=True, parse_special=True)
        else:
            n_vocab = self.core.n_vocab
            bad = next((t for t in prompt if not 0 <= t < n_vocab), None)
            if bad is not None:
                raise bad_request(
                    f"The prompt contains {bad}, which is not a token id (0..{n_vocab - 1}).",
                    param="prompt",
                )
            tokens = list(prompt)
        if not tokens:
            raise bad_request("The prompt is empty.", param="prompt")
        return tokens

    async def start_completion(self, req: p.CompletionRequest, *, n_ctx: int | None = None) -> Job:
        """Check ``req``, tokenize its prompt (no template) and submit it: the running job.

        The one way into the engine for a raw prompt, as :meth:`start_chat` is for a chat.
        """
        self.check_model(req.model)
        if req.stream_options is not None and not req.stream:
            raise bad_request(
                "stream_options is only allowed when stream is true.", param="stream_options"
            )
        tokens = await anyio.to_thread.run_sync(self._completion_prompt, req.prompt)
        self._check_prompt(len(tokens), "prompt", n_ctx)
        max_tokens = self._max_tokens(req.max_tokens, len(tokens), n_ctx)
        sampler = await anyio.to_thread.run_sync(self._sampler, req)
        job = Job(
            tokens, sampler, max_tokens=max_tokens, stops=req.stops, top_logprobs=req.logprobs
        )
        self._submit(job)
        return job

    async def completion(self, request: Request) -> Response:
        """``POST /v1/completions``."""
        req: p.CompletionRequest = await parse_body(request, p.CompletionRequest)
        job = await self.start_completion(req)
        cid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        if req.stream:
            return EventStream(
                self._completion_events(job, cid, created, req.include_usage), job.cancel
            )
        try:
            collected = await collect(job, request)
        except STREAM_ERRORS as e:  # e.g. a grammar over its budget: the request's fault
            raise from_exception(e) from None
        if collected is None:
            return Response(status_code=499)
        text, logprobs = collected
        assert job.result is not None
        body = p.Completion(
            id=cid,
            created=created,
            model=self.model_id,
            choices=[
                p.CompletionChoice(
                    text=text,
                    logprobs=_completion_logprobs(logprobs, 0)
                    if req.logprobs is not None
                    else None,
                    finish_reason=OPENAI_FINISH_REASON[job.result.finish_reason],
                )
            ],
            usage=_usage(job),
        )
        return Response(body.model_dump_json(), media_type="application/json")

    async def _completion_events(
        self, job: Job, cid: str, created: int, include_usage: bool
    ) -> AsyncIterator[str]:
        def chunk(text: str, finish: str | None = None, logprobs: Any = None) -> str:
            choice = p.CompletionChoice(text=text, logprobs=logprobs, finish_reason=finish)
            return _sse(
                p.Completion(id=cid, created=created, model=self.model_id, choices=[choice])
            )

        offset = 0
        try:
            async for event in job.events():
                logprobs = None
                if job.top_logprobs is not None:
                    logprobs = _completion_logprobs(event.logprobs, offset)
                offset += len(event.text)
                yield chunk(event.text, logprobs=logprobs)
        except STREAM_ERRORS as e:  # the headers are sent: report it in the stream
            yield _sse(from_exception(e).body())
            yield _DONE
            return
        assert job.result is not None
        yield chunk("", finish=OPENAI_FINISH_REASON[job.result.finish_reason])
        if include_usage:
            yield _sse(
                p.Completion(
                    id=cid, created=created, model=self.model_id, choices=[], usage=_usage(job)
                )
            )
        yield _DONE

    # -- embeddings --------------------------------------------------------------------

    def _get_embedder(self) -> Embedder:
        with self._embedder_lock:
            if self._embedder is None:
                from fireside.embeddings import Embedder

                self._embedder = Embedder(self.model)
            return self._embedder

    def embedding_width(self) -> int:
        """The embeddings' dimensions (loads the embedder on first use; blocks)."""
        return self._get_embedder().n_embd

    def embed_texts(
        self, texts: list[Any], *, truncate: bool = False, normalize: bool = True
    ) -> tuple[Any, int]:
        """The vectors of ``texts`` (one row each) and the tokens they took (blocks: call
        it in a worker thread). A text over the embedder's limit is a 400, or cut to the
        limit with ``truncate``."""
        embedder = self._get_embedder()
        n_tokens = 0
        for i, text in enumerate(texts):
            n = len(self.core.tokenize(text, add_special=True))
            if truncate:
                n = min(n, embedder.max_text_tokens)
            elif n > embedder.max_text_tokens:
                raise APIError(
                    400,
                    f"input[{i}] has {n} tokens, but this model embeds at most "
                    f"{embedder.max_text_tokens} tokens per input. Please shorten it.",
                    param="input",
                    code="context_length_exceeded",
                )
            n_tokens += n
        try:
            vectors = embedder.embed(texts, normalize=normalize)
        except (ValueError, TypeError) as e:
            raise from_exception(e, param="input") from None
        return vectors, n_tokens

    async def embeddings(self, request: Request) -> Response:
        """``POST /v1/embeddings``."""
        req: p.EmbeddingRequest = await parse_body(request, p.EmbeddingRequest)
        self.check_model(req.model)
        texts = [req.input] if isinstance(req.input, str) else req.input
        if not texts:
            raise bad_request("input must not be empty.", param="input")
        if not all(isinstance(t, str) for t in texts):
            raise bad_request(
                "Token-id input is not supported by this server; send the text itself.",
                param="input",
            )
        if len(texts) > self.config.max_embedding_inputs:
            raise bad_request(
                f"input has {len(texts)} items; at most {self.config.max_embedding_inputs} "
                "are allowed per request.",
                param="input",
            )
        for i, text in enumerate(texts):
            if not text:
                raise bad_request(f"input[{i}] is empty.", param="input")
        width = (await anyio.to_thread.run_sync(self._get_embedder)).n_embd
        if req.dimensions is not None and req.dimensions != width:
            raise bad_request(
                f"dimensions is {req.dimensions}, but this model's embeddings have {width} "
                "dimensions (they cannot be shortened).",
                param="dimensions",
            )
        vectors, n_tokens = await anyio.to_thread.run_sync(self.embed_texts, texts)
        data = []
        for i, vector in enumerate(vectors):
            embedding: list[float] | str
            if req.encoding_format == "base64":
                embedding = base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
            else:
                embedding = vector.tolist()
            data.append(p.EmbeddingData(index=i, embedding=embedding))
        body = p.EmbeddingList(
            data=data,
            model=self.model_id,
            usage=p.EmbeddingUsage(prompt_tokens=n_tokens, total_tokens=n_tokens),
        )
        return Response(body.model_dump_json(), media_type="application/json")

    # -- models, health, metrics -------------------------------------------------------

    def model_card(self) -> p.ModelCard:
        return p.ModelCard(id=self.model_id, created=self.created)

    def health(self) -> tuple[int, dict[str, Any]]:
        engine = self.engine
        ok = engine.running
        return (200 if ok else 503), {
            "status": "ok" if ok else "error",
            "model": self.model_id,
            "slots_total": engine.parallel,
            "slots_active": engine.active_slots,
            "queue_depth": engine.queue_depth,
        }

    def metrics_text(self) -> str:
        engine = self.engine
        return engine.metrics.render(
            queue_depth=engine.queue_depth,
            slots_active=engine.active_slots,
            slots_total=engine.parallel,
        )


def default_model_id(model: str | os.PathLike[str], path: os.PathLike[str] | str) -> str:
    """The id clients use: the catalog name given, else the file name without ``.gguf``."""
    name = os.fspath(model)
    if os.path.exists(name):
        return os.path.basename(os.fspath(path)).removesuffix(".gguf")
    return name
