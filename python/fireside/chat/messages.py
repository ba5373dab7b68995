"""OpenAI-style chat messages, checked: roles, text content, an assistant's tool calls."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

ROLES = ("system", "user", "assistant", "tool")


def _content_text(content: object, where: str) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts: only text parts are supported
        texts = []
        for j, part in enumerate(content):
            if not isinstance(part, Mapping) or part.get("type") != "text":
                raise ValueError(f"{where} content[{j}] must be a {{'type': 'text'}} part")
            text = part.get("text")
            if not isinstance(text, str):
                raise TypeError(f"{where} content[{j}] has no 'text' string")
            texts.append(text)
        return "".join(texts)
    return None


def message_list(messages: object) -> list[dict[str, Any]]:
    """Copies of ``messages`` if it is a list of dicts that each have a non-empty
    ``role`` string: what every chat template needs, and the first part of
    :func:`validate_messages` (a template gets the content as it is, parts included).
    ``TypeError``/``ValueError`` naming the bad message otherwise."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TypeError(
            f"messages must be a list of {{'role', 'content'}} dicts, got {type(messages).__name__}"
        )
    listed = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise TypeError(
                f"messages[{i}] must be a dict with 'role' and 'content', got {message!r}"
            )
        role = message.get("role")
        if not isinstance(role, str) or not role:
            raise ValueError(f"messages[{i}] has role {role!r}; a message needs a 'role' string")
        listed.append(dict(message))
    return listed


def validate_messages(messages: object, *, allow_empty: bool = False) -> list[dict[str, Any]]:
    """Checked copies of OpenAI-style messages.

    Each message is a dict with a ``role`` (system, user, assistant or tool) and a string
    ``content`` (a list of text parts is joined; an assistant message with ``tool_calls``
    may have no content). Other keys are kept. Raises ``TypeError``/``ValueError`` naming
    the bad message: ``TypeError`` when a message is not a dict, ``ValueError`` for a bad
    role or content.
    """
    listed = message_list(messages)
    if not listed and not allow_empty:
        raise ValueError("messages is empty; give at least one message")
    checked = []
    for i, message in enumerate(listed):
        where = f"messages[{i}]"
        role = message["role"]
        if role not in ROLES:
            raise ValueError(f"{where} has role {role!r}; expected one of {', '.join(ROLES)}")
        where = f"{where} ({role})"
        tool_call = role == "assistant" and message.get("tool_calls")
        if "content" not in message and not tool_call:  # calls may come without content
            raise ValueError(f"{where} has no 'content'")
        content = _content_text(message.get("content"), where)
        tool_call = tool_call and message.get("content") is None
        if content is None and not tool_call:
            kind = type(message["content"]).__name__
            raise ValueError(f"{where} content must be a string, got {kind}")
        item = dict(message)
        item["content"] = content
        checked.append(item)
    return checked
