"""Plain text: one section; chunks break at paragraphs."""

from __future__ import annotations

from fireside.docs.locations import Parsed
from fireside.docs.readers.base import section, text_of


def read_text(data: bytes) -> Parsed:
    """A ``.txt`` file."""
    lines = text_of(data).split("\n")
    one = section(lines, 1)
    return Parsed("text", [one] if one else [])
