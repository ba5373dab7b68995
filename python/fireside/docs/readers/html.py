"""HTML: visible text only (no script, style or head), a section per ``<h1>``-``<h6>``."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from fireside.docs.locations import Parsed, Section
from fireside.docs.readers.base import text_of

_HIDDEN = {"script", "style", "head", "noscript", "template", "svg"}
_BLOCK = {
    "p", "div", "br", "li", "ul", "ol", "tr", "table", "pre", "blockquote", "dt", "dd",
    "section", "article", "header", "footer", "hr", "td", "th", "dl", "figure", "main",
}  # fmt: skip
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_SPACES = re.compile(r"[ \t\f\v]+")


class _Extractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[tuple[str | None, list[str]]] = [(None, [])]
        self.hidden = 0
        self.in_title = False
        self.title: list[str] = []
        self.heading: list[str] | None = None
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag in _HEADINGS:
            self.heading = []
        elif tag in _BLOCK:
            self.sections[-1][1].append("\n")
            if tag == "pre":
                self.pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _HEADINGS and self.heading is not None:
            text = _SPACES.sub(" ", "".join(self.heading)).strip()
            self.heading = None
            if text:
                self.sections.append((text, [text, "\n"]))
        elif tag in _BLOCK:
            self.sections[-1][1].append("\n")
            if tag == "pre":
                self.pre = max(0, self.pre - 1)

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
        if self.hidden:
            return
        if self.heading is not None:
            self.heading.append(data)
        else:
            self.sections[-1][1].append(data if self.pre else _SPACES.sub(" ", data))


def _tidy(text: str) -> str:
    lines = [line.strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def read_html(data: bytes) -> Parsed:
    """An ``.html`` file; ``<title>`` (else the first heading) is its title."""
    parser = _Extractor()
    parser.feed(text_of(data))
    parser.close()
    sections = [
        Section(text=text, heading=heading)
        for heading, parts in parser.sections
        if (text := _tidy("".join(parts)))
    ]
    title = _SPACES.sub(" ", "".join(parser.title)).strip() or next(
        (s.heading for s in sections if s.heading), None
    )
    return Parsed("html", sections, title)
