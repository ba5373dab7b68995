"""Download progress: a tqdm bar for people, a callback for programs.

``progress`` arguments across fireside's hub accept:

* ``True`` — a tqdm bar on stderr (size, speed, ETA); ``HF_HUB_DISABLE_PROGRESS_BARS=1``
  silences it;
* ``False`` or ``None`` — nothing;
* a callable ``progress(done_bytes, total_bytes_or_None)`` — called as bytes arrive;
  returning ``False`` cancels the download (the partial file is kept for a later resume)
  with :class:`fireside.errors.Cancelled`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from ..errors import Cancelled

ProgressCallback = Callable[[int, int | None], bool | None]
ProgressSpec = bool | None | ProgressCallback


def validate(spec: object) -> ProgressSpec:
    """Check a ``progress`` argument; ``TypeError`` for anything else."""
    if spec is None or isinstance(spec, bool) or callable(spec):
        return spec  # type: ignore[return-value]
    raise TypeError(f"progress must be a bool or a callable, got {type(spec).__name__}")


class Progress:
    """Reports bytes of one transfer to a bar or a callback."""

    def __init__(self, spec: ProgressSpec, *, desc: str, total: int | None, initial: int = 0):
        self.done = initial
        self.total = total
        self._callback = spec if callable(spec) and not isinstance(spec, bool) else None
        self._bar: Any = None
        bars_off = os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS", "").upper() in (
            "1",
            "TRUE",
            "ON",
            "YES",
        )
        if spec is True and not bars_off:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                desc=desc,
                total=total,
                initial=initial,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
                leave=True,
                dynamic_ncols=True,
            )
        self._report()

    def _report(self) -> None:
        if self._callback is not None and self._callback(self.done, self.total) is False:
            raise Cancelled("download cancelled by the progress callback")

    def update(self, n: int) -> None:
        """``n`` more bytes arrived (negative when data was discarded)."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        self._report()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
