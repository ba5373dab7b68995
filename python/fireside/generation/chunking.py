"""Where prompt chunks end: the one rule the engine evaluates prompts and reuses caches by.

llama.cpp's arithmetic for a token depends on how many tokens of its own sequence are
evaluated with it (see :mod:`fireside.generation.engine`, "Determinism"), so a prompt must
always be cut into the same chunks, whatever the cache held before. A chunk starts where
the previous one ended (the first at 0) and ends after ``size`` tokens, or right after an
end-of-turn token (the model's end-of-generation tokens, which chat templates put after
every message), whichever comes first. Where a chunk ends depends only on the tokens before
that point, so a prompt and any longer prompt that starts with it are cut alike, and a
cached prefix can be reused up to any chunk end (a *boundary*) it has evaluated.

Ending chunks at turn ends matters for chats: a conversation up to the end of the last
reply is whole chunks, so once that reply is evaluated again as prompt chunks (the engine
does it while idle), the next turn reuses all of it and evaluates only the new message.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class Chunking:
    """The chunk rule for one model: ``size`` tokens at most, ending after any of ``ends``."""

    __slots__ = ("ends", "size")

    def __init__(self, size: int, ends: Iterable[int] = ()) -> None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"the chunk size must be an integer >= 1, got {size!r}")
        self.size = size
        self.ends = frozenset(ends)

    def end(self, tokens: Sequence[int], start: int) -> int:
        """Where the chunk of ``tokens`` that begins at ``start`` (a boundary) ends: after
        ``size`` tokens, after an end-of-turn token, or at the end of ``tokens``."""
        stop = min(start + self.size, len(tokens))
        ends = self.ends
        if ends:
            for i in range(start, stop):
                if tokens[i] in ends:
                    return i + 1
        return stop

    def complete(self, tokens: Sequence[int], start: int, end: int) -> bool:
        """Whether the chunk ``[start, end)`` is whole (ends at a boundary), not cut short by
        the end of ``tokens``."""
        return end - start == self.size or (end > start and tokens[end - 1] in self.ends)

    def boundaries(self, tokens: Sequence[int], limit: int | None = None) -> list[int]:
        """The boundaries of ``tokens`` after 0, up to ``limit`` (default: all of them)."""
        n = len(tokens) if limit is None else min(limit, len(tokens))
        out = []
        start = 0
        while start < n:
            end = self.end(tokens, start)
            if end > n or not self.complete(tokens, start, end):
                break
            out.append(end)
            start = end
        return out

    def floor(self, tokens: Sequence[int], n: int) -> int:
        """The last boundary of ``tokens`` at or before ``n`` (0 when none)."""
        found = self.boundaries(tokens, n)
        return found[-1] if found else 0

    def settings(self) -> str:
        """The rule as text, for files that store evaluated chunks (a stored prefix is
        only valid for the rule it was evaluated with)."""
        return f"{self.size} tokens, ending after end-of-turn tokens"
