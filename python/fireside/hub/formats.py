"""Telling a GGUF file from the old GGML formats (and from anything else) by its magic."""

from __future__ import annotations

import os
from typing import Literal

GGUF_MAGIC = b"GGUF"
# the GGML-era formats stored a little-endian uint32 tag: 'ggml', 'ggmf', 'ggjt', 'ggla'
_GGML_MAGICS = {b"lmgg", b"fmgg", b"tjgg", b"algg"}

Format = Literal["gguf", "ggml", "unknown"]


def magic_format(head: bytes) -> Format:
    """The format announced by the first four bytes of a file."""
    if head[:4] == GGUF_MAGIC:
        return "gguf"
    if head[:4] in _GGML_MAGICS:
        return "ggml"
    return "unknown"


def file_format(path: str | os.PathLike[str]) -> Format:
    """The format of the file at ``path`` (``OSError`` if it cannot be read)."""
    with open(path, "rb") as f:
        return magic_format(f.read(4))
