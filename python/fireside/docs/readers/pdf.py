"""PDF through pypdf: a section per page, page numbers kept; encrypted files refused
unless they open with the empty password."""

from __future__ import annotations

import io

from fireside.docs.locations import Parsed, Section
from fireside.docs.readers.base import Unreadable


def read_pdf(data: bytes) -> Parsed:
    """A ``.pdf`` file; its metadata title, if any, is its title."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except Exception as e:  # noqa: BLE001 - e.g. the AES dependency is missing
                raise Unreadable(f"encrypted PDF that cannot be opened ({e})") from None
            if not opened:
                raise Unreadable("encrypted PDF (it needs a password)")
        pages = reader.pages
        n_pages = len(pages)
    except PdfReadError as e:
        raise Unreadable(f"corrupt PDF: {e}") from None
    sections: list[Section] = []
    failed = 0
    for number in range(n_pages):
        try:
            text = pages[number].extract_text() or ""
        except Exception:  # noqa: BLE001 - one broken page must not lose the others
            failed += 1
            continue
        text = "\n".join(line.rstrip() for line in text.replace("\r", "\n").split("\n"))
        if text.strip():
            sections.append(Section(text=text, page=number + 1))
    if not sections:
        reason = f"{failed} of {n_pages} pages failed" if failed else "no extractable text"
        raise Unreadable(f"PDF without text ({reason}; scanned images are not read)")
    title = None
    try:
        meta = reader.metadata
        title = str(meta.title).strip() if meta and meta.title else None
    except Exception:  # noqa: BLE001 - a broken info dictionary only loses the title
        title = None
    return Parsed("pdf", sections, title or None)
