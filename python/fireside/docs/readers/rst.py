"""reStructuredText: a section per title (a line underlined, optionally overlined, with
one repeated punctuation character at least as long as the title)."""

from __future__ import annotations

import re

from fireside.docs.locations import Parsed, Section
from fireside.docs.readers.base import section, text_of

_ADORNMENT = re.compile(r"([!-/:-@\[-`{-~])\1{2,}[ \t]*$")


def _is_title(lines: list[str], i: int) -> bool:
    text = lines[i].rstrip()
    if not text.strip() or _ADORNMENT.match(text) or i + 1 >= len(lines):
        return False
    under = _ADORNMENT.match(lines[i + 1])
    return bool(under) and len(lines[i + 1].rstrip()) >= len(text.strip())


def read_rst(data: bytes) -> Parsed:
    """A ``.rst`` file; the first title is its title."""
    lines = text_of(data).split("\n")
    sections: list[Section] = []
    heading: str | None = None
    title: str | None = None
    start = 0
    for i in range(len(lines)):
        if not _is_title(lines, i):
            continue
        begin = i - 1 if i > 0 and _ADORNMENT.match(lines[i - 1]) else i
        if begin > start:
            part = section(lines[start:begin], start + 1, heading)
            if part:
                sections.append(part)
        heading, start = lines[i].strip(), begin
        title = title or heading
    part = section(lines[start:], start + 1, heading)
    if part:
        sections.append(part)
    return Parsed("rst", sections, title)
