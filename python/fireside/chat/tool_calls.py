"""Tool calls in a model's reply: which format a model family writes, and parsing it.

Each family writes calls its own way (the formats llama.cpp's ``common/chat`` parses):

* ``hermes`` (Hermes 2 Pro / 3, Qwen 2.5, Qwen 3 and most ChatML tool models):
  ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, one block per call;
* ``llama3`` (Llama 3.1-3.3): the whole reply a JSON object ``{"name": ...,
  "parameters": {...}}`` (several joined by ``;``), or ``<|python_tag|>`` followed by such
  an object, a built-in call ``brave_search.call(query="...")`` or Python code (a call of
  ``python`` with ``{"code": ...}``);
* ``mistral`` (Mistral Nemo): ``[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]``;
  ``mistral-args`` (Mistral Small 3.2, Devstral, Ministral 3):
  ``[TOOL_CALLS]name[ARGS]{...}`` per call (either form is parsed for both);
* ``functionary-v3.1``: ``<function=name>{...}</function>``, and ``<|python_tag|>`` code;
* ``functionary-v3.2``: sections ``>>>recipient\\n...``; recipient ``all`` is the answer,
  any other is a call whose arguments follow (the prompt ends with the first ``>>>``);
* ``generic`` (any other template): the reply is a JSON call object, a list of them, or
  ``{"tool_calls": [...]}``, optionally in a Markdown code fence.

:func:`parse_tool_calls` parses a finished reply; :class:`ToolCallStream` parses it as it
streams, holding back text that may begin a call, and its deltas add up to the one-shot
result. Text that looks like a call but does not parse (bad JSON, a function not in
``tools``) stays content, and a reply with no call is returned unchanged.
:func:`tool_call_grammar` builds the GBNF grammar that forces a call in the family's
format, with arguments valid for the function's parameter schema.
"""

from __future__ import annotations

import ast
import itertools
import json
import re
import secrets
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from fireside.chat.json_echo import JsonEcho
from fireside.chat.tools import ToolChoice, find_tool, tool_names
from fireside.errors import ToolError
from fireside.generation.json_schema import json_schema_to_grammar

Family = Literal[
    "hermes",
    "llama3",
    "mistral",
    "mistral-args",
    "functionary-v3.1",
    "functionary-v3.2",
    "generic",
]
FAMILIES: tuple[Family, ...] = (
    "hermes",
    "llama3",
    "mistral",
    "mistral-args",
    "functionary-v3.1",
    "functionary-v3.2",
    "generic",
)

_ALNUM = string.ascii_letters + string.digits
MAX_PARALLEL_CALLS = 4
"""The most calls a forced-call grammar lets one reply make (``parallel_tool_calls``)."""


def new_call_id(family: Family | None = None) -> str:
    """A fresh tool-call id: ``call_`` and 24 random letters and digits (OpenAI's style),
    or 9 letters and digits for the Mistral families, whose templates require that."""
    if family in ("mistral", "mistral-args"):
        return "".join(secrets.choice(_ALNUM) for _ in range(9))
    return "call_" + "".join(secrets.choice(_ALNUM) for _ in range(24))


