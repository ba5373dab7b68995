"""The wire format between fireside and its template worker processes.

Requests (parent to worker) are a pickled tuple behind an 8-byte big-endian length; the
worker trusts them, since only its parent writes them. Replies (worker to parent) are a
status byte, an 8-byte length and UTF-8 text (lone surrogates passed through); the parent
never unpickles what a worker sends, and it refuses a reply longer than it asked for.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any, BinaryIO

OK = b"O"
"""The request succeeded; the text is the rendered prompt (empty for a compile)."""
ERROR = b"E"
"""The template failed; the text is the reason. The worker stays usable."""
FATAL = b"X"
"""The worker failed (out of memory, a broken request); the text is the reason and the
worker exits after sending it."""
READY = b"R"
"""Sent once when a worker has started and is waiting for requests."""

_LENGTH = 8


def encode_text(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def decode_text(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


def pack_request(request: tuple[Any, ...]) -> bytes:
    """One request, ready to write; raises whatever pickle raises for values it cannot
    send (``PicklingError``, ``TypeError``, ``RecursionError``, ...)."""
    data = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(_LENGTH, "big") + data


def read_request(stream: BinaryIO) -> tuple[Any, ...] | None:
    """The next request, or ``None`` at the end of the stream (the parent is gone)."""
    head = _read_exact(stream, _LENGTH)
    if head is None:
        return None
    body = _read_exact(stream, int.from_bytes(head, "big"))
    if body is None:
        return None
    request = pickle.loads(body)  # written by this worker's parent, never by a template
    if not isinstance(request, tuple):
        raise TypeError(f"a template worker request must be a tuple, not {type(request)}")
    return request


def write_reply(stream: BinaryIO, status: bytes, text: str = "") -> None:
    data = encode_text(text)
    stream.write(status + len(data).to_bytes(_LENGTH, "big") + data)
    stream.flush()


def read_reply(stream: BinaryIO, max_length: Callable[[], int]) -> tuple[bytes, bytes] | None:
    """The next reply as ``(status, body)``; ``None`` at the end of the stream.

    Raises ``ValueError`` when the reply announces more than ``max_length()`` bytes (asked
    once the reply has begun: a reader may wait for it before the request is sent).
    """
    head = _read_exact(stream, 1 + _LENGTH)
    if head is None:
        return None
    length = int.from_bytes(head[1:], "big")
    if length > max_length():
        raise ValueError(f"it sent a reply of {length} bytes (at most {max_length()} expected)")
    body = _read_exact(stream, length)
    if body is None:
        return None
    return head[:1], body


def _read_exact(stream: BinaryIO, n: int) -> bytes | None:
    parts = []
    while n > 0:
        chunk = stream.read(n)
        if not chunk:
            return None
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)
