"""A chat request turned into what the engine needs, and the engine's text read back.

This is the one place where tools, ``tool_choice`` and thinking switches meet the chat
template, and where a reply is split into its reasoning, its answer and its tool calls.
The library (:meth:`fireside.Model.chat`, chat sessions, ``session.act``), the CLI and
every server API use it; only the shapes they send differ.

The API, in full::

    plan = plan_chat(template, messages, tools=None, tool_choice=None,
                     parallel_tool_calls=True, think=None, reasoning_effort=None,
                     reasoning_format="auto")
    plan.text            # the rendered prompt (tokenize with Model.tokenize_rendered)
    plan.grammar         # GBNF forcing a call (tool_choice "required" or a named
                         # function), else None; pass it as the sampling ``grammar``
    plan.messages        # the checked messages as rendered (tool results matched)
    plan.tools           # the checked OpenAI-shaped tool definitions ([] if none)
    plan.tool_choice     # a fireside.chat.tools.ToolChoice (mode, name)
    plan.family          # the tool-call format parsed ("hermes", "llama3", ...)
    plan.markers         # the thinking markers (ThinkingMarkers) or None
    plan.thinking_started  # the prompt itself opened the thinking block

    thinking_variables(template, think=None, reasoning_effort=None)
                         # the template variables those switches set (ValueError when
                         # the template has no such switch): check CLI options early
    plan.sampling_options(sampling, json_schema=None)  # sampling with the grammar
                         # set (ValueError if the caller brought a grammar too)

    reader = plan.reader()           # one per generation (stream_calls=True: calls
                                     # in pieces, OpenAI stream style)
    delta = reader.feed(piece, tokens=1)  # ReplyDelta(content, reasoning, tool_calls);
                                     # tokens: how many the piece is (reasoning_tokens)
    last = reader.finish()           # ReplyDelta: what was held back, and the calls
    reply = reader.reply             # ChatReply, set by finish()
    reply = plan.parse(full_text)    # the same ChatReply in one go

    reply.content        # the answer, without reasoning or call markup
    reply.reasoning      # the thinking text, or None when the reply had none
    reply.tool_calls     # [{"id", "type": "function", "function": {"name",
                         #   "arguments": JSON text}}] (OpenAI's shape)
    reply.reasoning_tokens  # tokens inside the thinking block (markers included)
    reply.finish_reason(engine_reason)  # "tool_calls" when calls were made, else
                         # the OpenAI reason for "eos"/"stop"/"length"/"cancelled"
    reply.message()      # the assistant message for the history (calls included)

``ReplyDelta.tool_calls`` are OpenAI's streaming deltas (``{"index", "id", "type",
"function": {"name", "arguments"}}``). With ``plan.reader(stream_calls=True)``, in the
families of :data:`~fireside.chat.tool_calls.STREAMED_FAMILIES` (Hermes/Qwen
``<tool_call>``), a call to a known function starts with its ``id`` and ``name`` as soon
as the name is written and its ``arguments`` follow in pieces (a reply cut off inside
such a call keeps it, with the arguments written so far, as OpenAI's stream does; see
:class:`~fireside.chat.tool_calls.ToolCallStream`); otherwise calls arrive whole, in
:meth:`ReplyReader.finish`. :func:`~fireside.chat.tool_calls.merge_deltas` of all the
deltas equals ``reply.tool_calls``; the deltas' ``content`` and ``reasoning``
concatenated equal ``reply.content`` and ``reply.reasoning``.

Rules:

* Tools are rendered by the template's own ``tools`` variable; a template that never
  shows them raises :class:`~fireside.errors.ToolError` saying so. A ``role: "tool"``
  message's ``tool_call_id`` must name an earlier call; a bad tool schema, name or
  ``tool_choice`` is a :class:`~fireside.errors.ToolError` naming it.
* With ``tool_choice="none"`` (or no tools) the reply is never parsed for calls; with
  ``"auto"`` it is parsed in the template's family format (calls naming functions not in
  ``tools`` stay content); with ``"required"`` or a named function the grammar forces a
  call whose arguments are valid for the function's parameter schema (the thinking block
  a prompt opened is closed first). ``parallel_tool_calls=False``: at most one call. A
  forced reply is calls only: when ``max_tokens`` or a stop string cuts it, the call it
  was writing is never left as content (``finish_reason`` says ``"length"``); it is
  dropped, or kept with the arguments sent so far when a stream had begun it.
* ``think``: ``True``/``False`` sets the template's ``enable_thinking`` switch (``True``
  is also accepted by a template that always thinks); ``reasoning_effort`` (``"none"``,
  ``"minimal"``, ``"low"``, ``"medium"``, ``"high"``) goes to a template that reads it,
  else turns ``enable_thinking`` off for ``"none"`` and on otherwise. A switch the
  template does not have is a ``ValueError`` naming the template.
* Reasoning (the template's markers, ``<think>...</think>`` for most) is split from the
  content, also when the prompt opened the block; ``reasoning_format="none"`` leaves the
  text as the model wrote it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fireside.chat.messages import validate_messages
from fireside.chat.reasoning import (
    ReasoningFormat,
    ReasoningSplitter,
    ThinkingMarkers,
    ThinkingSwitches,
    detect_markers,
    starts_in_prompt,
    thinking_switches,
)
from fireside.chat.templates import ChatTemplate
from fireside.chat.tool_calls import Family, ToolCallStream, detect_family, tool_call_grammar
from fireside.chat.tools import (
    ToolChoice,
    ToolLike,
    check_tool_choice,
    check_tool_messages,
    check_tools,
)
from fireside.generation.results import OPENAI_FINISH_REASON

ToolChoiceSpec = str | Mapping[str, Any] | None
"""What ``tool_choice`` accepts: ``"auto"``, ``"none"``, ``"required"``, ``None`` (auto) or
``{"type": "function", "function": {"name": ...}}``."""

REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high")
"""The ``reasoning_effort`` values accepted (OpenAI's)."""


@dataclass
class ReplyDelta:
    """What one piece of a reply added: answer text, reasoning text, tool-call deltas."""

    content: str = ""
    reasoning: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.content or self.reasoning or self.tool_calls)


