"""Engines of one server take turns stepping, so several models share the CPU cores.

Each loaded model has its own engine with its own threads. Two engines decoding at the
same time with a thread per core each would run twice as many threads as cores, and
llama.cpp's threads spin at every graph barrier: both would crawl. So a server's engines
step through one :class:`StepTurns`: at most ``width`` steps run at once (1 when each
engine uses every core; more when ``--threads`` leaves cores for others), in the order
they asked (a ticket queue, so a busy model cannot starve another). A step is one batched
decode of an engine's generating slots, so turns alternate every token or prompt chunk.
"""

from __future__ import annotations

import threading
from types import TracebackType


class StepTurns:
    """A first-come, first-served gate for engine steps, ``width`` at a time."""

    def __init__(self, width: int = 1) -> None:
        if width < 1:
            raise ValueError(f"width must be at least 1, got {width}")
        self.width = width
        self._cond = threading.Condition()
        self._next_ticket = 0
        self._next_served = 0
        self._running = 0
        self.waits = 0  # steps that had to wait for another engine's (a counter for tests)

    @property
    def waiting(self) -> int:
        """Steps waiting for their turn now."""
        with self._cond:
            return self._next_ticket - self._next_served

    def __enter__(self) -> None:
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            waited = False
            while ticket != self._next_served or self._running >= self.width:
                waited = True
                self._cond.wait()
            self._next_served += 1
            self._running += 1
            self.waits += waited
            self._cond.notify_all()  # the next ticket may start too, when width allows

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        with self._cond:
            self._running -= 1
            self._cond.notify_all()


def turns_width(n_threads: int | None, cores: int) -> int:
    """Steps that may run at once: the cores over each engine's threads (``None``: all
    cores, so 1)."""
    if n_threads is None:
        return 1
    return max(1, cores // max(1, n_threads))
