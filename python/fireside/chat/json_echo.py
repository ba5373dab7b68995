"""A JSON value re-written as it streams, in the exact form ``json.dumps`` gives the whole.

A tool call's arguments are sent as ``json.dumps(json.loads(written), ensure_ascii=False)``
(see :mod:`fireside.chat.tool_calls`); to stream them in pieces that add up to exactly that
text, :class:`JsonEcho` reads the model's JSON as it is written and returns, for each new
piece, the canonical text of what is now certain: punctuation with ``json.dumps``'s
separators (``", "``, ``": "``), a number or literal once it has ended, a string's text up
to its last complete escape (a high surrogate waits for its pair; object keys are sent
whole).

::

    echo = JsonEcho()
    echo.feed('{"city":"Pa')   # '{"city": "Pa'
    echo.feed('ris"} trailing')  # 'ris"}'; echo.done is True, echo.end == 12 (in all fed)
    echo.failed               # True once the text cannot be JSON any more

The concatenated output equals ``json.dumps(json.loads(value), ensure_ascii=False)`` for
any object without repeated keys (``json.loads`` keeps a repeated key's last value in its
first place; the echo writes both).
"""

from __future__ import annotations

import json
import re

_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_NUMBER_CHARS = re.compile(r"[-+0-9.eE]*")
_LITERALS = ("true", "false", "null", "NaN", "Infinity", "-Infinity")
_WS = " \t\n\r"
_SCALAR_END = ",}]" + _WS
_HIGH_SURROGATE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}$")


class JsonEcho:
    """Reads one JSON value piece by piece (see the module docs)."""

    def __init__(self) -> None:
        self._buf = ""  # fed text not yet consumed
        self._consumed = 0  # characters of all fed text consumed before _buf
        self._stack: list[str] = []  # "{" or "[" per open container
        self._expect = "value"  # value, key, colon, comma, value-or-close, key-or-close
        self._string: str | None = None  # "key" or "value" while inside a string
        self._raw = ""  # a key's raw text so far
        self.done = False
        """The value is complete."""
        self.failed = False
        """The text is not JSON (nothing more is returned)."""
        self.end = -1
        """Where the value ended, as an index into everything fed (once :attr:`done`)."""

    def feed(self, piece: str) -> str:
        """Take more text; the canonical text that is now certain."""
        if self.done or self.failed:
            return ""
        self._buf += piece
        out: list[str] = []
        while self._buf and not (self.done or self.failed):
            n = self._step(out)
            if n == 0:
                break  # waits for more text
            self._buf = self._buf[n:]
            self._consumed += n
        if self.done:
            self.end = self._consumed
        return "".join(out)

    def _fail(self) -> int:
        self.failed = True
        return 0

    def _step(self, out: list[str]) -> int:
        buf = self._buf
        if self._string is not None:
            return self._string_step(out)
        if buf[0] in _WS:
            return 1
        ch, expect = buf[0], self._expect
        if expect in ("key", "key-or-close"):
            if ch == "}" and expect == "key-or-close":
                return self._close(out, "{")
            if ch != '"':
                return self._fail()
            self._string, self._raw = "key", ""
            return 1
        if expect == "colon":
            if ch != ":":
                return self._fail()
            out.append(": ")
            self._expect = "value"
            return 1
        if expect == "comma":
            if ch == ",":
                out.append(", ")
                self._expect = "key" if self._stack[-1] == "{" else "value"
                return 1
            if ch in "}]":
                return self._close(out, "{" if ch == "}" else "[")
            return self._fail()
        # a value
        if ch == "]" and expect == "value-or-close":
            return self._close(out, "[")
        if ch in "{[":
            out.append(ch)
            self._stack.append(ch)
            self._expect = "key-or-close" if ch == "{" else "value-or-close"
            return 1
        if ch == '"':
            out.append('"')
            self._string = "value"
            return 1
        return self._scalar(out)

    def _close(self, out: list[str], opener: str) -> int:
        if not self._stack or self._stack[-1] != opener:
            return self._fail()
        self._stack.pop()
        out.append("}" if opener == "{" else "]")
        self._value_done()
        return 1

    def _value_done(self) -> None:
        if self._stack:
            self._expect = "comma"
        else:
            self.done = True

    def _scalar(self, out: list[str]) -> int:
        buf = self._buf
        literal = next((w for w in _LITERALS if buf.startswith(w)), None)
        if literal is not None:
            n = len(literal)
        elif any(w.startswith(buf) for w in _LITERALS):
            return 0  # a literal's beginning: wait
        else:
            n = _NUMBER_CHARS.match(buf).end()  # type: ignore[union-attr]
            if n == len(buf):
                return 0  # the number may go on
            if not _NUMBER.fullmatch(buf, 0, n):
                return self._fail()
        if n < len(buf) and buf[n] not in _SCALAR_END:
            return self._fail()
        try:
            value = json.loads(buf[:n])
        except ValueError:
            return self._fail()
        out.append(json.dumps(value))
        self._value_done()
        return n

    def _string_step(self, out: list[str]) -> int:
        buf = self._buf
        i = 0
        while i < len(buf):
            ch = buf[i]
            if ch == '"':
                break
            if ch == "\\":
                if i + 1 >= len(buf):
                    break
                if buf[i + 1] == "u":
                    if i + 6 > len(buf):
                        break
                    i += 6
                else:
                    i += 2
                continue
            if ord(ch) < 0x20:
                return self._fail()
            i += 1
        chunk = buf[:i]
        closed = i < len(buf) and buf[i] == '"'
        if not closed and _HIGH_SURROGATE.search(chunk):
            chunk = chunk[:-6]  # its low half may follow: wait for it
        try:
            text = json.loads('"' + chunk + '"')
        except ValueError:
            return self._fail()
        if self._string == "key":
            self._raw += text
        elif text:
            out.append(json.dumps(text, ensure_ascii=False)[1:-1])
        if not closed:
            return len(chunk) if chunk else 0
        if self._string == "key":
            out.append(json.dumps(self._raw, ensure_ascii=False))
            self._expect = "colon"
        else:
            out.append('"')
            self._value_done()
        self._string = None
        return len(chunk) + 1
