"""What a reader hands the chunker (sections) and where a chunk came from (locations)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Location:
    """Where a chunk lies in its file: page (PDF, 1-based), the nearest heading, and the
    first and last line (1-based, text formats and CSV)."""

    page: int | None = None
    heading: str | None = None
    line_start: int | None = None
    line_end: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"page", "heading", "lines": [first, last] | None}``."""
        lines = None if self.line_start is None else [self.line_start, self.line_end]
        return {"page": self.page, "heading": self.heading, "lines": lines}

    def __str__(self) -> str:
        parts = []
        if self.page is not None:
            parts.append(f"page {self.page}")
        if self.heading:
            parts.append(f"§ {self.heading}")
        if self.line_start is not None:
            if self.line_end is None or self.line_end == self.line_start:
                parts.append(f"line {self.line_start}")
            else:
                parts.append(f"lines {self.line_start}-{self.line_end}")
        return ", ".join(parts) or "whole file"


@dataclass(frozen=True)
class Section:
    """A stretch of a document that chunks never cross: a page, or the text under a heading.

    ``lines``, when known, gives the file's line number (1-based) of each line of ``text``.
    """

    text: str
    heading: str | None = None
    page: int | None = None
    lines: list[int] | None = None


@dataclass(frozen=True)
class Parsed:
    """A reader's result: the sections and, where the format has one, a title."""

    format: str
    sections: list[Section]
    title: str | None = None
