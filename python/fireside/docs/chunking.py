"""Sections to chunks of about ``size`` characters that overlap by ``overlap``.

A chunk never crosses a section (a page, or the text under one heading). Inside a section
a chunk ends at the best break before the size limit: a blank line, else a line end, else
a sentence end, else a space; only a run of text with no break at all is cut mid-word.
The next chunk starts ``overlap`` characters before the previous end, moved forward to
the start of a word.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from fireside.docs.locations import Location, Section

DEFAULT_CHUNK_SIZE = 512
"""Characters per chunk (GPT4All's LocalDocs default)."""
DEFAULT_CHUNK_OVERLAP = 64
"""Characters shared by consecutive chunks of one section."""

_BREAKS = (re.compile(r"\n[ \t]*\n"), re.compile(r"\n"), re.compile(r"[.!?;:][)\"'\]]*\s"))
_SPACE = re.compile(r"\s")


@dataclass(frozen=True)
class Chunk:
    """A piece of a document's text and where it lies."""

    text: str
    location: Location


def check_chunking(size: object, overlap: object) -> tuple[int, int]:
    """Validated ``(size, overlap)``: ``32 <= size <= 8192``, ``0 <= overlap < size / 2``."""
    if not isinstance(size, int) or isinstance(size, bool) or not 32 <= size <= 8192:
        raise ValueError(f"chunk_size must be an integer from 32 to 8192, got {size!r}")
    if not isinstance(overlap, int) or isinstance(overlap, bool) or not 0 <= overlap < size // 2:
        raise ValueError(
            f"chunk_overlap must be an integer from 0 to less than half of chunk_size "
            f"({size // 2}), got {overlap!r}"
        )
    return size, overlap


def _break(text: str, lo: int, hi: int) -> int:
    """The best end for a chunk in ``text[lo:hi]`` (``hi`` when there is none)."""
    for pattern in _BREAKS:
        last = None
        for match in pattern.finditer(text, lo, hi):
            last = match
        if last is not None:
            return last.end() if pattern is not _BREAKS[0] else last.start()
    space = text.rfind(" ", lo, hi)
    return space + 1 if space > lo else hi


def chunk_section(section: Section, size: int, overlap: int) -> list[Chunk]:
    """The chunks of one section, in order."""
    text = section.text
    newlines = [i for i, ch in enumerate(text) if ch == "\n"]

    def line_at(offset: int) -> int | None:
        if section.lines is None:
            return None
        index = bisect.bisect_right(newlines, offset - 1)
        return section.lines[min(index, len(section.lines) - 1)]

    chunks: list[Chunk] = []
    pos, n = 0, len(text)
    while pos < n:
        while pos < n and text[pos].isspace():
            pos += 1
        if pos >= n:
            break
        end = n if n - pos <= size else _break(text, pos + size // 2, pos + size)
        piece = text[pos:end].rstrip()
        if piece:
            location = Location(
                page=section.page,
                heading=section.heading,
                line_start=line_at(pos),
                line_end=line_at(pos + len(piece) - 1),
            )
            chunks.append(Chunk(piece, location))
        if end >= n:
            break
        start = max(end - overlap, pos + 1)
        if start < end and not text[start - 1].isspace():
            space = _SPACE.search(text, start, end)
            start = space.end() if space else end
        pos = start
    return chunks


def chunk_sections(sections: list[Section], size: int, overlap: int) -> list[Chunk]:
    """The chunks of a document's sections, in order."""
    return [chunk for section in sections for chunk in chunk_section(section, size, overlap)]