@dataclass
class ChatReply:
    """A finished reply: ``content`` (the answer), ``reasoning`` (``None``: no thinking
    block) and OpenAI-shaped ``tool_calls``."""

    content: str
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    reasoning_tokens: int = 0
    """Generated tokens from the thinking block's start to its end marker (both included),
    as counted by :meth:`ReplyReader.feed`'s ``tokens``; 0 without a block."""

    def finish_reason(self, engine_reason: str) -> str:
        """OpenAI's ``finish_reason``: ``"tool_calls"`` when the reply made calls (and was
        not cut short), else the mapping of the engine's reason."""
        if self.tool_calls and engine_reason in ("eos", "stop"):
            return "tool_calls"
        return OPENAI_FINISH_REASON.get(engine_reason, engine_reason)

    def message(self) -> dict[str, Any]:
        """The assistant message to keep in a history: content (``None`` when the reply
        is only calls), its ``tool_calls`` and ``reasoning_content`` where there are any."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [dict(c) for c in self.tool_calls]
            if not self.content:
                message["content"] = None
        if self.reasoning is not None:
            message["reasoning_content"] = self.reasoning
        return message


@functools.lru_cache(maxsize=64)
def _traits(source: str) -> tuple[Family, ThinkingMarkers | None, ThinkingSwitches]:
    return detect_family(source), detect_markers(source), thinking_switches(source)


@dataclass(frozen=True)
class ChatPlan:
    """A rendered chat request: see the module docs for every field."""

    text: str
    grammar: str | None
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    tool_choice: ToolChoice
    parallel_tool_calls: bool
    family: Family
    markers: ThinkingMarkers | None
    thinking_started: bool
    reasoning_format: ReasoningFormat

    @property
    def parses_calls(self) -> bool:
        """Whether replies are read for tool calls (tools given, ``tool_choice`` not none)."""
        return bool(self.tools) and self.tool_choice.mode != "none"

    def sampling_options(
        self, sampling: Mapping[str, Any], *, json_schema: Any = None
    ) -> dict[str, Any]:
        """``sampling`` options with this plan's grammar as ``grammar``. A forced call
        brings its own grammar, so a ``grammar`` or ``json_schema`` of the caller's is
        then a ``ValueError``."""
        options = dict(sampling)
        if self.grammar is not None:
            if options.get("grammar") is not None or json_schema is not None:
                raise ValueError(
                    f"tool_choice {self._choice_label} forces a tool call with its own "
                    "grammar; grammar= or json_schema= cannot be given with it"
                )
            options["grammar"] = self.grammar
        return options

    @property
    def _choice_label(self) -> str:
        return repr(self.tool_choice.name) if self.tool_choice.name else "'required'"

    def reader(self, *, stream_calls: bool = False) -> ReplyReader:
        """A reader for one generation's text, piece by piece; ``stream_calls`` streams
        Hermes/Qwen calls in pieces (see the module docs)."""
        return ReplyReader(self, stream_calls=stream_calls)

    def parse(self, text: str) -> ChatReply:
        """The :class:`ChatReply` for a finished reply's whole text."""
        reader = self.reader()
        reader.feed(text)
        reader.finish()
        assert reader.reply is not None
        return reader.reply


