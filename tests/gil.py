"""Watching who holds the GIL: with a long switch interval Python forces no hand-over, so
another thread runs only where the GIL is released (a blocking call, a wait)."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def no_forced_switches() -> Iterator[None]:
    """A 5 s switch interval while inside (restored after)."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(5.0)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


class Witness:
    """A thread that waits on a lock and, once :meth:`wake` releases it, notes ``name`` in
    ``log`` as soon as it gets the GIL."""

    def __init__(self, log: list[str], name: str = "witness") -> None:
        self._gate = threading.Lock()
        self._gate.acquire()
        self._log = log
        self._name = name
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        with self._gate:
            self._log.append(self._name)

    def wake(self) -> None:
        """Let it run (it now waits for the GIL only). Callable from any thread."""
        self._gate.release()

    def join(self, timeout: float = 60.0) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the {self._name} never ran"