@dataclass(frozen=True)
class ToolCall:
    """One call: ``arguments`` is JSON text of an object."""

    id: str
    name: str
    arguments: str

    def to_openai(self) -> dict[str, Any]:
        """The call as an OpenAI ``tool_calls`` entry."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(frozen=True)
class ParsedReply:
    """A reply split into its text and its tool calls."""

    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)

    @property
    def finish_reason(self) -> str | None:
        """``"tool_calls"`` when the reply made calls, else ``None`` (the caller's own)."""
        return "tool_calls" if self.tool_calls else None


# -- which family -----------------------------------------------------------------------


def detect_family(template_source: str, metadata: Mapping[str, Any] | None = None) -> Family:
    """The tool-call format of the model whose chat template is ``template_source``.

    ``metadata`` (GGUF key/values) is consulted only when the template says nothing: a
    ``general.name`` or ``general.basename`` naming Functionary, Hermes, Qwen, Mistral or
    Llama 3 picks that family.
    """
    src = template_source
    if ">>>all" in src:
        return "functionary-v3.2"
    if "<function=" in src and "<|start_header_id|>" in src:
        return "functionary-v3.1"
    if "[TOOL_CALLS]" in src:
        return "mistral-args" if "[ARGS]" in src else "mistral"
    if "<tool_call>" in src:
        return "hermes"
    if "<|start_header_id|>" in src and ("<|python_tag|>" in src or '"parameters"' in src):
        return "llama3"
    name = ""
    if metadata:
        name = " ".join(
            str(metadata.get(k, "")) for k in ("general.name", "general.basename")
        ).lower()
    for needle, family in (
        ("functionary", "functionary-v3.2"),
        ("hermes", "hermes"),
        ("qwen", "hermes"),
        ("mistral", "mistral"),
        ("llama-3", "llama3"),
        ("llama 3", "llama3"),
    ):
        if needle in name:
            return family  # type: ignore[return-value]
    return "generic"


# -- one-shot parsing -------------------------------------------------------------------

_RawCall = tuple[str, Any, "str | None"]  # name, arguments (object or JSON text), id


@dataclass
class _Span:
    start: int
    end: int
    calls: list[_RawCall]


_DECODER = json.JSONDecoder()
_WS = re.compile(r"\s*")


def _decode_at(text: str, pos: int) -> tuple[Any, int] | None:
    """The JSON value starting at ``pos`` (after whitespace) and the index after it."""
    pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
    try:
        return _DECODER.raw_decode(text, pos)
    except json.JSONDecodeError:
        return None


def _skip_ws(text: str, pos: int) -> int:
    return _WS.match(text, pos).end()  # type: ignore[union-attr]


def _call_object(value: Any, *keys: str) -> _RawCall | None:
    """``{"name": ..., "arguments"|"parameters": {...}}`` as a call, else ``None``."""
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    if value.get("type", "function") != "function":
        return None
    for key in keys:
        if key in value:
            args = value[key]
            break
    else:
        return None
    call_id = value.get("id") if isinstance(value.get("id"), str) else None
    return value["name"], args, call_id


def _hermes_spans(text: str) -> list[_Span]:
    spans: list[_Span] = []
    open_tag, close_tag = "<tool_call>", "</tool_call>"
    pos = text.find(open_tag)
    while pos >= 0:
        decoded = _decode_at(text, pos + len(open_tag))
        call = _call_object(decoded[0], "arguments", "parameters") if decoded else None
        if decoded and call:
            end = _skip_ws(text, decoded[1])
            if text.startswith(close_tag, end):
                spans.append(_Span(pos, end + len(close_tag), [call]))
                pos = text.find(open_tag, end + len(close_tag))
                continue
            if close_tag.startswith(text[end:]):  # the tag was a stop string, or cut off
                spans.append(_Span(pos, len(text), [call]))
                break
        pos = text.find(open_tag, pos + 1)
    return spans


def _json_sequence(text: str, pos: int, keys: tuple[str, ...]) -> tuple[list[_RawCall], int]:
    """Call objects from ``pos`` on, separated by ``;`` or whitespace; and where they end."""
    calls: list[_RawCall] = []
    end = pos
    while True:
        decoded = _decode_at(text, end)
        call = _call_object(decoded[0], *keys) if decoded else None
        if decoded is None or call is None:
            return calls, end
        calls.append(call)
        end = _skip_ws(text, decoded[1])
        if text.startswith(";", end):
            end += 1


_BUILTIN_CALL = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\.call\((.*)\)\s*$", re.DOTALL)


def _python_tag_call(code: str) -> _RawCall:
    """What follows ``<|python_tag|>``: a JSON call, a built-in ``tool.call(k=v)``, or code."""
    decoded = _decode_at(code, 0)
    if decoded is not None and _skip_ws(code, decoded[1]) == len(code):
        call = _call_object(decoded[0], "parameters", "arguments")
        if call is not None:
            return call
    match = _BUILTIN_CALL.match(code)
    if match:
        try:
            node = ast.parse(f"f({match.group(2)})", mode="eval").body
            if isinstance(node, ast.Call) and not node.args:
                kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
                if len(kwargs) == len(node.keywords):
                    return match.group(1), kwargs, None
        except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
            pass
    return "python", {"code": code.strip()}, None


def _python_tag_span(text: str) -> _Span | None:
    tag = "<|python_tag|>"
    pos = text.find(tag)
    if pos < 0:
        return None
    code = text[pos + len(tag) :]
    for end_token in ("<|eom_id|>", "<|eot_id|>"):
        code = code.removesuffix(end_token)
    if not code.strip():
        return None
    return _Span(pos, len(text), [_python_tag_call(code)])


def _llama3_spans(text: str) -> list[_Span]:
    start = _skip_ws(text, 0)
    if text.startswith("{", start):
        calls, end = _json_sequence(text, start, ("parameters", "arguments"))
        if calls and end == len(text):
            return [_Span(start, end, calls)]
    span = _python_tag_span(text)
    return [span] if span else []


_ARGS_CALL = re.compile(r"([A-Za-z0-9_.-]+)\[ARGS\]")


def _mistral_spans(text: str) -> list[_Span]:
    marker = "[TOOL_CALLS]"
    pos = text.find(marker)
    if pos < 0:
        return []
    calls: list[_RawCall] = []
    end = pos
    while text.startswith(marker, end):
        cursor = _skip_ws(text, end + len(marker))
        if text.startswith("[", cursor):
            decoded = _decode_at(text, cursor)
            if decoded is None or not isinstance(decoded[0], list) or not decoded[0]:
                break
            batch = [_call_object(v, "arguments", "parameters") for v in decoded[0]]
            if any(c is None for c in batch):
                break
            calls.extend(c for c in batch if c is not None)
            end = _skip_ws(text, decoded[1])
            continue
        match = _ARGS_CALL.match(text, cursor)
        decoded = _decode_at(text, match.end()) if match else None
        if match is None or decoded is None or not isinstance(decoded[0], dict):
            break
        calls.append((match.group(1), decoded[0], None))
        end = _skip_ws(text, decoded[1])
    if not calls or end != len(text):
        return []
    return [_Span(pos, end, calls)]


_FUNCTION_TAG = re.compile(r"<function=([A-Za-z0-9_.-]+)>")


def _functionary31_spans(text: str) -> list[_Span]:
    spans: list[_Span] = []
    for match in _FUNCTION_TAG.finditer(text):
        if spans and match.start() < spans[-1].end:
            continue
        decoded = _decode_at(text, match.end())
        if decoded is None or not isinstance(decoded[0], dict):
            continue
        end = _skip_ws(text, decoded[1])
        if text.startswith("</function>", end):
            end += len("</function>")
        elif end != len(text):
            continue
        spans.append(_Span(match.start(), end, [(match.group(1), decoded[0], None)]))
    tail = _python_tag_span(text)
    if tail and (not spans or tail.start >= spans[-1].end):
        spans.append(tail)
    return spans


def _functionary32_spans(text: str) -> list[_Span]:
    """Sections ``>>>recipient\\n``; the first ``>>>`` is in the prompt."""
    body = text if text.startswith(">>>") else ">>>" + text
    shift = len(body) - len(text)
    bounds = [m.start() for m in re.finditer(">>>", body)] + [len(body)]
    spans: list[_Span] = []
    for a, b in itertools.pairwise(bounds):
        header_end = body.find("\n", a)
        if header_end < 0 or header_end > b:
            return []
        recipient = body[a + 3 : header_end].strip()
        if recipient == "all":
            spans.append(_Span(max(a - shift, 0), header_end + 1 - shift, []))
            continue
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", recipient):
            return []
        section = body[header_end + 1 : b]
        decoded = _decode_at(section, 0)
        if decoded is not None and _skip_ws(section, decoded[1]) == len(section):
            args: Any = decoded[0]
        elif recipient == "python":
            args = {"code": section.strip()}
        else:
            return []
        spans.append(_Span(max(a - shift, 0), b - shift, [(recipient, args, None)]))
    if not any(s.calls for s in spans) and not text.startswith(("all\n", ">>>all\n")):
        return []
    return spans


_FENCE = re.compile(r"\s*```(?:json)?\s*\n(.*?)\n?```\s*$", re.DOTALL)


def _generic_spans(text: str) -> list[_Span]:
    start = _skip_ws(text, 0)
    fence = _FENCE.match(text)
    body = fence.group(1) if fence else text
    decoded = _decode_at(body, 0)
    if decoded is None or _skip_ws(body, decoded[1]) != len(body):
        return []
    value = decoded[0]
    if isinstance(value, dict) and "tool_calls" in value and len(value) == 1:
        value = value["tool_calls"]
    elif isinstance(value, dict) and "tool_call" in value and len(value) == 1:
        value = [value["tool_call"]]
    items = value if isinstance(value, list) else [value]
    calls = [_call_object(v, "arguments", "parameters") for v in items]
    if not calls or any(c is None for c in calls):
        return []
    return [_Span(start, len(text), [c for c in calls if c is not None])]


_SPANS: dict[str, Callable[[str], list[_Span]]] = {
    "hermes": _hermes_spans,
    "llama3": _llama3_spans,
    "mistral": _mistral_spans,
    "mistral-args": _mistral_spans,
    "functionary-v3.1": _functionary31_spans,
    "functionary-v3.2": _functionary32_spans,
    "generic": _generic_spans,
}


def _check_family(family: str) -> None:
    if family not in _SPANS:
        raise ValueError(f"unknown tool-call family {family!r}; known: {', '.join(FAMILIES)}")


def parse_tool_calls(
    text: str,
    family: Family,
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    make_id: Callable[[], str] | None = None,
) -> ParsedReply:
    """Split a finished reply into content and tool calls.

    With ``tools`` (checked definitions), a call naming a function that is not among
    them is not a call: its text stays content. Ids are the model's own where its format
    has them, else from ``make_id`` (default :func:`new_call_id`).
    """
    _check_family(family)
    known = set(tool_names(tools)) if tools is not None else None
    spans: list[tuple[_Span, list[tuple[str, str, str | None] | None]]] = []
    for span in _SPANS[family](text):
        calls = [_normal_call(c) for c in span.calls]
        if any(c is None or (known is not None and c[0] not in known) for c in calls):
            continue
        spans.append((span, calls))
    if not spans:
        return ParsedReply(text)
    new_id = make_id or (lambda: new_call_id(family))
    pieces, tool_calls, pos = [], [], 0
    for span, calls in spans:
        pieces.append(text[pos : span.start])
        pos = span.end
        for call in calls:
            assert call is not None
            tool_calls.append(ToolCall(call[2] or new_id(), call[0], call[1]))
    pieces.append(text[pos:])
    return ParsedReply(_join_content(pieces), tool_calls)


def _normal_call(call: _RawCall) -> tuple[str, str, str | None] | None:
    name, args, call_id = call
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            return None
    if not isinstance(args, dict):
        return None
    return name, json.dumps(args, ensure_ascii=False), call_id


def _join_content(pieces: list[str]) -> str:
    """The text around calls: the first piece keeps its start, the others are stripped."""
    parts = [pieces[0].rstrip()] + [p.strip() for p in pieces[1:]]
    return "\n".join(p for p in parts if p)


# -- streaming --------------------------------------------------------------------------

_ANYWHERE: dict[str, tuple[str, ...]] = {
    "hermes": ("<tool_call>",),
    "llama3": ("<|python_tag|>",),
    "mistral": ("[TOOL_CALLS]",),
    "mistral-args": ("[TOOL_CALLS]",),
    "functionary-v3.1": ("<function=", "<|python_tag|>"),
    "functionary-v3.2": (">>>",),
    "generic": (),
}
# Calls that can only be the whole reply: they begin at its first non-space character.
_AT_START: dict[str, tuple[str, ...]] = {
    "llama3": ("{",),
    "generic": ("{", "[", "```"),
}
_V32_HEADERS = (">>>all\n", "all\n")
STREAMED_FAMILIES: tuple[Family, ...] = ("hermes",)
"""The families whose calls stream in pieces (name, then arguments) as they are written;
the others' calls come whole at the end (see :class:`ToolCallStream`)."""


@dataclass
class ToolCallDelta:
    """What one piece of a stream added: text, and OpenAI-style ``tool_calls`` deltas
    (``{"index", "id", "type", "function": {"name", "arguments"}}``)."""

    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


class ToolCallStream:
    """Parse a reply into content and tool calls while it streams.

    :meth:`feed` returns the content that can no longer be part of a call; text from a
    possible call marker on is held back (a partial marker only until the next piece
    shows it is not one). :meth:`finish` parses the whole reply, emits the rest of the
    content and every call, and sets :attr:`result`, which equals
    :func:`parse_tool_calls` of the whole text.

    With ``stream_calls``, calls in the families of :data:`STREAMED_FAMILIES` (``hermes``)
    stream while they are written, when ``tools`` are given: a ``<tool_call>`` whose ``"name"`` is complete and
    one of ``tools``, followed by ``"arguments": {``, is sent at once as a delta with its
    ``index``, ``id``, ``type`` and ``function.name`` (``arguments`` ``""``), then its
    arguments in pieces, re-written as they are certain in the form the finished parse
    gives (:class:`~fireside.chat.json_echo.JsonEcho`); at most ``max_calls`` are
    streamed. A call that does not start that way (another key first, arguments as a
    string, an unknown name) and every call after it are sent whole by :meth:`finish`.
    Once a call has been streamed it is part of the result: when the reply ends inside
    it (``max_tokens``, a stop string) or its block turns out malformed, the result keeps
    the streamed calls as they were sent (arguments cut where they stopped) with the
    content sent before them, so the deltas always add up to :attr:`result` (which then
    differs from :func:`parse_tool_calls`, as OpenAI's stream of a cut call does: its
    arguments may not be JSON). Without ``stream_calls`` (the default) calls come whole and
    :attr:`result` is always the one-shot parse.
    """

    def __init__(
        self,
        family: Family,
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        make_id: Callable[[], str] | None = None,
        max_calls: int | None = None,
        stream_calls: bool = False,
    ) -> None:
        _check_family(family)
        self.family = family
        self.tools = tools
        self.make_id = make_id
        self.max_calls = max_calls
        self.result: ParsedReply | None = None
        self._live: list[_LiveCall] = []  # the calls streamed so far
        self._scan = -1  # where the next streamed call's tag is looked for (-1: not yet)
        self._streams = stream_calls and family in STREAMED_FAMILIES and tools is not None
        self._known = set(tool_names(tools)) if tools is not None else set()
        self._text = ""
        self._emitted = ""  # content sent so far: always a prefix of the final content
        self._pos = 0  # where the next content to send starts in _text
        self._held = False  # a complete marker was seen: everything else waits for finish
        self._started = family != "functionary-v3.2"  # v3.2: its "all\n" header is read

    @property
    def text(self) -> str:
        """Everything fed so far."""
        return self._text

    def feed(self, piece: str) -> ToolCallDelta:
        """Take the next piece of the reply."""
        if self.result is not None:
            raise RuntimeError("this ToolCallStream has finished")
        self._text += piece
        if self._held:
            return ToolCallDelta(tool_calls=self._stream_calls())
        if not self._started:
            header = next((h for h in _V32_HEADERS if self._text.startswith(h)), None)
            if header is None:
                if any(h.startswith(self._text) for h in _V32_HEADERS):
                    return ToolCallDelta()
                self._held = True  # a call or an answer without its header: parse at the end
                return ToolCallDelta()
            self._started, self._pos = True, len(header)
        content = self._release()
        return ToolCallDelta(content, self._stream_calls() if self._held else [])

    def _release(self) -> str:
        text, pos = self._text, self._pos
        if self.family == "functionary-v3.2" and not self._emitted:
            pos = _skip_ws(text, pos)  # the answer after a header is stripped
            if pos == len(text):
                return ""
        limit, complete = len(text), False
        if self._pos == 0 and self.family in _AT_START:
            first = _skip_ws(text, 0)
            rest = text[first:]
            if first == len(text) or any(m.startswith(rest) for m in _AT_START[self.family]):
                return ""  # only space yet, or the start of a possible call
            if any(rest.startswith(m) for m in _AT_START[self.family]):
                self._held = True
                return ""
        for marker in _ANYWHERE[self.family]:
            found = text.find(marker, pos)
            if found >= 0:
                limit, complete = min(limit, found), True
            limit = min(limit, _partial_suffix(text, marker, pos))
        if complete:
            self._held = True
            self._scan = limit
        ready = text[pos:limit]
        keep = len(ready) - len(ready.rstrip())
        ready = ready[: len(ready) - keep]
        self._pos = pos + len(ready)
        self._emitted += ready
        return ready

    def _stream_calls(self) -> list[dict[str, Any]]:
        """Deltas of the calls being written (see the class docs), one per call (a call's
        name and its first arguments in one delta, as clients expect)."""
        deltas: list[dict[str, Any]] = []
        for delta in self._next_deltas():
            if deltas and deltas[-1]["index"] == delta["index"]:
                function = deltas[-1]["function"]
                function["arguments"] += delta["function"]["arguments"]
            else:
                deltas.append(delta)
        return deltas

    def _next_deltas(self) -> list[dict[str, Any]]:
        if not self._streams or self._scan < 0:
            return []
        deltas: list[dict[str, Any]] = []
        text = self._text
        while True:
            live = self._live[-1] if self._live else None
            if live is not None and not live.echo.done:
                piece = live.echo.feed(text[live.fed :])
                live.fed = len(text)
                if piece:
                    live.arguments += piece
                    deltas.append({"index": live.index, "function": {"arguments": piece}})
                if live.echo.failed:
                    self._streams = False
                    return deltas
                if not live.echo.done:
                    return deltas
                self._scan = live.start + live.echo.end
            found = text.find("<tool_call>", self._scan)
            if found < 0:
                return deltas
            if self.max_calls is not None and len(self._live) >= self.max_calls:
                self._streams = False
                return deltas
            head = _hermes_head(text, found + len("<tool_call>"))
            if head is None:
                return deltas  # not decided yet
            if head is False or head[0] not in self._known:
                self._streams = False  # this call and the ones after it come whole
                return deltas
            name, start = head
            call = _LiveCall(len(self._live), (self.make_id or _id_for(self.family))(), name)
            call.start = call.fed = start
            self._live.append(call)
            deltas.append(
                {
                    "index": call.index,
                    "id": call.id,
                    "type": "function",
                    "function": {"name": name, "arguments": ""},
                }
            )

    def finish(self) -> ToolCallDelta:
        """The end of the reply: the rest of the content and all the calls."""
        if self.result is not None:
            raise RuntimeError("this ToolCallStream has finished")
        result = parse_tool_calls(self._text, self.family, tools=self.tools, make_id=self.make_id)
        live = self._live
        streamed = [ToolCall(c.id, c.name, c.arguments) for c in live]
        agrees = len(result.tool_calls) >= len(live) and all(
            c.echo.done and (got.name, got.arguments) == (c.name, c.arguments)
            for c, got in zip(live, result.tool_calls, strict=False)
        )
        if not agrees:  # cut off or malformed after it began: the streamed calls stand
            result = ParsedReply(self._emitted, streamed)
        elif live:
            result = ParsedReply(result.content, streamed + result.tool_calls[len(live) :])
        self.result = result
        if not result.content.startswith(self._emitted):  # never: a bug if it happens
            raise RuntimeError("streamed content is not a prefix of the parsed reply")
        deltas = [
            {
                "index": i,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for i, call in enumerate(result.tool_calls)
            if i >= len(live)
        ]
        return ToolCallDelta(result.content[len(self._emitted) :], deltas)


@dataclass
class _LiveCall:
    """A call being streamed: its delta index, id and name, and its arguments so far."""

    index: int
    id: str
    name: str
    arguments: str = ""
    start: int = 0  # where its arguments begin in the text
    fed: int = 0  # how much of the text its echo has read
    echo: JsonEcho = field(default_factory=JsonEcho)


def _id_for(family: Family) -> Callable[[], str]:
    return lambda: new_call_id(family)


_HEAD_STEPS: tuple[str | tuple[str, ...] | None, ...] = (
    "{",
    '"name"',
    ":",
    None,  # the name, a JSON string
    ",",
    ('"arguments"', '"parameters"'),
    ":",
)


def _hermes_head(text: str, pos: int) -> tuple[str, int] | Literal[False] | None:
    """After ``<tool_call>``: ``{"name": NAME, "arguments": `` then ``{``. The name and
    where the arguments start; ``False`` when the text cannot be that; ``None`` when it
    may still become it."""
    name = ""
    for step in _HEAD_STEPS:
        pos = _skip_ws(text, pos)
        if pos == len(text):
            return None
        if step is None:
            match = _JSON_STRING.match(text, pos)
            if match is None:
                return None if _JSON_STRING_START.fullmatch(text, pos) else False
            try:
                name = json.loads(match.group(0))
            except ValueError:
                return False
            pos = match.end()
            continue
        options = (step,) if isinstance(step, str) else step
        rest = text[pos:]
        hit = next((o for o in options if rest.startswith(o)), None)
        if hit is None:
            return None if any(o.startswith(rest) for o in options) else False
        pos += len(hit)
    pos = _skip_ws(text, pos)
    if pos == len(text):
        return None
    return (name, pos) if text.startswith("{", pos) else False


_JSON_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\.)*"')
_JSON_STRING_START = re.compile(r'"(?:[^"\\\x00-\x1f]|\\.)*\\?')


def _partial_suffix(text: str, marker: str, pos: int) -> int:
    """Where the longest end of ``text[pos:]`` that begins ``marker`` starts (or len)."""
    for n in range(min(len(text) - pos, len(marker) - 1), 0, -1):
        if marker.startswith(text[len(text) - n :]):
            return len(text) - n
    return len(text)


def merge_deltas(deltas: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI-style ``tool_calls`` deltas put back together into whole calls (a client's
    job; here for callers and tests): arguments are concatenated by ``index``."""
    calls: dict[int, dict[str, Any]] = {}
    for delta in deltas:
        call = calls.setdefault(
            delta["index"],
            {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
        )
        if delta.get("id"):
            call["id"] = delta["id"]
        function = delta.get("function") or {}
        call["function"]["name"] += function.get("name") or ""
        call["function"]["arguments"] += function.get("arguments") or ""
    return [calls[i] for i in sorted(calls)]


# -- forcing a call -----------------------------------------------------------------------


def tool_call_grammar(
    tools: Sequence[Mapping[str, Any]],
    tool_choice: ToolChoice,
    family: Family,
    *,
    parallel_tool_calls: bool = True,
) -> str:
    """A GBNF grammar that makes the reply a tool call in ``family``'s format.

    ``tool_choice`` must be forced (``"required"``, or one named function): the call is
    to that function, or to any of ``tools``; its arguments are JSON valid for the
    function's ``parameters`` (through :func:`~fireside.generation.json_schema.
    json_schema_to_grammar`, whose limits apply). With ``parallel_tool_calls``, more
    calls (up to :data:`MAX_PARALLEL_CALLS`) may follow the first. Raises :class:`~fireside.errors.ToolError` when the
    choice does not force a call, and :class:`~fireside.errors.GrammarError` for a
    parameter schema the converter cannot enforce.
    """
    _check_family(family)
    if not tool_choice.forced:
        raise ToolError(f"tool_choice {tool_choice.mode!r} does not force a call: no grammar")
    names = [tool_choice.name] if tool_choice.name else tool_names(tools)
    rules: list[str] = []
    alternatives: list[str] = []
    for i, name in enumerate(names):
        function = find_tool(tools, name) if name else None
        if function is None:
            raise ToolError(f"tool_choice names {name!r}, which is not in tools")
        prefix = f"t{i}-"
        args_grammar = json_schema_to_grammar(function.get("parameters") or {"type": "object"})
        rules.append(_prefix_rules(args_grammar, prefix))
        alternatives.append(_call_rule(family, name, f"{prefix}root"))
    call_names = []
    for i, alternative in enumerate(alternatives):
        rules.append(f"call{i} ::= {alternative}")
        call_names.append(f"call{i}")
    rules.append(f"call ::= {' | '.join(call_names)}")
    rules.insert(0, f"root ::= {_root_rule(family, parallel_tool_calls)}")
    return "\n".join(rules) + "\n"


def _call_rule(family: str, name: str, args: str) -> str:
    lit = _literal
    if family == "mistral-args":
        return f"{lit('[TOOL_CALLS]' + name + '[ARGS]')} {args}"
    if family == "functionary-v3.1":
        return f"{lit('<function=' + name + '>')} {args} {lit('</function>')}"
    if family == "functionary-v3.2":
        return f"{lit(name + chr(10))} {args}"
    key = "parameters" if family == "llama3" else "arguments"
    head = '{"name": ' + json.dumps(name) + ', "' + key + '": '
    if family == "hermes":
        return f"{lit('<tool_call>' + chr(10) + head)} {args} {lit('}' + chr(10) + '</tool_call>')}"
    return f"{lit(head)} {args} {lit('}')}"


def _root_rule(family: str, parallel: bool) -> str:
    if family == "mistral":
        more = f' ( ", " call ){{0,{MAX_PARALLEL_CALLS - 1}}}' if parallel else ""
        return f'"[TOOL_CALLS][" call{more} "]"'
    if family == "generic":
        return f'"[" call ( ", " call ){{0,{MAX_PARALLEL_CALLS - 1}}} "]"' if parallel else "call"
    separator = {"llama3": '"; "', "functionary-v3.2": '">>>"'}.get(family, '"\\n"')
    return f"call ( {separator} call ){{0,{MAX_PARALLEL_CALLS - 1}}}" if parallel else "call"


def _literal(text: str) -> str:
    """``text`` as a GBNF string literal."""
    escaped = []
    for ch in text:
        if ch in '"\\':
            escaped.append("\\" + ch)
        elif ch == "\n":
            escaped.append("\\n")
        elif ch == "\t":
            escaped.append("\\t")
        elif ch == "\r":
            escaped.append("\\r")
        elif ord(ch) < 0x20:
            escaped.append(f"\\x{ord(ch):02X}")
        else:
            escaped.append(ch)
    return '"' + "".join(escaped) + '"'


_GBNF_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"'  # a string literal
    r"|\[(?:[^\]\\]|\\.)*\]"  # a character class
    r"|\{[0-9, ]*\}"  # a repetition count
    r"|#[^\n]*"  # a comment
    r"|[A-Za-z0-9_-]+"  # a rule name
    r"|.",
    re.DOTALL,
)


def _prefix_rules(grammar: str, prefix: str) -> str:
    """``grammar`` with every rule name prefixed, so several can share one grammar."""
    out = []
    for match in _GBNF_TOKEN.finditer(grammar):
        token = match.group(0)
        if token[0].isalnum() or token[0] in "_-":
            out.append(prefix + token)
        else:
            out.append(token)
    return "".join(out)