class ReplyReader:
    """Splits a streaming reply into reasoning, content and tool calls (see the module
    docs); :meth:`feed` holds back text that may be a marker until it is decided."""

    def __init__(self, plan: ChatPlan, *, stream_calls: bool = False) -> None:
        self.plan = plan
        self.reply: ChatReply | None = None
        """The whole reply, once :meth:`finish` ran."""
        self._splitter = ReasoningSplitter(
            plan.markers, started=plan.thinking_started, reasoning_format=plan.reasoning_format
        )
        self._calls = None
        if plan.parses_calls:
            limit = None if plan.parallel_tool_calls else 1
            self._calls = ToolCallStream(
                plan.family, tools=plan.tools, max_calls=limit, stream_calls=stream_calls
            )
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self.reasoning_tokens = 0
        """Tokens fed so far that fell inside the thinking block (markers included)."""
        self._undecided = 0  # tokens fed while a block might still open

    def feed(self, piece: str, tokens: int = 1) -> ReplyDelta:
        """Take the next piece of generated text, made of ``tokens`` tokens (counted in
        :attr:`reasoning_tokens` when they fall inside the thinking block)."""
        if self.reply is not None:
            raise RuntimeError("this reply has been finished")
        before = self._splitter.state
        split = self._splitter.feed(piece)
        after = self._splitter.state
        if after == "start":
            self._undecided += tokens  # space or a partial start marker: not known yet
        else:
            opened = before == "start" and self._splitter.saw_reasoning
            if after == "reasoning" or before == "reasoning" or opened:
                self.reasoning_tokens += self._undecided + tokens
            self._undecided = 0
        return self._delta(split.reasoning, split.content)

    def finish(self) -> ReplyDelta:
        """The end of the reply: what was held back, and the tool calls; sets :attr:`reply`."""
        if self.reply is not None:
            raise RuntimeError("this reply has been finished")
        split = self._splitter.finish()
        delta = self._delta(split.reasoning, split.content)
        tool_calls: list[dict[str, Any]] = []
        if self._calls is not None:
            last = self._calls.finish()
            if self.plan.grammar is None:  # a forced reply is calls only (see _delta)
                delta.content += last.content
                self._content.append(last.content)
            assert self._calls.result is not None
            limit = None if self.plan.parallel_tool_calls else 1
            delta.tool_calls += [c for c in last.tool_calls if limit is None or c["index"] < limit]
            tool_calls = [c.to_openai() for c in self._calls.result.tool_calls[:limit]]
        reasoning = "".join(self._reasoning) if self._splitter.saw_reasoning else None
        self.reply = ChatReply("".join(self._content), reasoning, tool_calls, self.reasoning_tokens)
        return delta

    def _delta(self, reasoning: str, content: str) -> ReplyDelta:
        calls: list[dict[str, Any]] = []
        if self._calls is not None and content:
            part = self._calls.feed(content)
            content, calls = part.content, part.tool_calls
            if self.plan.grammar is not None:
                content = ""  # the grammar wrote only calls: what is left is a cut one
        self._reasoning.append(reasoning)
        self._content.append(content)
        return ReplyDelta(content=content, reasoning=reasoning, tool_calls=calls)


