"""One check of chat messages (``fireside.chat.messages``): a malformed list gets the same
error, type and message, from ``ChatTemplate.render``, ``Model.chat`` and a chat
session's history."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fireside.chat.messages import message_list, validate_messages
from fireside.chat.templates import ChatTemplate
from fireside.model import Model

MALFORMED = [
    ("hello", TypeError, "messages must be a list of"),
    ([{"role": "user", "content": "a"}, "b"], TypeError, r"messages\[1\] must be a dict"),
    ([{"content": "a"}], ValueError, r"messages\[0\] has role None; a message needs a 'role'"),
    ([{"role": ""}], ValueError, r"messages\[0\] has role ''; a message needs a 'role'"),
]


def _history(model: Model, messages: Any) -> None:
    session = model.chat_session()
    session.history = messages


@pytest.mark.parametrize(("messages", "kind", "says"), MALFORMED)
def test_every_entry_point_refuses_alike(
    model: Model, messages: Any, kind: type[Exception], says: str
) -> None:
    calls: list[Callable[[], object]] = [
        lambda: message_list(messages),
        lambda: validate_messages(messages),
        lambda: ChatTemplate("{{ messages | length }}").render(messages),
        lambda: model.chat(messages, max_tokens=1),
        lambda: _history(model, messages),
    ]
    seen = set()
    for call in calls:
        with pytest.raises(kind, match=says) as info:
            call()
        seen.add(str(info.value))
    assert len(seen) == 1, seen


def test_a_template_gets_the_content_as_it_is_and_any_role() -> None:
    """The template-level check is the structural part only: content parts and roles a
    template may know pass through; the chat layer's own rules come on top."""
    parts = [{"type": "text", "text": "a"}, {"type": "image"}]
    listed = message_list([{"role": "ipython", "content": parts}])
    assert listed == [{"role": "ipython", "content": parts}]
    with pytest.raises(ValueError, match=r"messages\[0\] has role 'ipython'; expected one of"):
        validate_messages(listed)
