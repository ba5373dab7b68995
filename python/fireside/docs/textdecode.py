"""Bytes to text: UTF-8 first, else the encoding charset-normalizer detects; binary refused."""

from __future__ import annotations

_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
# Mostly-ASCII text with a few accents fits many 8-bit code pages about equally well;
# among the equally plausible ones, take the commonest.
_PREFERRED = ("utf_16", "utf_32", "cp1252", "latin_1", "iso8859_15", "cp1251", "gb18030")
_CHAOS_SLACK = 0.01


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

        results = list(from_bytes(data))
        if not results:
            raise NotText("not text in any encoding that could be detected") from None
        low = min(match.chaos for match in results)
        close = {m.encoding: m for m in results if m.chaos <= low + _CHAOS_SLACK}
        pick = next((close[e] for e in _PREFERRED if e in close), None)
        if pick is None:
            pick = min(results, key=lambda m: m.chaos)
        text, encoding = str(pick), pick.encoding
    controls = sum(1 for ch in text[:8192] if ch < " " and ch not in "\t\n\r\f\v")
    if controls > max(8, len(text[:8192]) // 100):
        raise NotText("binary content (control characters)")
    return text.replace("\r\n", "\n").replace("\r", "\n"), encoding
