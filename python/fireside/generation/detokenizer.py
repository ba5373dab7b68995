"""Incremental detokenization that never emits a broken UTF-8 character.

A token's piece is a run of bytes that may end in the middle of a multi-byte UTF-8
character (byte-level BPE splits emoji and CJK characters across tokens). The detokenizer
feeds each piece to an incremental UTF-8 decoder, which returns only complete characters
and keeps the trailing partial bytes for the next piece. Each byte is decoded once, so the
cost per token is proportional to its piece, never to the whole output.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable


class StreamingDetokenizer:
    """Turns a stream of token ids into text, one complete character at a time.

    ``token_to_piece(token)`` returns the bytes of one token (for example
    :meth:`fireside._core.Model.token_to_piece`). Bytes that are not valid UTF-8 are
    replaced by U+FFFD as soon as they can no longer start a valid character.
    """

    __slots__ = ("_decode", "_piece", "n_bytes", "n_tokens")

    def __init__(self, token_to_piece: Callable[[int], bytes]) -> None:
        self._piece = token_to_piece
        self._decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
        self.n_tokens = 0
        """Tokens added so far."""
        self.n_bytes = 0
        """Bytes passed to the UTF-8 decoder so far (each exactly once)."""

    def add(self, token: int) -> str:
        """Add one token; return the text it completes (may be ``""``)."""
        piece = self._piece(token)
        self.n_tokens += 1
        self.n_bytes += len(piece)
        return self._decode(piece)

    def add_bytes(self, piece: bytes) -> str:
        """Add raw bytes (a piece obtained elsewhere); return the text they complete."""
        self.n_bytes += len(piece)
        return self._decode(piece)

    def flush(self) -> str:
        """Return what is left: an incomplete character at the end becomes U+FFFD."""
        return self._decode(b"", True)
