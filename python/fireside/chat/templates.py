"""Chat templates: turn a list of messages into the prompt text a model was trained on.

Templates are Jinja, as on the Hugging Face Hub and in GGUF files
(``tokenizer.chat_template``), rendered with Hugging Face's conventions in a bounded
sandbox (:mod:`fireside.chat.sandbox`) inside worker processes that are killed when they
overrun (:mod:`fireside.chat.template_pool`). Named fallbacks for models without a
template live as data in ``builtin_templates.json``.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fireside.chat.messages import message_list
from fireside.chat.template_caps import TemplateCapabilities, probe_capabilities
from fireside.chat.template_pool import shared_pool
from fireside.chat.tools import ToolLike, check_tool_messages, check_tools
from fireside.errors import TemplateError, ToolError

if TYPE_CHECKING:
    from fireside import _core

MAX_TEMPLATE_CHARS = 131_072
"""The longest chat template accepted, in characters (the largest known ones are ~17,000)."""

# Fallbacks by GGUF architecture, for models whose file carries no chat template.
_ARCH_FALLBACKS = {
    "gemma": "gemma",
    "gemma2": "gemma",
    "gemma3": "gemma",
    "gemma3n": "gemma",
    "phi3": "phi3",
    "command-r": "command-r",
    "cohere2": "command-r",
    "deepseek": "deepseek",
    "deepseek2": "deepseek",
    "qwen": "chatml",
    "qwen2": "chatml",
    "qwen2moe": "chatml",
    "qwen3": "chatml",
    "qwen3moe": "chatml",
}
# For architectures shared by several chat formats: a marker token the vocabulary has.
_MARKER_TOKENS = (
    ("<|start_header_id|>", "llama3"),
    ("<|im_start|>", "chatml"),
    ("<｜User｜>", "deepseek3"),
    ("<start_of_turn>", "gemma"),
    ("[INST]", "mistral"),
)
_DEFAULT = "chatml"


@functools.cache
def _builtins() -> dict[str, dict[str, Any]]:
    text = resources.files("fireside.chat").joinpath("builtin_templates.json").read_text("utf-8")
    return {k: v for k, v in json.loads(text).items() if not k.startswith("$")}


def builtin_template_names() -> list[str]:
    """The names of the built-in chat templates."""
    return sorted(_builtins())


class ChatTemplate:
    """A compiled chat template.

    ``source`` is Jinja text; ``bos_token``/``eos_token`` are the texts the template sees
    as ``bos_token`` and ``eos_token``. Raises :class:`~fireside.errors.TemplateError`
    when the source does not compile, is longer than :data:`MAX_TEMPLATE_CHARS`, is not
    valid Unicode text, or takes longer than the time limit to compile.
    """

    def __init__(
        self, source: str, *, bos_token: str = "", eos_token: str = "", name: str | None = None
    ) -> None:
        if not isinstance(source, str) or not source.strip():
            raise ValueError("a chat template must be a non-empty string")
        for label, token in (("bos_token", bos_token), ("eos_token", eos_token)):
            if not isinstance(token, str):
                raise ValueError(f"{label} must be a string, got {token!r}")  # noqa: TRY004
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.name = name
        self._capabilities: TemplateCapabilities | None = None
        try:
            source.encode("utf-8")
        except UnicodeEncodeError as e:
            raise TemplateError(
                f"chat template {self._label} is not valid UTF-8 text: character {e.start} is "
                f"{source[e.start]!r} (an undecodable byte or a lone surrogate)"
            ) from None
        if len(source) > MAX_TEMPLATE_CHARS:
            raise TemplateError(
                f"chat template {self._label} is {len(source):,} characters long; the limit "
                f"is {MAX_TEMPLATE_CHARS:,}"
            )
        shared_pool().compile(source, self._label)

    @property
    def _label(self) -> str:
        return repr(self.name) if self.name else "(custom)"

    def __repr__(self) -> str:
        return f"ChatTemplate(name={self.name!r}, {len(self.source)} chars)"

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        add_generation_prompt: bool = True,
        tools: Sequence[Mapping[str, Any]] | None = None,
        **extra: Any,
    ) -> str:
        """The prompt text for ``messages`` (dicts with ``role`` and ``content``).

        ``add_generation_prompt`` appends the opening of an assistant turn. ``tools`` (JSON
        schemas of functions, passed as they are: :meth:`render_tools` checks them) and
        ``extra`` variables (``enable_thinking``, ``documents``, ...) are passed to the
        template. Raises ``TypeError``/``ValueError`` for malformed messages
        (:func:`~fireside.chat.messages.message_list`) and
        :class:`~fireside.errors.TemplateError` when the template fails, including its own
        ``raise_exception(...)`` (with the template's message) and a render that
        overruns the time limit. The variables must be plain data (they are sent to a
        worker process); others raise ``TypeError``.
        """
        tool_list = [dict(t) for t in tools] if tools is not None else None
        return self._render(message_list(messages), add_generation_prompt, tool_list, extra)

    def render_tools(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[ToolLike] | None = None,
        add_generation_prompt: bool = True,
        **extra: Any,
    ) -> str:
        """Like :meth:`render`, for a conversation with tools and tool calls.

        ``tools`` (OpenAI-shaped definitions or Python functions) are checked by
        :func:`~fireside.chat.tools.check_tools`, and the messages by
        :func:`~fireside.chat.tools.check_tool_messages` (a ``tool_call_id`` must name an
        earlier call); call arguments reach the template as it needs them (JSON text or an
        object, see :attr:`capabilities`) and a call's ``content: None`` as ``""``; a
        template that does not show calls gets them as JSON text in the message's content
        (``{"tool_calls": [...]}``, as llama.cpp's minja does). A template that does not
        show the tools it is given raises :class:`~fireside.errors.ToolError`.
        """
        checked = message_list(messages)
        tool_list = check_tools(tools) or None
        if tool_list or any(m.get("tool_calls") or m["role"] == "tool" for m in checked):
            checked = self._tool_messages(checked, tool_list)
        return self._render(checked, add_generation_prompt, tool_list, extra)

    def _render(
        self,
        messages: list[dict[str, Any]],
        add_generation_prompt: bool,
        tools: list[dict[str, Any]] | None,
        extra: Mapping[str, Any],
    ) -> str:
        variables = {
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            **extra,
            "messages": messages,
            "add_generation_prompt": bool(add_generation_prompt),
            "tools": tools,
        }
        return shared_pool().render(self.source, variables, self._label)

    @property
    def capabilities(self) -> TemplateCapabilities:
        """What this template renders of tools and calls (probed once, by rendering)."""
        if self._capabilities is None:
            self._capabilities = probe_capabilities(
                lambda messages, *, add_generation_prompt, tools: self._render(
                    message_list(messages), add_generation_prompt, tools, {}
                )
            )
        return self._capabilities

    def _tool_messages(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> list[dict[str, Any]]:
        caps = self.capabilities
        if tools and not caps.supports_tools:
            raise ToolError(
                f"chat template {self._label} cannot render tools: it never shows the "
                "'tools' it is given (use a template made for tool calling)"
            )
        messages = check_tool_messages(messages)
        calls = [m for m in messages if m.get("tool_calls")]
        for message in calls:
            if message.get("content") is None:  # OpenAI's null: most templates want text
                message["content"] = ""
            if not caps.supports_tool_calls and not caps.probe_failed:
                _calls_into_content(message)  # as minja does: the calls as JSON text
            elif caps.requires_object_arguments:
                message["tool_calls"] = [_object_arguments(c) for c in message["tool_calls"]]
        return messages

    # -- construction -----------------------------------------------------------------

    @classmethod
    def builtin(cls, name: str, *, bos_token: str = "", eos_token: str = "") -> ChatTemplate:
        """A built-in template by name (see :func:`builtin_template_names`)."""
        entry = _builtins().get(name)
        if entry is None:
            valid = ", ".join(builtin_template_names())
            raise ValueError(f"unknown chat template name {name!r}; valid names: {valid}")
        source = entry["template"]
        if isinstance(source, list):
            source = "".join(source)
        return cls(source, bos_token=bos_token, eos_token=eos_token, name=name)

    @classmethod
    def for_model(
        cls, model: _core.Model, override: str | os.PathLike[str] | None = None
    ) -> ChatTemplate:
        """The template to use for ``model``.

        In order: ``override`` (Jinja text if it contains ``{{`` or ``{%``, else a built-in
        name, else the path of a template file such as ``tool_use.jinja``), the GGUF's
        ``tokenizer.chat_template``, a built-in chosen by architecture and vocabulary,
        else ChatML. ``bos_token``/``eos_token`` come from the vocabulary. A path that
        does not exist or cannot be read raises ``ValueError`` naming it.
        """
        bos, eos = _token_text(model, model.bos), _token_text(model, model.eos)
        if override is not None:
            return cls.from_override(override, bos_token=bos, eos_token=eos)
        try:
            source = model.chat_template()
        except UnicodeDecodeError as e:
            raise TemplateError(
                "the model's chat template (tokenizer.chat_template in the GGUF file) is not "
                f"valid UTF-8: {e.reason} at byte {e.start}"
            ) from None
        if source:
            return cls(source, bos_token=bos, eos_token=eos, name="gguf")
        return cls.builtin(fallback_name(model), bos_token=bos, eos_token=eos)

    @classmethod
    def from_override(
        cls, override: str | os.PathLike[str], *, bos_token: str = "", eos_token: str = ""
    ) -> ChatTemplate:
        """The template a ``chat_template=`` value names (see :meth:`for_model`), without a
        model: a ``ValueError`` naming what is wrong (an unknown built-in name, a template
        file that does not exist or cannot be read), so callers can check it before
        loading one."""
        if not isinstance(override, (str, os.PathLike)) or not str(override).strip():
            raise ValueError(
                "chat_template must be a Jinja template, a built-in name or a .jinja path"
            )
        text = os.fspath(override)
        bos, eos = bos_token, eos_token
        if "{{" in text or "{%" in text:
            return cls(text, bos_token=bos, eos_token=eos, name="custom")
        if text.strip() in _builtins():
            return cls.builtin(text.strip(), bos_token=bos, eos_token=eos)
        if not _looks_like_path(text):
            cls.builtin(text.strip())  # the unknown-name error, listing the names
        path = Path(text).expanduser()
        return cls(read_template_file(path), bos_token=bos, eos_token=eos, name=path.name)


def _looks_like_path(text: str) -> bool:
    return (
        text.endswith((".jinja", ".jinja2", ".j2"))
        or "/" in text
        or os.sep in text
        or Path(text).expanduser().is_file()
    )


def read_template_file(path: str | os.PathLike[str]) -> str:
    """The text of a chat template file; ``ValueError`` naming ``path`` when it does not
    exist, is not a file, cannot be read, is too long or is not UTF-8 text."""
    where = os.fspath(path)
    target = Path(where).expanduser()
    if not target.exists():
        raise ValueError(
            f"chat template file {where!r} does not exist (chat_template takes Jinja text, "
            f"a built-in name: {', '.join(builtin_template_names())}, or a .jinja path)"
        )
    if not target.is_file():
        raise ValueError(f"chat template file {where!r} is not a regular file")
    try:
        with target.open("rb") as f:
            data = f.read(MAX_TEMPLATE_CHARS * 4 + 1)
    except OSError as e:
        raise ValueError(f"cannot read chat template file {where!r}: {e.strerror or e}") from e
    if len(data) > MAX_TEMPLATE_CHARS * 4:
        raise ValueError(
            f"chat template file {where!r} is larger than {MAX_TEMPLATE_CHARS * 4:,} bytes"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"chat template file {where!r} is not UTF-8 text ({e.reason} at byte {e.start})"
        ) from None


def fallback_name(model: _core.Model) -> str:
    """The built-in template for a model without one, by architecture and vocabulary."""
    name = _ARCH_FALLBACKS.get(model.architecture)
    if name is not None:
        return name
    for marker, candidate in _MARKER_TOKENS:
        if len(model.tokenize(marker, add_special=False, parse_special=True)) == 1:
            return candidate
    return "llama2" if model.architecture == "llama" and model.vocab_type == "spm" else _DEFAULT


def _token_text(model: _core.Model, token: int) -> str:
    if token < 0:
        return ""
    return model.token_to_piece(token, special=True).decode("utf-8", errors="replace")


def _calls_into_content(message: dict[str, Any]) -> None:
    calls = [
        {
            "id": c["id"],
            "name": c["function"]["name"],
            "arguments": json.loads(c["function"]["arguments"]),
        }
        for c in message.pop("tool_calls")
    ]
    text = json.dumps({"tool_calls": calls}, ensure_ascii=False, indent=2)
    content = message.get("content")
    message["content"] = f"{content}\n{text}" if isinstance(content, str) and content else text


def _object_arguments(call: dict[str, Any]) -> dict[str, Any]:
    function = dict(call["function"])
    function["arguments"] = json.loads(function["arguments"])
    return {**call, "function": function}