def plan_chat(
    template: ChatTemplate,
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[ToolLike] | None = None,
    tool_choice: ToolChoiceSpec = None,
    parallel_tool_calls: bool = True,
    think: bool | None = None,
    reasoning_effort: str | None = None,
    reasoning_format: ReasoningFormat = "auto",
    add_generation_prompt: bool = True,
    extra: Mapping[str, Any] | None = None,
) -> ChatPlan:
    """Check a chat request and render its prompt with ``template`` (see the module docs).

    ``tools`` are OpenAI-shaped definitions or Python functions; ``tool_choice`` is
    ``"auto"`` (the default with tools), ``"none"``, ``"required"`` or
    ``{"type": "function", "function": {"name": ...}}``. ``extra`` template variables
    (``documents``, ...) are passed on. Raises :class:`~fireside.errors.ToolError`,
    ``ValueError``/``TypeError`` for bad messages or options, and
    :class:`~fireside.errors.TemplateError` when the template fails.
    """
    if not isinstance(parallel_tool_calls, bool):
        raise TypeError(f"parallel_tool_calls must be True or False, got {parallel_tool_calls!r}")
    if think is not None and not isinstance(think, bool):
        raise TypeError(f"think must be True, False or None, got {think!r}")
    if reasoning_format not in ("auto", "none"):
        raise ValueError(f"reasoning_format must be 'auto' or 'none', got {reasoning_format!r}")
    checked = validate_messages(messages)
    if any(m.get("tool_calls") or m["role"] == "tool" for m in checked):
        checked = check_tool_messages(checked)  # ids matched, results named
    tool_list = check_tools(tools)
    choice = check_tool_choice(tool_choice, tool_list)
    family, markers, _ = _traits(template.source)
    variables = dict(extra or {})
    variables.update(thinking_variables(template, think=think, reasoning_effort=reasoning_effort))
    text = template.render_tools(
        checked, tools=tool_list or None, add_generation_prompt=add_generation_prompt, **variables
    )
    started = starts_in_prompt(text, markers) and reasoning_format != "none"
    grammar = None
    if choice.forced:
        grammar = tool_call_grammar(
            tool_list, choice, family, parallel_tool_calls=parallel_tool_calls
        )
        if started and markers is not None:  # close the opened thinking block first
            grammar = _after(grammar, markers.end + "\n\n")
    return ChatPlan(
        text=text,
        grammar=grammar,
        messages=checked,
        tools=tool_list,
        tool_choice=choice,
        parallel_tool_calls=parallel_tool_calls,
        family=family,
        markers=markers,
        thinking_started=started,
        reasoning_format=reasoning_format,
    )


def thinking_variables(
    template: ChatTemplate, *, think: bool | None = None, reasoning_effort: str | None = None
) -> dict[str, Any]:
    """The template variables that apply ``think`` and ``reasoning_effort`` (see the module
    docs); ``ValueError`` naming the template when it has no such switch (check options
    with it before a conversation starts)."""
    if think is not None and not isinstance(think, bool):
        raise TypeError(f"think must be True, False or None, got {think!r}")
    _, markers, switches = _traits(template.source)
    effort = reasoning_effort
    label = repr(template.name) if template.name else "(custom)"
    variables: dict[str, Any] = {}
    if effort is not None:
        if effort not in REASONING_EFFORTS:
            raise ValueError(
                f"reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}, got {effort!r}"
            )
        if switches.reasoning_effort:
            variables["reasoning_effort"] = effort
        elif switches.enable_thinking:
            if think is None:
                variables["enable_thinking"] = effort != "none"
        elif not (markers is not None and effort != "none"):
            raise ValueError(
                f"chat template {label} has no reasoning switch: reasoning_effort={effort!r} "
                "cannot be applied"
            )
    if think is not None:
        if switches.enable_thinking:
            variables["enable_thinking"] = think
        elif not (think and markers is not None):
            state = "on" if think else "off"
            raise ValueError(
                f"chat template {label} has no enable_thinking switch: thinking cannot be "
                f"turned {state} (think={think})"
            )
    return variables


def _after(grammar: str, prefix: str) -> str:
    """``grammar`` whose output must start with ``prefix``."""
    head, _, rest = grammar.partition("\n")
    body = head.removeprefix("root ::= ")
    literal = json.dumps(prefix, ensure_ascii=False)
    return f"root ::= {literal} ( {body} )\n{rest}"
