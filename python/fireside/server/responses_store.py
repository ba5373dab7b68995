"""The Responses API's memory: stored responses, so ``previous_response_id`` can continue them.

Each stored response keeps the messages its own turn added to the conversation (its input,
then its output) and the id of the response it continued, so a conversation is rebuilt by
walking that chain back to its first response. The store is bounded twice, in responses
and in bytes (the UTF-8 size of each response's messages and body as JSON); the least
recently used responses are dropped first. Rebuilding a chain uses every response in it,
so a conversation still in use keeps its earlier turns. A response with ``store: false``
is never kept. One store lives on ``app.state.responses``; it is used from the event loop
and guarded by a lock all the same.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MAX_RESPONSES = 1024
"""Responses kept at most (the least recently used go first)."""
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
"""Bytes of stored responses kept at most (their messages and bodies, as JSON)."""


def json_size(value: Any) -> int:
    """The UTF-8 size of ``value`` as compact JSON: what a stored response counts as."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


@dataclass(frozen=True)
class StoredResponse:
    """One response as the store keeps it.

    ``messages`` are chat messages (``{"role", "content"}`` dicts, as
    :meth:`fireside.server.serving.Service.start_chat` takes them): this turn's input,
    then its output. ``body`` is the response object as the API returned it.
    """

    id: str
    previous_id: str | None
    messages: list[dict[str, Any]]
    body: dict[str, Any]
    size: int = field(default=0)

    @classmethod
    def of(
        cls,
        id: str,
        previous_id: str | None,
        messages: list[dict[str, Any]],
        body: dict[str, Any],
    ) -> StoredResponse:
        """A stored response with its size counted."""
        return cls(id, previous_id, messages, body, json_size(messages) + json_size(body))


class MissingResponseError(KeyError):
    """A response in a chain is not (or no longer) stored: ``response_id`` names it."""

    def __init__(self, response_id: str) -> None:
        super().__init__(response_id)
        self.response_id = response_id


class ResponseStore:
    """A bounded, least-recently-used store of responses by id.

    Args:
        max_responses: the most responses kept.
        max_bytes: the most bytes kept (see :func:`json_size`); a single response larger
            than this is not stored.
    """

    def __init__(
        self, max_responses: int = DEFAULT_MAX_RESPONSES, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        for name, value in (("max_responses", max_responses), ("max_bytes", max_bytes)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.max_responses = max_responses
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, StoredResponse] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.evicted = 0
        """Responses dropped to stay within the bounds (a counter, for tests and metrics)."""

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, response_id: object) -> bool:
        return response_id in self._items

    @property
    def bytes(self) -> int:
        """The bytes the stored responses count for."""
        return self._bytes

    def put(self, response: StoredResponse) -> bool:
        """Keep ``response`` (the most recently used), dropping the least recently used
        ones as the bounds require. Returns ``False`` (and keeps nothing) when the response
        alone is larger than ``max_bytes``."""
        if response.size > self.max_bytes:
            return False
        with self._lock:
            old = self._items.pop(response.id, None)
            if old is not None:
                self._bytes -= old.size
            self._items[response.id] = response
            self._bytes += response.size
            while len(self._items) > self.max_responses or self._bytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= dropped.size
                self.evicted += 1
        return True

    def get(self, response_id: str) -> StoredResponse | None:
        """The stored response (now the most recently used), or ``None``."""
        with self._lock:
            response = self._items.get(response_id)
            if response is not None:
                self._items.move_to_end(response_id)
            return response

    def delete(self, response_id: str) -> bool:
        """Drop a response; ``False`` when it was not stored."""
        with self._lock:
            response = self._items.pop(response_id, None)
            if response is None:
                return False
            self._bytes -= response.size
            return True

    def conversation(self, response_id: str) -> list[dict[str, Any]]:
        """The messages of the conversation ending with ``response_id``, first turn first
        (copies). Every response in the chain becomes recently used.

        Raises :class:`MissingResponseError` naming the first response of the chain that
        is not stored (``response_id`` itself, or one it continued).
        """
        turns: list[list[dict[str, Any]]] = []
        with self._lock:
            current: str | None = response_id
            while current is not None:
                response = self._items.get(current)
                if response is None or len(turns) > len(self._items):  # (ids never repeat)
                    raise MissingResponseError(current)
                self._items.move_to_end(current)
                turns.append(response.messages)
                current = response.previous_id
        return [dict(message) for turn in reversed(turns) for message in turn]
