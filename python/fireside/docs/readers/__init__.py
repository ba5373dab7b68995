"""One reader per format; :func:`parse` picks one by file extension.

Every reader takes the file's bytes (read once, already size-capped) and returns a
:class:`~fireside.docs.locations.Parsed`, or raises :class:`Unreadable` with a reason that
ends up in the indexing report.
"""

from __future__ import annotations

from collections.abc import Callable

from fireside.docs.locations import Parsed
from fireside.docs.readers.base import Unreadable
from fireside.docs.readers.code import CODE_EXTENSIONS

__all__ = ["SUPPORTED_EXTENSIONS", "Unreadable", "format_of", "parse"]

_BY_EXTENSION = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".rst": "rst",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".pdf": "pdf",
    ".docx": "docx",
    ".csv": "csv",
    **{ext: "code" for ext in CODE_EXTENSIONS},
}

SUPPORTED_EXTENSIONS = frozenset(_BY_EXTENSION)
"""File name endings (lower case) that are indexed; every other file is skipped."""


def format_of(name: str) -> str | None:
    """The format of a file name (``"markdown"``, ``"pdf"``, ...), or None if unsupported."""
    dot = name.rfind(".")
    return _BY_EXTENSION.get(name[dot:].lower()) if dot > 0 else None


def _reader(fmt: str) -> Callable[[bytes], Parsed]:
    # imported on use: pypdf and python-docx cost time that plain text never needs
    if fmt == "text":
        from fireside.docs.readers.text import read_text

        return read_text
    if fmt == "code":
        from fireside.docs.readers.code import read_code

        return read_code
    if fmt == "markdown":
        from fireside.docs.readers.markdown import read_markdown

        return read_markdown
    if fmt == "rst":
        from fireside.docs.readers.rst import read_rst

        return read_rst
    if fmt == "html":
        from fireside.docs.readers.html import read_html

        return read_html
    if fmt == "pdf":
        from fireside.docs.readers.pdf import read_pdf

        return read_pdf
    if fmt == "docx":
        from fireside.docs.readers.docx import read_docx

        return read_docx
    if fmt == "csv":
        from fireside.docs.readers.csv import read_csv

        return read_csv
    raise ValueError(f"no reader for format {fmt!r}")


def parse(fmt: str, data: bytes) -> Parsed:
    """Parse ``data`` as format ``fmt``; :class:`Unreadable` when it cannot be read."""
    try:
        return _reader(fmt)(data)
    except Unreadable:
        raise
    except RecursionError:
        raise Unreadable(f"{fmt}: nested too deeply to read") from None
    except Exception as e:
        raise Unreadable(f"unreadable {fmt}: {type(e).__name__}: {e}"[:300]) from e
