"""The public :class:`Model`: a GGUF model loaded with good defaults, ready to generate,
chat and embed.

A Model composes small parts: the native model (:attr:`Model.core`), the generation
:class:`~fireside.generation.engine.Engine` (one context with ``n_parallel`` sequences),
the model's :class:`~fireside.chat.templates.ChatTemplate`, and an
:class:`~fireside.embeddings.Embedder` created on first use.

**Threads.** One Model may be shared by any number of threads. With ``n_parallel=1`` (the
default) generations take turns: each holds the model's one sequence from its first token
until it ends (a streaming iterator until it is exhausted, closed or garbage-collected) and
the others wait. With ``n_parallel=N``, up to N generations from different threads run in
the same decode steps, like N clients of the server; each sequence has ``n_ctx`` tokens of
KV cache, so the cache takes N times the memory.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from fireside import _core
from fireside.chat.reasoning import ReasoningFormat
from fireside.chat.reply import ChatReply, ToolChoiceSpec, plan_chat
from fireside.chat.reply_stream import ChatStream
from fireside.chat.template_pool import shared_pool
from fireside.chat.templates import ChatTemplate
from fireside.chat.tools import ToolLike
from fireside.defaults import default_n_ctx, kv_bytes_per_token
from fireside.errors import ClosedError, ContextLengthError
from fireside.generation.context_room import prompt_fits, reply_limit, reply_reserve
from fireside.generation.draft import check_vocabulary
from fireside.generation.engine import CacheStats, Engine
from fireside.generation.results import GenerationResult
from fireside.generation.sampling import SamplingOptions, SamplingParams, build_sampler
from fireside.generation.stream import (
    GenerationStream,
    StreamRequest,
    TokenCallback,
    aiterate,
    end_unfinished,
)
from fireside.generation.threads import (
    AUTO,
    ThreadPolicy,
    ThreadSetting,
    ThreadStats,
    check_threads,
)
from fireside.model_path import resolve_model_path
from fireside.placement import gpu_layers, pick_devices
from fireside.rpc import connect, split_endpoints

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from typing_extensions import Self, Unpack

    from fireside.chat.grounding import DocsSpec, Grounding
    from fireside.chat.session import ChatSession
    from fireside.embeddings import Embedder

Prompt = str | Sequence[int]
"""A prompt: text (special tokens such as ``<|im_start|>`` are parsed) or token ids."""


class Model:
    """A local large language model (a GGUF file or a catalog name).

    Args:
        model: path of a ``.gguf`` file, or a catalog name (downloaded when needed).
        n_ctx: context size in tokens. Default: the model's trained context, capped to
            what suits this machine (see :mod:`fireside.defaults`).
        n_threads: CPU threads: a number (used as given), or ``"auto"`` (the default;
            ``None`` means the same): up to the physical cores, fewer while other
            processes keep cores busy, chosen as generation runs (see
            :mod:`fireside.generation.threads`).
        n_gpu_layers: layers to offload to a GPU (-1: all). Default: all when a GPU is
            available and this build can offload, else none.
        device: ``"cpu"``, ``"gpu"`` or a device name from :func:`fireside._core.devices`.
        rpc_servers: ggml RPC workers (``"host:port"``, a list or a comma-separated
            string) to spread the model's layers across, with ``n_gpu_layers`` (default:
            all) deciding how many leave this machine; see :mod:`fireside.rpc`. An
            unreachable worker raises :class:`~fireside.errors.RemoteDeviceError` within a
            few seconds, and so does a generation whose worker is lost.
        seed: makes generations reproducible: each generation without its own ``seed``
            draws one from a generator seeded with this.
        chat_template: a Jinja template or a built-in template name overriding the model's.
        embedding: the model is used for embeddings only (no generation context is
            created until one is needed).
        verbose: show llama.cpp's informational log messages.
        use_mmap: memory-map the weights (fast loads, shared pages).
        progress: a callable ``progress(fraction)`` called while loading (return ``False``
            to cancel); ``True``/``False`` shows or hides a download progress bar.
        n_batch: the most prompt tokens evaluated in one decode.
        n_parallel: generations that run together, from different threads, in shared
            decode steps (default 1: they take turns). Each has its own ``n_ctx`` tokens
            of KV cache, so the cache takes ``n_parallel`` times the memory of one.
        speculative: draft tokens ahead (by prompt lookup: the continuation of the
            longest recent n-gram match in the prompt and the output) and verify them in
            one decode; the output is the same either way, answers that quote their
            input come faster where verifying several tokens costs little more than one
            (measured as it runs; see :mod:`fireside.generation.speculative`). ``False``
            turns it off; ``"always"`` drafts whenever a draft is likely to be accepted,
            whatever the measured cost.
        draft_model: a smaller model with the same vocabulary (a path or catalog name)
            that drafts instead of prompt lookup (loaded like this one, with its own KV
            cache of ``n_parallel`` sequences); another vocabulary raises
            :class:`~fireside.errors.VocabularyMismatchError`.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        n_ctx: int | None = None,
        n_threads: ThreadSetting | None = AUTO,
        n_gpu_layers: int | None = None,
        device: str | None = None,
        rpc_servers: str | Sequence[str] | None = None,
        seed: int | None = None,
        chat_template: str | None = None,
        embedding: bool = False,
        verbose: bool = False,
        use_mmap: bool = True,
        progress: bool | Callable[[float], object] | None = None,
        n_batch: int = 512,
        n_parallel: int = 1,
        speculative: bool | Literal["always"] = True,
        draft_model: str | os.PathLike[str] | None = None,
    ) -> None:
        if not isinstance(n_parallel, int) or isinstance(n_parallel, bool) or n_parallel < 1:
            raise ValueError(f"n_parallel must be a positive integer, got {n_parallel!r}")
        if not (isinstance(speculative, bool) or speculative == "always"):
            raise ValueError(f'speculative must be True, False or "always", got {speculative!r}')
        if draft_model is not None and not speculative:
            raise ValueError('draft_model needs speculative=True (or "always")')
        if n_ctx is not None and (not isinstance(n_ctx, int) or n_ctx < 1):
            raise ValueError(f"n_ctx must be a positive integer or None, got {n_ctx!r}")
        threads = check_threads(AUTO if n_threads is None else n_threads)
        if not isinstance(n_batch, int) or n_batch < 1:
            raise ValueError(f"n_batch must be a positive integer, got {n_batch!r}")
        if n_gpu_layers is not None and (not isinstance(n_gpu_layers, int) or n_gpu_layers < -1):
            raise ValueError(f"n_gpu_layers must be -1 (all), 0 or more, got {n_gpu_layers!r}")
        if verbose:
            _core.set_log_level(logging.INFO)
        endpoints = split_endpoints(rpc_servers)
        remote = [d.name for d in connect(endpoints)] if endpoints else []
        devices, gpu = pick_devices(device, remote)
        n_gpu_layers = gpu_layers(n_gpu_layers, gpu)
        download_progress = progress if isinstance(progress, bool) else True
        self._path = resolve_model_path(model, progress=download_progress)
        load: dict[str, Any] = {"n_gpu_layers": n_gpu_layers, "use_mmap": use_mmap}
        if devices is not None:
            load["devices"] = devices
        if callable(progress):
            load["progress"] = progress
        # the chat template is checked in a worker process once the model has loaded:
        # start the process now (if there is none yet), while llama.cpp loads
        shared_pool().prewarm()
        self._core = _core.Model(self._path, **load)
        self._closed = False
        self._parts_lock = threading.Lock()  # creates the parts made on first use
        self._embedder: Embedder | None = None
        self._engine: Engine | None = None
        self._n_parallel = n_parallel
        self._speculative = speculative
        self._draft: _core.Model | None = None
        try:
            core = self._core
            if draft_model is not None:
                self._draft = _core.Model(
                    resolve_model_path(draft_model, progress=download_progress), **load
                )
                check_vocabulary(core, self._draft, draft_name=str(draft_model))
            kv = kv_bytes_per_token(core.n_layer, core.n_embd, core.n_head, core.n_head_kv)
            self._n_ctx = n_ctx or default_n_ctx(core.n_ctx_train, kv)
            self._policy = ThreadPolicy(threads)  # the one place that picks the count
            self._n_threads = self._policy.max_threads
            self._n_batch = min(n_batch, self._n_ctx)
            self._seeds = random.Random(seed) if seed is not None else None
            self._template = ChatTemplate.for_model(core, chat_template)
            if not embedding:
                self._engine = self._new_engine()
        except BaseException:
            if self._draft is not None:
                self._draft.close()
            self._core.close()
            raise

    def _new_engine(self) -> Engine:
        return Engine(
            self._core,
            n_seq=self._n_parallel,
            n_ctx_seq=self._n_ctx,
            n_batch=self._n_batch,
            policy=self._policy,
            speculative=self._speculative,
            draft=self._draft,
        )

    # -- properties ------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The GGUF file."""
        return self._path

    @property
    def name(self) -> str:
        """The file name without ``.gguf`` (used as the model name in chat responses)."""
        return self._path.name.removesuffix(".gguf")

    @property
    def core(self) -> _core.Model:
        """The native model (for the server and other advanced uses)."""
        return self._core

    @property
    def n_ctx(self) -> int:
        """The context size in tokens (prompt plus generated tokens)."""
        return self._n_ctx

    @property
    def n_parallel(self) -> int:
        """Generations that can run together (sequences of the engine's context)."""
        return self._n_parallel

    @property
    def n_threads(self) -> int:
        """CPU threads generating now (with ``n_threads="auto"`` they follow the load)."""
        return self._policy.n_threads

    @property
    def thread_stats(self) -> ThreadStats:
        """What the thread policy did: counts in use, changes, probes (a snapshot)."""
        return self._policy.stats()

    @property
    def chat_template(self) -> ChatTemplate:
        """The chat template :meth:`chat` and chat sessions use."""
        return self._template

    @property
    def metadata(self) -> dict[str, str]:
        """The GGUF metadata (key/value strings)."""
        return self._core.metadata

    @property
    def stats(self) -> CacheStats:
        """Counters of evaluated and reused prompt tokens and of decode steps (see
        :class:`~fireside.generation.engine.CacheStats`)."""
        return CacheStats() if self._engine is None else self._engine.stats

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"n_ctx={self._n_ctx}, n_threads={self._n_threads}"
        return f"Model({self.name!r}, {state})"

    # -- tokens ----------------------------------------------------------------------

    def tokenize(
        self, text: str, *, add_special: bool = True, parse_special: bool = False
    ) -> list[int]:
        """Token ids of ``text`` (``add_special``: BOS/EOS as the model wants;
        ``parse_special``: turn special-token text such as ``<|im_end|>`` into its token)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return self._live().tokenize(text, add_special=add_special, parse_special=parse_special)

    def detokenize(self, tokens: Sequence[int], *, special: bool = False) -> str:
        """The text of ``tokens`` (``special``: include the text of control tokens)."""
        ids = self._check_tokens(tokens, "tokens")
        data = self._live().detokenize(ids, unparse_special=special)
        return data.decode("utf-8", errors="replace")

    def count_tokens(self, text: str, *, add_special: bool = False) -> int:
        """How many tokens ``text`` takes (without BOS/EOS unless ``add_special``)."""
        return len(self.tokenize(text, add_special=add_special))

    def apply_chat_template(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        add_generation_prompt: bool = True,
        tokenize: bool = False,
        tools: Sequence[ToolLike] | None = None,
        template: ChatTemplate | None = None,
        think: bool | None = None,
    ) -> str | list[int]:
        """Render ``messages`` with the chat template (text, or token ids if ``tokenize``),
        as :meth:`chat` renders them: ``tools`` through the template's own ``tools``
        variable, ``think`` as its thinking switch (see :mod:`fireside.chat.reply`)."""
        plan = plan_chat(
            template or self._template,
            messages,
            tools=tools,
            think=think,
            add_generation_prompt=add_generation_prompt,
        )
        return self.tokenize_rendered(plan.text) if tokenize else plan.text

    def tokenize_rendered(self, text: str) -> list[int]:
        """Tokens of a rendered chat prompt: special tokens parsed, one BOS (if the model
        wants one) even when the template already wrote it."""
        core = self._live()
        tokens = core.tokenize(text, add_special=False, parse_special=True)
        if core.add_bos and core.bos >= 0 and (not tokens or tokens[0] != core.bos):
            tokens.insert(0, core.bos)
        return tokens

    # -- generation ------------------------------------------------------------------

    @overload
    def generate(
        self,
        prompt: Prompt,
        *,
        max_tokens: int | None = 256,
        stop: str | Sequence[str] | None = None,
        json_schema: dict[str, Any] | None = None,
        logprobs: int | None = None,
        stream: Literal[False] = False,
        truncate: bool = False,
        **sampling: Unpack[SamplingOptions],
    ) -> GenerationResult: ...

    @overload
    def generate(
        self,
        prompt: Prompt,
        *,
        max_tokens: int | None = 256,
        stop: str | Sequence[str] | None = None,
        json_schema: dict[str, Any] | None = None,
        logprobs: int | None = None,
        stream: Literal[True],
        truncate: bool = False,
        **sampling: Unpack[SamplingOptions],
    ) -> GenerationStream: ...

    def generate(
        self,
        prompt: Prompt,
        *,
        max_tokens: int | None = 256,
        stop: str | Sequence[str] | None = None,
        json_schema: dict[str, Any] | None = None,
        logprobs: int | None = None,
        stream: bool = False,
        truncate: bool = False,
        **sampling: Unpack[SamplingOptions],
    ) -> GenerationResult | GenerationStream:
        """Continue ``prompt``.

        ``stream=False`` returns a :class:`GenerationResult` (text, tokens,
        ``finish_reason`` ``"eos"``/``"stop"``/``"length"``/``"cancelled"``, usage,
        timings); ``stream=True`` a :class:`GenerationStream` of text chunks (its
        ``result`` is set when it ends). ``sampling``: the options of
        :class:`~fireside.generation.sampling.SamplingParams` (``temperature``, ``top_k``,
        ``top_p``, ``min_p``, ``typical_p``, penalties, ``seed``, ``mirostat*``, ``dry_*``,
        ``logit_bias``, ``grammar``), with its defaults and ranges. ``temperature=0`` is
        greedy; the same ``seed`` gives the same output. ``stop`` strings end the generation and are never part of
        the text. ``grammar`` (GBNF) or ``json_schema`` constrain the output. ``logprobs=N``
        records each token's log-probability and its N best alternatives. A prompt that
        does not fit the context raises :class:`~fireside.errors.ContextLengthError` unless
        ``truncate`` (keep its end); ``max_tokens`` (``None``: until the context is full)
        is capped by the room left in the context.
        """
        params = self.sampling_params(json_schema=json_schema, **sampling)
        gen = self.start(
            prompt, params, max_tokens=max_tokens, stop=stop, logprobs=logprobs, truncate=truncate
        )
        return gen if stream else gen.drain()

    @overload
    async def agenerate(
        self,
        prompt: Prompt,
        *,
        stream: Literal[False] = False,
        **options: Any,
    ) -> GenerationResult: ...

    @overload
    async def agenerate(
        self, prompt: Prompt, *, stream: Literal[True], **options: Any
    ) -> AsyncIterator[str]: ...

    async def agenerate(
        self, prompt: Prompt, *, stream: bool = False, **options: Any
    ) -> GenerationResult | AsyncIterator[str]:
        """Async :meth:`generate` (same options). The token loop runs in a worker thread;
        cancelling the awaiting task, or leaving the ``async for``, stops the generation.

        ``await model.agenerate(p)`` gives a :class:`GenerationResult`;
        ``async for chunk in await model.agenerate(p, stream=True)`` streams text.
        """
        gen = self.generate(prompt, stream=True, **options)
        if stream:
            return aiterate(gen)
        async for _ in aiterate(gen):
            pass
        result = gen.result
        if result is None:  # pragma: no cover - aiterate re-raises the generator's errors
            raise RuntimeError("the generation ended without a result")
        return result

    def sampling_params(
        self,
        *,
        json_schema: dict[str, Any] | None = None,
        **sampling: Unpack[SamplingOptions],
    ) -> SamplingParams:
        """Validated sampling settings (see :class:`SamplingParams` for the options, their
        defaults and ranges; ``ValueError`` names a bad value, ``TypeError`` an unknown
        name); ``json_schema`` becomes a grammar; without ``seed``, the model's seed
        sequence (if any) gives one."""
        options: dict[str, Any] = dict(sampling)
        if json_schema is not None:
            if options.get("grammar") is not None:
                raise ValueError("give grammar= or json_schema=, not both")
            from fireside.generation.json_schema import json_schema_to_grammar

            if not isinstance(json_schema, Mapping):
                raise TypeError(f"json_schema must be a dict, got {type(json_schema).__name__}")
            options["grammar"] = json_schema_to_grammar(dict(json_schema))
        if options.get("seed") is None and self._seeds is not None:
            options["seed"] = self._seeds.getrandbits(32)
        return SamplingParams.of(options)

    def start(
        self,
        prompt: Prompt,
        params: SamplingParams,
        *,
        max_tokens: int | None = 256,
        stop: str | Sequence[str] | None = None,
        logprobs: int | None = None,
        truncate: bool = False,
        callback: TokenCallback | None = None,
        realign: bool = False,
    ) -> GenerationStream:
        """A stream continuing ``prompt`` (text or token ids) with these sampling settings.

        The building block of :meth:`generate`, :meth:`chat` and chat sessions.
        ``callback(token_id, text)`` runs after each emitted chunk; ``False`` stops.
        ``realign``: the next prompt will likely continue this one (a chat), so the reply
        is evaluated again as whole prompt chunks once the model is idle, for the next
        prompt to reuse (:attr:`fireside.generation.engine.Engine.realign_pending`).
        """
        engine = self._generation_engine()
        if max_tokens is not None and (
            not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 0
        ):
            raise ValueError(
                f"max_tokens must be a non-negative integer or None, got {max_tokens!r}"
            )
        stops = _check_stops(stop)
        top = _check_logprobs(logprobs)
        tokens = self.fit_prompt(self._prompt_tokens(prompt), max_tokens, truncate=truncate)
        limit = reply_limit(self._n_ctx, len(tokens), max_tokens)
        sampler = build_sampler(self._core, params, n_ctx=self._n_ctx)
        request = StreamRequest(
            tokens, sampler, max_tokens=limit, stops=stops, top_logprobs=top, realign=realign
        )
        return GenerationStream(engine, request, callback)

    def fit_prompt(self, tokens: list[int], max_tokens: int | None, *, truncate: bool) -> list[int]:
        """``tokens`` if they leave room for a token in the context; else, with
        ``truncate``, their end (keeping a leading BOS) leaving room for ``max_tokens``
        (at most half the context); else :class:`~fireside.errors.ContextLengthError`."""
        n_ctx = self._n_ctx
        if prompt_fits(n_ctx, len(tokens)):
            return tokens
        if not truncate:
            raise ContextLengthError(
                f"the prompt has {len(tokens)} tokens but the context holds {n_ctx} "
                "(with room for at least one new token); shorten it, pass truncate=True, "
                "or load the model with a larger n_ctx",
                n_prompt_tokens=len(tokens),
                n_ctx=n_ctx,
            )
        keep = n_ctx - reply_reserve(n_ctx, max_tokens)
        bos = self._core.bos
        if bos >= 0 and tokens[0] == bos:
            return [bos, *tokens[len(tokens) - keep + 1 :]]
        return tokens[len(tokens) - keep :]

    def cancel(self) -> None:
        """Stop the generation running now, from any thread: a prompt evaluation in
        progress is interrupted; the result's ``finish_reason`` is ``"cancelled"``."""
        if self._engine is not None:
            self._engine.cancel_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until the model has no work left: no generation running and no chat reply
        still being evaluated again for the next turn to reuse (done in the background
        after each chat turn, interrupted by any new request); ``True`` when idle,
        ``False`` after ``timeout`` seconds (``None``: no limit). A stream generates to its
        end (or until it is closed or cancelled) whether or not it is read."""
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0
        ):
            raise ValueError(f"timeout must be a number of seconds >= 0 or None, got {timeout!r}")
        return self._generation_engine().wait_realigned(timeout)

    def reset(self) -> None:
        """Forget the KV cache (the next prompt is evaluated from scratch); ends a stream
        this thread left unfinished."""
        engine = self._generation_engine()
        end_unfinished(engine)
        engine.reset()

    # -- chat ------------------------------------------------------------------------

    @overload
    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        stream: Literal[False] = False,
        max_tokens: int | None = None,
        stop: str | Sequence[str] | None = None,
        logprobs: int | None = None,
        truncate: bool = False,
        tools: Sequence[ToolLike] | None = None,
        tool_choice: ToolChoiceSpec = None,
        parallel_tool_calls: bool = True,
        think: bool | None = None,
        reasoning_effort: str | None = None,
        reasoning_format: ReasoningFormat = "auto",
        json_schema: dict[str, Any] | None = None,
        **sampling: Unpack[SamplingOptions],
    ) -> dict[str, Any]: ...

    @overload
    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        stream: Literal[True],
        max_tokens: int | None = None,
        stop: str | Sequence[str] | None = None,
        logprobs: int | None = None,
        truncate: bool = False,
        tools: Sequence[ToolLike] | None = None,
        tool_choice: ToolChoiceSpec = None,
        parallel_tool_calls: bool = True,
        think: bool | None = None,
        reasoning_effort: str | None = None,
        reasoning_format: ReasoningFormat = "auto",
        json_schema: dict[str, Any] | None = None,
        **sampling: Unpack[SamplingOptions],
    ) -> Iterator[dict[str, Any]]: ...

    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        stream: bool = False,
        max_tokens: int | None = None,
        stop: str | Sequence[str] | None = None,
        logprobs: int | None = None,
        truncate: bool = False,
        tools: Sequence[ToolLike] | None = None,
        tool_choice: ToolChoiceSpec = None,
        parallel_tool_calls: bool = True,
        think: bool | None = None,
        reasoning_effort: str | None = None,
        reasoning_format: ReasoningFormat = "auto",
        json_schema: dict[str, Any] | None = None,
        **sampling: Unpack[SamplingOptions],
    ) -> dict[str, Any] | Iterator[dict[str, Any]]:
        """Answer OpenAI-style ``messages`` (``[{"role": ..., "content": ...}]``).

        Returns an OpenAI ``chat.completion`` dict, or with ``stream=True`` an iterator of
        ``chat.completion.chunk`` dicts (the last one carries ``finish_reason`` and
        ``usage``). ``finish_reason`` is ``"stop"`` (end of turn or a stop string),
        ``"tool_calls"``, ``"length"`` or ``"cancelled"``. ``sampling`` and ``json_schema``
        are :meth:`generate`'s; ``max_tokens=None`` runs until the end of the turn or of
        the context.

        **Tools**: ``tools`` (OpenAI-shaped definitions or Python functions) are shown to
        the model by its chat template; the reply's calls come back as
        ``message["tool_calls"]`` (ids, names, arguments as JSON text) with
        ``finish_reason="tool_calls"``; answer them with ``{"role": "tool",
        "tool_call_id": ..., "content": ...}`` messages. ``tool_choice``: ``"auto"``,
        ``"none"``, ``"required"`` or ``{"type": "function", "function": {"name": ...}}``
        (the last two force a call by grammar, with arguments valid for the schema);
        ``parallel_tool_calls=False`` allows one call.

        **Reasoning**: a thinking model's reasoning is ``message["reasoning_content"]``
        (and ``delta["reasoning_content"]`` when streaming), never part of ``content``
        unless ``reasoning_format="none"``; ``think``/``reasoning_effort`` set the
        template's switches. See :mod:`fireside.chat.reply`.
        """
        plan = plan_chat(
            self._template,
            messages,
            tools=tools,
            tool_choice=tool_choice,
            parallel_tool_calls=parallel_tool_calls,
            think=think,
            reasoning_effort=reasoning_effort,
            reasoning_format=reasoning_format,
        )
        options = plan.sampling_options(sampling, json_schema=json_schema)
        params = self.sampling_params(json_schema=json_schema, **options)
        gen = self.start(
            self.tokenize_rendered(plan.text),
            params,
            max_tokens=max_tokens,
            stop=stop,
            logprobs=logprobs,
            truncate=truncate,
            realign=True,
        )
        reply = ChatStream(gen, plan, stream_calls=stream)
        if stream:
            return chat_chunks(reply, self.name)
        return chat_completion(reply.drain(), self.name)

    def chat_session(
        self,
        system_prompt: str | None = None,
        *,
        overflow: Literal["truncate", "error"] = "truncate",
        chat_template: str | ChatTemplate | None = None,
        docs: DocsSpec | Grounding | None = None,
        docs_k: int | None = None,
        docs_max_tokens: int | None = None,
    ) -> ChatSession:
        """A :class:`~fireside.chat.session.ChatSession` on this model.

        ``docs``: LocalDocs collections (or their names) to ground each reply in; the reply's
        ``references`` cite the excerpts used (see :mod:`fireside.chat.grounding`).
        """
        from fireside.chat.session import ChatSession

        return ChatSession(
            self,
            system_prompt,
            overflow=overflow,
            chat_template=chat_template,
            docs=docs,
            docs_k=docs_k,
            docs_max_tokens=docs_max_tokens,
        )

    # -- embeddings ------------------------------------------------------------------

    def embed(
        self,
        texts: str | Sequence[str],
        *,
        normalize: bool = True,
        pooling: str | None = None,
        long_text: Literal["truncate", "average"] = "truncate",
    ) -> npt.NDArray[np.float32]:
        """Embedding vectors: shape ``(len(texts), n_embd)``, or ``(n_embd,)`` for one str.

        See :meth:`fireside.embeddings.Embedder.embed`.
        """
        self._live()
        with self._parts_lock:
            if self._embedder is None:
                from fireside.embeddings import Embedder

                self._embedder = Embedder(self._core, n_threads=self._n_threads)
        return self._embedder.embed(
            texts, normalize=normalize, pooling=pooling, long_text=long_text
        )

    # -- lifetime --------------------------------------------------------------------

    def close(self) -> None:
        """Free the model's memory; a running generation is cancelled. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._engine is not None:
            self._engine.close()
        if self._embedder is not None:
            self._embedder.close()
        if self._draft is not None:
            self._draft.close()
        self._core.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ---------------------------------------------------------------------

    def _live(self) -> _core.Model:
        if self._closed:
            raise ClosedError(f"the model {self.name!r} is closed")
        return self._core

    def _generation_engine(self) -> Engine:
        self._live()
        with self._parts_lock:
            if self._engine is None:  # loaded with embedding=True
                self._engine = self._new_engine()
        return self._engine

    def _check_tokens(self, tokens: object, what: str) -> list[int]:
        if isinstance(tokens, (str, bytes)) or not isinstance(tokens, Sequence):
            raise TypeError(f"{what} must be a sequence of token ids, got {type(tokens).__name__}")
        ids = list(tokens)
        n_vocab = self._live().n_vocab
        if not ids or (all(type(t) is int for t in ids) and min(ids) >= 0 and max(ids) < n_vocab):
            return ids  # the common case, checked at C speed
        for i, token in enumerate(ids):
            if not isinstance(token, int) or isinstance(token, bool):
                raise TypeError(f"{what}[{i}] must be an int token id, got {type(token).__name__}")
            if not 0 <= token < n_vocab:
                raise ValueError(f"{what}[{i}] = {token} is not a token id (0..{n_vocab - 1})")
        return ids

    def _prompt_tokens(self, prompt: object) -> list[int]:
        if isinstance(prompt, str):
            tokens = self._live().tokenize(prompt, add_special=True, parse_special=True)
        elif isinstance(prompt, Sequence) and not isinstance(prompt, (bytes, bytearray)):
            tokens = self._check_tokens(prompt, "prompt")
        else:
            raise TypeError(
                f"prompt must be a str or a sequence of token ids, got {type(prompt).__name__}"
            )
        if not tokens:
            raise ValueError("the prompt is empty: it has no tokens to continue from")
        return tokens


