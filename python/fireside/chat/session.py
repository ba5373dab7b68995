"""A chat session: the conversation history, rendered through the model's chat template,
with the KV cache reused from one turn to the next.

Each :meth:`ChatSession.send` renders the whole conversation and hands its tokens to the
model, which keeps the longest prefix already in its KV cache and evaluates only the rest
(usually the new user message and the template's markers); ``model.stats`` counts it.

**The reply joins the history when its stream ends.** A reply that is cancelled or broken
off (``break``, ``close()``) is recorded *truncated*: the text produced so far becomes the
assistant turn, so the history always shows what the user saw. A stream that is never
iterated, or that fails with an exception, records nothing.

**Cited answers.** With ``docs=`` (LocalDocs collections), each :meth:`ChatSession.send`
retrieves the excerpts that best match the message and puts them into the rendered prompt
(never into the history); the reply's ``references`` are those excerpts. See
:mod:`fireside.chat.grounding`.

**Tools and reasoning.** ``send(..., tools=...)`` renders the tools with the template and
reads the reply through :mod:`fireside.chat.reply`: the history keeps the assistant's
``tool_calls`` (and its ``reasoning_content``), :meth:`ChatSession.add_tool_result` adds a
``role: "tool"`` answer and ``send(None)`` lets the model go on; :meth:`ChatSession.act`
runs that loop with Python functions (:mod:`fireside.chat.act`).

A session is not thread-safe: send one message at a time (the model itself may be shared).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from fireside.chat.messages import validate_messages
from fireside.chat.reply import ChatPlan, ChatReply, ToolChoiceSpec, plan_chat
from fireside.chat.reply_stream import ChatStream
from fireside.chat.templates import ChatTemplate
from fireside.errors import ContextLengthError, ToolError
from fireside.generation.context_room import reply_reserve

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from fireside.chat.act import ActResult, ToolRun
    from fireside.chat.grounding import DocsSpec, Grounding, Reference
    from fireside.chat.reasoning import ReasoningFormat
    from fireside.chat.tools import ToolLike
    from fireside.generation.results import GenerationResult
    from fireside.generation.sampling import SamplingOptions
    from fireside.generation.stream import TokenCallback
    from fireside.model import Model

_FORMAT = "fireside.chat_session"
_VERSION = 1


class ChatSession:
    """A conversation with a model.

    Args:
        model: the :class:`fireside.Model` to talk to.
        system_prompt: the first, system message (``None``: none; the template may add
            its own default).
        overflow: when the conversation no longer fits the context, ``"truncate"`` drops
            the oldest exchanges (keeping the system message) with a warning; ``"error"``
            raises :class:`~fireside.errors.ContextLengthError`.
        chat_template: a Jinja template, a built-in template name or a
            :class:`ChatTemplate` overriding the model's.
        docs: LocalDocs collections to answer from: a :class:`fireside.Collection`, a
            collection name, a list of them, or a
            :class:`~fireside.chat.grounding.Grounding`.
        docs_k: excerpts retrieved per message (over all collections; default 4).
        docs_max_tokens: tokens the excerpts may take in the prompt (default 1024; at most
            a quarter of the context).
    """

    def __init__(
        self,
        model: Model,
        system_prompt: str | None = None,
        *,
        overflow: Literal["truncate", "error"] = "truncate",
        chat_template: str | ChatTemplate | None = None,
        docs: DocsSpec | Grounding | None = None,
        docs_k: int | None = None,
        docs_max_tokens: int | None = None,
    ) -> None:
        if overflow not in ("truncate", "error"):
            raise ValueError(f"overflow must be 'truncate' or 'error', got {overflow!r}")
        if system_prompt is not None and not isinstance(system_prompt, str):
            raise TypeError(f"system_prompt must be a str, got {type(system_prompt).__name__}")
        self.model = model
        self.overflow = overflow
        self._template_source = chat_template if isinstance(chat_template, str) else None
        if chat_template is None:
            self._template = model.chat_template
        elif isinstance(chat_template, ChatTemplate):
            self._template = chat_template
        else:
            self._template = ChatTemplate.for_model(model.core, chat_template)
        self._history: list[dict[str, Any]] = []
        if system_prompt is not None:
            self._history.append({"role": "system", "content": system_prompt})
        self.last_result: GenerationResult | None = None
        """The result of the latest reply (usage, timings, finish reason)."""
        self.last_references: list[Reference] = []
        """The excerpts of the latest :meth:`send` (known when it returns, before a stream
        is iterated); also the reply's ``references``."""
        self._grounding = self._make_grounding(docs, docs_k, docs_max_tokens)

    def _make_grounding(
        self, docs: DocsSpec | Grounding | None, k: int | None, max_tokens: int | None
    ) -> Grounding | None:
        if docs is None:
            if k is not None or max_tokens is not None:
                raise ValueError("docs_k and docs_max_tokens need docs= (the collections)")
            return None
        from fireside.chat.grounding import DEFAULT_K, DEFAULT_MAX_TOKENS, Grounding

        if isinstance(docs, Grounding):
            if k is not None or max_tokens is not None:
                raise ValueError("give docs_k and docs_max_tokens to the Grounding, not here")
            return docs
        return Grounding(
            docs,
            k=DEFAULT_K if k is None else k,
            max_tokens=DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens,
        )

    # -- history ---------------------------------------------------------------------

    @property
    def history(self) -> list[dict[str, Any]]:
        """The conversation so far (a copy); assign a list of messages to replace it."""
        return [dict(message) for message in self._history]

    @history.setter
    def history(self, messages: Sequence[Mapping[str, Any]]) -> None:
        self._history = validate_messages(messages, allow_empty=True)

    @property
    def system_prompt(self) -> str | None:
        """The system message's text, or ``None`` when the history starts otherwise."""
        if self._history and self._history[0]["role"] == "system":
            return str(self._history[0]["content"])
        return None

    @property
    def chat_template(self) -> ChatTemplate:
        return self._template

    @property
    def docs(self) -> Grounding | None:
        """The collections replies are grounded in (``None``: none); assign collections,
        names, a :class:`~fireside.chat.grounding.Grounding` or ``None`` to change them."""
        return self._grounding

    @docs.setter
    def docs(self, docs: DocsSpec | Grounding | None) -> None:
        self._grounding = self._make_grounding(docs, None, None)

    def reset(self) -> None:
        """Forget the conversation, keeping the system message."""
        self._history = [m for m in self._history[:1] if m["role"] == "system"]
        self.last_result = None

    def fork(self) -> ChatSession:
        """An independent copy of this session (same model, copied history)."""
        twin = ChatSession(
            self.model,
            overflow=self.overflow,
            chat_template=self._template,
            docs=self._grounding,
        )
        twin._template_source = self._template_source
        twin._history = self.history
        return twin

    # -- talking ---------------------------------------------------------------------

    @overload
    def send(
        self,
        message: str | None,
        *,
        stream: Literal[False] = False,
        max_tokens: int | None = None,
        stop: str | Sequence[str] | None = None,
        logprobs: int | None = None,
        callback: TokenCallback | None = None,
        json_schema: dict[str, Any] | None = None,
        tools: Sequence[ToolLike] | None = None,
        tool_choice: ToolChoiceSpec = None,
        parallel_tool_calls: bool = True,
        think: bool | None = None,
        reasoning_effort: str | None = None,
        reasoning_format: ReasoningFormat = "auto",
        **sampling: Unpack[SamplingOptions],
    ) -> GenerationResult: ...

    @overload
    def send(
        self,
        message: str | None,
        *,
        stream: Literal[True],
        max_tokens: int | None = None,
        stop: str | Sequence[str] | None = None,
        logprobs: int | None = None,
        callback: TokenCallback | None = None,
        json_schema: dict[str, Any] | None = None,
        tools: Sequence[ToolLike] | None = None,
        tool_choice: ToolChoiceSpec = None,
        parallel_tool_calls: bool = True,
        think: bool | None = None,
        reasoning_effort: str | None = None,
        reasoning_format: ReasoningFormat = "auto",
        **sampling: Unpack[SamplingOptions],
    ) -> ChatStream: ...

    def send(
        self,
        message: str | None,
        *,
        stream: bool = False,
        max_tokens: int | None = None,
        stop: str | Sequence[str] | None = None,
        logprobs: int | None = None,
        callback: TokenCallback | None = None,
        json_schema: dict[str, Any] | None = None,
        tools: Sequence[ToolLike] | None = None,
        tool_choice: ToolChoiceSpec = None,
        parallel_tool_calls: bool = True,
        think: bool | None = None,
        reasoning_effort: str | None = None,
        reasoning_format: ReasoningFormat = "auto",
        **sampling: Unpack[SamplingOptions],
    ) -> GenerationResult | ChatStream:
        """Send a user message and get the reply.

        Returns a :class:`GenerationResult` (its ``text`` is the answer), or with
        ``stream=True`` a :class:`~fireside.chat.reply_stream.ChatStream` of the answer's
        text chunks (its ``deltas()`` also give reasoning and tool-call deltas).
        ``sampling`` and ``json_schema`` are :meth:`Model.generate`'s. ``max_tokens=None``:
        until the end of the turn or of the context. ``callback(token_id, text)`` runs
        after each chunk of generated text (as the model wrote it); returning ``False``
        ends the reply (finish reason ``"stop"``). With ``docs``, the result's
        ``references`` are the excerpts the prompt carried (also in
        :attr:`last_references` as soon as this returns).

        ``tools``, ``tool_choice``, ``parallel_tool_calls``, ``think``,
        ``reasoning_effort`` and ``reasoning_format`` are :meth:`Model.chat`'s: the result's
        ``tool_calls`` (OpenAI-shaped) and ``reasoning`` hold what the model did, and the
        history keeps the assistant's calls. Answer each call with
        :meth:`add_tool_result`, then ``send(None, ...)`` for the model's next turn (or let
        :meth:`act` run the whole loop).
        """
        if message is None:
            if not self._history or self._history[-1]["role"] != "tool":
                raise ValueError(
                    "send(None) continues the conversation after tool results; add them "
                    "with add_tool_result() first (or send a message)"
                )
            pending = self.history
        elif isinstance(message, str):
            pending = [*self.history, {"role": "user", "content": message}]
        else:
            raise TypeError(f"message must be a str or None, got {type(message).__name__}")
        chat: dict[str, Any] = {
            "tools": tools,
            "tool_choice": tool_choice,
            "parallel_tool_calls": parallel_tool_calls,
            "think": think,
            "reasoning_effort": reasoning_effort,
            "reasoning_format": reasoning_format,
        }
        references = (
            self._grounding.retrieve(message, self.model.count_tokens, n_ctx=self.model.n_ctx)
            if self._grounding and message is not None
            else []
        )
        tokens, plan = self._fit(pending, max_tokens, references, chat)
        options = plan.sampling_options(sampling, json_schema=json_schema)
        params = self.model.sampling_params(json_schema=json_schema, **options)
        gen = self.model.start(
            tokens,
            params,
            max_tokens=max_tokens,
            stop=stop,
            logprobs=logprobs,
            callback=callback,
            realign=True,
        )
        reply = ChatStream(gen, plan)

        def record(result: GenerationResult) -> None:
            result.references = list(references)
            said = ChatReply(result.text, result.reasoning, result.tool_calls).message()
            self._history = [*pending, said]
            self.last_result = result

        self.last_references = references
        reply.add_done_callback(record)
        return reply if stream else reply.drain()

    def add_tool_result(self, call_id: str, content: object) -> None:
        """Answer the tool call ``call_id`` of the latest reply with ``content`` (text;
        other values are sent as JSON). Raises :class:`~fireside.errors.ToolError` when no
        call of the conversation has that id, or it was answered already."""
        calls = {
            call["id"]: call["function"]["name"]
            for m in self._history
            if m["role"] == "assistant"
            for call in m.get("tool_calls") or ()
        }
        if call_id not in calls:
            known = ", ".join(repr(c) for c in calls) or "the conversation has none"
            raise ToolError(f"add_tool_result: no tool call has the id {call_id!r} ({known})")
        if any(m["role"] == "tool" and m.get("tool_call_id") == call_id for m in self._history):
            raise ToolError(f"add_tool_result: the tool call {call_id!r} has its result already")
        text = content if isinstance(content, str) else json.dumps(content, default=str)
        self._history.append(
            {"role": "tool", "tool_call_id": call_id, "name": calls[call_id], "content": text}
        )

    def act(
        self,
        prompt: str,
        tools: Sequence[Callable[..., Any]],
        *,
        max_rounds: int = 8,
        tool_choice: ToolChoiceSpec | Sequence[ToolChoiceSpec] = None,
        on_call: Callable[[ToolRun], object] | None = None,
        **options: Any,
    ) -> ActResult:
        """Let the model use Python functions as tools until it answers ``prompt``.

        See :func:`fireside.chat.act.act`: each round the model replies; its calls run
        (a tool that raises, or a call of an unknown function, gives the model the error
        text) and their results are fed back, until a reply makes no call. The last of
        ``max_rounds`` replies may not call tools, so it is an answer. ``tool_choice``
        may be one choice or one per round (the last repeats); ``options`` go to
        :meth:`send`.
        """
        from fireside.chat.act import act

        return act(
            self,
            prompt,
            tools,
            max_rounds=max_rounds,
            tool_choice=tool_choice,
            on_call=on_call,
            **options,
        )

    def _render(
        self,
        messages: list[dict[str, Any]],
        references: Sequence[Reference] = (),
        chat: Mapping[str, Any] | None = None,
    ) -> tuple[list[int], ChatPlan]:
        if references:
            from fireside.chat.grounding import grounded_messages

            messages = grounded_messages(messages, references)
        plan = plan_chat(self._template, messages, **(chat or {}))
        return self.model.tokenize_rendered(plan.text), plan

    def _fit(
        self,
        pending: list[dict[str, Any]],
        max_tokens: int | None,
        references: Sequence[Reference] = (),
        chat: Mapping[str, Any] | None = None,
    ) -> tuple[list[int], ChatPlan]:
        """Tokens of ``pending`` (its last user message carrying ``references``) and their
        plan, dropping its oldest exchanges (in place) until they leave room for the
        reply: ``max_tokens`` (``None``: a quarter of the context), at most half."""
        n_ctx = self.model.n_ctx
        reserve = reply_reserve(n_ctx, max_tokens)
        tokens, plan = self._render(pending, references, chat)
        dropped = 0
        while len(tokens) + reserve > n_ctx:
            if self.overflow == "error":
                raise ContextLengthError(
                    f"the conversation has {len(tokens)} tokens and the reply needs room for "
                    f"{reserve} more, but the context holds {n_ctx}; start a new session, "
                    "use overflow='truncate', or load the model with a larger n_ctx",
                    n_prompt_tokens=len(tokens),
                    n_ctx=n_ctx,
                )
            first = 1 if pending[0]["role"] == "system" else 0
            # drop the oldest exchange: its user message up to the next user message
            end = next(
                (i for i in range(first + 1, len(pending) - 1) if pending[i]["role"] == "user"),
                None,
            )
            if end is None:
                raise ContextLengthError(
                    f"the message does not fit the context: {len(tokens)} tokens with room "
                    f"for {reserve} more, but the context holds {n_ctx}",
                    n_prompt_tokens=len(tokens),
                    n_ctx=n_ctx,
                )
            dropped += end - first
            del pending[first:end]
            tokens, plan = self._render(pending, references, chat)
        if dropped:
            warnings.warn(
                f"the conversation no longer fit the context ({n_ctx} tokens); "
                f"dropped its {dropped} oldest messages",
                UserWarning,
                stacklevel=3,
            )
        return tokens, plan

    # -- persistence -----------------------------------------------------------------

    def save(self, path: str | os.PathLike[str], *, kv_cache: bool = True) -> None:
        """Write the session (history, options, template override) as JSON, and with
        ``kv_cache`` the KV cache of the conversation beside it (``<path>.kv``; see
        :mod:`fireside.chat.session_cache`), so :meth:`load` need not evaluate it again."""
        from fireside.chat import session_cache
        from fireside.errors import FiresideError

        data: dict[str, Any] = {
            "format": _FORMAT,
            "version": _VERSION,
            "model": self.model.name,
            "overflow": self.overflow,
            "chat_template": self._template_source,
            "messages": self._history,
        }
        if kv_cache and self._history:
            try:
                kv = session_cache.save(self.model, path, self._render(self._history)[0])
            except (FiresideError, OSError) as e:  # the history is still saved
                warnings.warn(f"the KV cache was not saved: {e}", UserWarning, stacklevel=2)
                kv = None
            if kv is not None:
                data["kv"] = kv
        Path(path).write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike[str], model: Model) -> ChatSession:
        """A session restored from :meth:`save`'s file, on ``model``; its saved KV cache
        is restored when the model file, versions and context settings match (checked;
        otherwise a warning says why and the next message evaluates the conversation)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{os.fspath(path)!r} is not a saved chat session: {e}") from e
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"{os.fspath(path)!r} is not a saved chat session")
        if data.get("version") != _VERSION:
            raise ValueError(f"unsupported chat session version {data.get('version')!r}")
        session = cls(
            model,
            overflow=data.get("overflow", "truncate"),
            chat_template=data.get("chat_template"),
        )
        session.history = data.get("messages", [])
        if "kv" in data and session._history:
            from fireside.chat import session_cache

            tokens = session._render(session._history)[0]
            session_cache.load(model, path, data["kv"], tokens)
        return session

    def __repr__(self) -> str:
        return f"ChatSession({self.model.name!r}, {len(self._history)} messages)"
