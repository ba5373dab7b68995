"""What readers share: the error they raise and text lines with their line numbers."""

from __future__ import annotations

from fireside.docs.locations import Section
from fireside.docs.textdecode import NotText, decode_text


class Unreadable(Exception):
    """A file that cannot be indexed; the message is the reason shown to the user."""


def text_of(data: bytes) -> str:
    """Decoded text, or :class:`Unreadable` for binary content."""
    try:
        return decode_text(data)[0]
    except NotText as e:
        raise Unreadable(str(e)) from None


def section(lines: list[str], first: int, heading: str | None = None) -> Section | None:
    """A section of consecutive file lines starting at line ``first`` (None if blank)."""
    text = "\n".join(lines)
    if not text.strip():
        return None
    return Section(text=text, heading=heading, lines=list(range(first, first + len(lines))))
