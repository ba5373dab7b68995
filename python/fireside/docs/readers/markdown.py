"""Markdown: a section per heading (ATX ``#`` and setext underlines), code fences respected."""

from __future__ import annotations

import re

from fireside.docs.locations import Parsed, Section
from fireside.docs.readers.base import section, text_of

_ATX = re.compile(r" {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$")
_SETEXT = re.compile(r" {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")


def read_markdown(data: bytes) -> Parsed:
    """A ``.md`` file; the first heading is its title."""
    lines = text_of(data).split("\n")
    sections: list[Section] = []
    heading: str | None = None
    title: str | None = None
    start = 0
    fence: str | None = None

    def close(end: int) -> None:
        part = section(lines[start:end], start + 1, heading)
        if part:
            sections.append(part)

    for i, line in enumerate(lines):
        fenced = _FENCE.match(line)
        if fence is not None:
            if fenced and fenced.group(1)[0] == fence[0] and len(fenced.group(1)) >= len(fence):
                fence = None
            continue
        if fenced:
            fence = fenced.group(1)
            continue
        found: str | None = None
        begin = i
        if m := _ATX.match(line):
            found = m.group(2).strip()
        elif (
            i > start
            and _SETEXT.match(line)
            and lines[i - 1].strip()
            and (i < 2 or not lines[i - 2].strip())
        ):
            found, begin = lines[i - 1].strip(), i - 1
        if found:
            close(begin)
            heading, start = found, begin
            title = title or found
    close(len(lines))
    return Parsed("markdown", sections, title)