def _check_stops(stop: object) -> list[str]:
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, Sequence):
        raise TypeError(f"stop must be a str or a list of str, got {type(stop).__name__}")
    for i, s in enumerate(stops):
        if not isinstance(s, str):
            raise TypeError(f"stop[{i}] must be a str, got {type(s).__name__}")
        if not s:
            raise ValueError(f"stop[{i}] is empty; stop strings must have at least one character")
    return list(stops)


def _check_logprobs(logprobs: object) -> int | None:
    if logprobs is None or logprobs is False:
        return None
    if logprobs is True:
        return 0
    if not isinstance(logprobs, int) or not 0 <= logprobs <= 100:
        raise ValueError(f"logprobs must be an integer in [0, 100] or None, got {logprobs!r}")
    return logprobs


# -- OpenAI-shaped chat responses -------------------------------------------------------


def _usage(result: GenerationResult) -> dict[str, int]:
    usage = result.usage
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def _logprobs_content(result: GenerationResult) -> dict[str, Any] | None:
    if result.logprobs is None:
        return None

    def entry(text: str, logprob: float) -> dict[str, Any]:
        return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}

    content = []
    for lp in result.logprobs:
        item = entry(lp.text, lp.logprob)
        item["top_logprobs"] = [entry(text, value) for text, value in lp.top]
        content.append(item)
    return {"content": content}


