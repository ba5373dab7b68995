"""From what a user names a model by to its GGUF file, and what counts as a loaded model.

Light on purpose: a local file is returned without importing the hub (downloads, the
catalog), so loading one stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

from fireside import _core


@runtime_checkable
class LoadedModel(Protocol):
    """A loaded model other layers can use without importing :class:`fireside.Model`
    (which imports them): its native model, file, name and thread count."""

    @property
    def core(self) -> _core.Model: ...

    @property
    def path(self) -> Path: ...

    @property
    def name(self) -> str: ...

    @property
    def n_threads(self) -> int: ...


def resolve_model_path(model: str | os.PathLike[str], *, progress: object = True) -> Path:
    """A local file as is; anything else through the model catalog (:mod:`fireside.hub`)."""
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a path or a model name, got {type(model).__name__}")
    path = Path(model)
    try:
        path = path.expanduser()
        is_file = path.is_file()
    except (OSError, ValueError, RuntimeError):  # a name too long, ~nosuchuser: the hub explains
        is_file = False
    if is_file:
        return path
    try:
        from fireside.hub import resolve_model
    except ImportError:
        raise FileNotFoundError(f"no model file at {str(path)!r}") from None
    # anything else (empty, a folder, a FIFO, a name, a URL) is the hub's to judge
    return Path(resolve_model(model, progress=progress))  # type: ignore[arg-type]
