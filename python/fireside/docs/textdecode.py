"""Bytes to text: UTF-8 first, else the encoding charset-normalizer detects; binary refused."""

from __future__ import annotations

_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


class NotText(ValueError):
    """The bytes are not text in any encoding we can tell (binary, or undecodable)."""


def decode_text(data: bytes) -> tuple[str, str]:
    """``(text, encoding)`` of ``data``; :class:`NotText` for binary content.

    Newlines are normalized to ``\\n``.
    """
    head = data[:8192]
    if b"\x00" in head and not head.startswith(_BOMS[1:]):
        raise NotText("binary content (NUL bytes)")
    try:
        text, encoding = data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        from charset_normalizer import from_bytes

        best = from_bytes(data).best()
        if best is None:
            raise NotText("not text in any encoding that could be detected") from None
        text, encoding = str(best), best.encoding
    controls = sum(1 for ch in text[:8192] if ch < " " and ch not in "\t\n\r\f\v")
    if controls > max(8, len(text[:8192]) // 100):
        raise NotText("binary content (control characters)")
    return text.replace("\r\n", "\n").replace("\r", "\n"), encoding