def openai_finish_reason(result: GenerationResult) -> str:
    """OpenAI's ``finish_reason`` for a chat reply (:meth:`ChatReply.finish_reason`)."""
    return _reply_of(result).finish_reason(result.finish_reason)


def chat_message(result: GenerationResult) -> dict[str, Any]:
    """The OpenAI assistant ``message`` of a chat reply (:meth:`ChatReply.message`)."""
    return _reply_of(result).message()


def _reply_of(result: GenerationResult) -> ChatReply:
    return ChatReply(result.text, result.reasoning, list(result.tool_calls))


def chat_completion(result: GenerationResult, model_name: str) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` dict for a finished chat reply."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_name,
        "choices": [
            {
                "index": 0,
                "message": chat_message(result),
                "logprobs": _logprobs_content(result),
                "finish_reason": openai_finish_reason(result),
            }
        ],
        "usage": _usage(result),
    }


def chat_chunks(reply: ChatStream, model_name: str) -> Iterator[dict[str, Any]]:
    """OpenAI ``chat.completion.chunk`` dicts for a running chat reply: a first chunk with
    the role, one per piece (``content``, ``reasoning_content`` and ``tool_calls``
    deltas), and a last one with ``finish_reason`` and ``usage``."""
    cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model_name,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    try:
        yield chunk({"role": "assistant", "content": ""})
        for piece in reply.deltas():
            delta: dict[str, Any] = {}
            if piece.reasoning:
                delta["reasoning_content"] = piece.reasoning
            if piece.content:
                delta["content"] = piece.content
            if piece.tool_calls:
                delta["tool_calls"] = piece.tool_calls
            yield chunk(delta)
    finally:
        reply.close()
    result = reply.result
    if result is not None:
        last = chunk({}, openai_finish_reason(result))
        last["usage"] = _usage(result)
        yield last
