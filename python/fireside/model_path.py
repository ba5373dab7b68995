"""From what a user names a model by to its GGUF file, and what counts as a loaded model.

A local file is checked by the hub's one GGUF check (:func:`fireside.hub.resolve.check_local`:
a GGML file or anything else is refused with the same message wherever it is named), so
``Model``, the GPT4All facade and ``resolve_model`` refuse it alike; llama.cpp's own guard in
``_core`` stays as a backstop.
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
    """A local file once its magic says GGUF; anything else through the model catalog
    (:mod:`fireside.hub`)."""
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a path or a model name, got {type(model).__name__}")
    path = Path(model)
    try:
        path = path.expanduser()
        is_file = path.is_file()
    except (OSError, ValueError, RuntimeError):  # a name too long, ~nosuchuser: the hub explains
        is_file = False
    if is_file:
        from fireside.hub.resolve import check_local

        return check_local(path)
    from fireside.hub import resolve_model

    # anything else (empty, a folder, a FIFO, a name, a URL) is the hub's to judge
    return Path(resolve_model(model, progress=progress))  # type: ignore[arg-type]
