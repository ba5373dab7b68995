"""Stop strings for streamed text: hold back what might become a stop, never emit one.

Text arrives in chunks. A stop string may span several chunks, so the tail of what has
arrived that could still grow into a stop is held back until the next chunk rules it in or
out. Only the longest suffix that is a proper prefix of some stop is held, so everything
else streams out immediately.
"""

from __future__ import annotations

from collections.abc import Sequence


class StopHoldback:
    """Cuts a text stream at the first occurrence of any stop string.

    ``push(text)`` returns ``(safe, hit)``: ``safe`` may be emitted now; ``hit`` is true
    when a stop string was found, in which case ``safe`` is the text before it and the
    stream is over (later pushes return ``("", True)``). ``flush()`` releases the held
    tail when the stream ends without a stop. An empty stop list passes text through.
    """

    __slots__ = ("_held", "_stops", "matched")

    def __init__(self, stops: Sequence[str]) -> None:
        if isinstance(stops, str):
            raise ValueError("stops must be a sequence of strings, not a string")  # noqa: TRY004
        for stop in stops:
            if not isinstance(stop, str):
                raise ValueError(f"each stop must be a string, got {stop!r}")  # noqa: TRY004
            if not stop:
                raise ValueError("a stop string must not be empty")
        self._stops = tuple(dict.fromkeys(stops))  # unique, in the given order
        self._held = ""
        self.matched: str | None = None
        """The stop string that ended the stream, or ``None``."""

    @property
    def stops(self) -> tuple[str, ...]:
        return self._stops

    @property
    def held(self) -> str:
        """The text currently held back."""
        return self._held

    def push(self, text: str) -> tuple[str, bool]:
        """Add streamed text; return the part that is safe to emit and whether a stop hit."""
        if self.matched is not None:
            return "", True
        if not self._stops:
            return text, False
        buf = self._held + text
        # The earliest stop wins. The held part contains no whole stop, so a stop found
        # here ends inside the new text.
        first, which = -1, None
        for stop in self._stops:
            at = buf.find(stop)
            if at != -1 and (first == -1 or at < first):
                first, which = at, stop
        if which is not None:
            self.matched = which
            self._held = ""
            return buf[:first], True
        keep = self._partial_stop_length(buf)
        self._held = buf[len(buf) - keep :]
        return buf[: len(buf) - keep], False

    def flush(self) -> str:
        """Release the held text (call once the stream ended without a stop)."""
        held, self._held = self._held, ""
        return held

    def _partial_stop_length(self, buf: str) -> int:
        """Length of the longest suffix of ``buf`` that is a proper prefix of a stop."""
        best = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(buf)), best, -1):
                if buf.endswith(stop[:n]):
                    best = n
                    break
        return best
