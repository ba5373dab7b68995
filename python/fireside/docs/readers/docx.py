"""Word ``.docx`` through python-docx: a section per heading paragraph, tables included."""

from __future__ import annotations

import io
import zipfile

from fireside.docs.locations import Parsed, Section
from fireside.docs.readers.base import Unreadable

MAX_UNPACKED_BYTES = 256 * 1024 * 1024
"""A .docx is a zip file: refuse one that unpacks to more than this (a zip bomb)."""


def read_docx(data: bytes) -> Parsed:
    """A ``.docx`` file; its core-properties title (else the first heading) is its title."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            unpacked = sum(info.file_size for info in zf.infolist())
    except zipfile.BadZipFile as e:
        raise Unreadable(f"corrupt .docx (not a zip file: {e})") from None
    if unpacked > MAX_UNPACKED_BYTES:
        raise Unreadable(f".docx unpacks to {unpacked} bytes (more than {MAX_UNPACKED_BYTES})")
    import docx

    document = docx.Document(io.BytesIO(data))
    sections: list[Section] = []
    heading: str | None = None
    lines: list[str] = []

    def close() -> None:
        text = "\n".join(lines).strip()
        if text:
            sections.append(Section(text=text, heading=heading))

    for paragraph in document.paragraphs:
        text = paragraph.text.strip()
        style = (paragraph.style.name or "") if paragraph.style is not None else ""
        if text and (style.startswith("Heading") or style == "Title"):
            close()
            heading, lines = text, [text]
        elif text:
            lines.append(text)
    close()
    for table in document.tables:
        rows = [" | ".join(cell.text.strip() for cell in row.cells) for row in table.rows]
        text = "\n".join(row for row in rows if row.strip(" |"))
        if text:
            sections.append(Section(text=text, heading=heading))
    title = (document.core_properties.title or "").strip() or next(
        (s.heading for s in sections if s.heading), None
    )
    return Parsed("docx", sections, title)
