"""A chat session's KV cache on disk, beside its saved history.

:meth:`fireside.chat.session.ChatSession.save` writes the cells of the conversation's
reusable prefix (whole 64-token prompt chunks, as the engine reuses them) to
``<path>.kv``, llama.cpp's sequence state file, and records in the session's JSON what it
was made with: the model file (name, size, and a SHA-256 of its size, first and last MiB),
the fireside and llama.cpp versions, the context settings, the token count, and the
file's own size and SHA-256. :meth:`~fireside.chat.session.ChatSession.load` restores it
only when all of that matches and the file reads back the same tokens; otherwise it warns
why and the conversation is evaluated again (the answer is the same either way).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fireside.generation.kv_files import file_sha256, kv_settings, settings_problem

if TYPE_CHECKING:
    from fireside.model import Model

__all__ = ["SUFFIX", "kv_path", "load", "save"]

SUFFIX = ".kv"


def _settings(model: Model) -> dict[str, Any]:
    return kv_settings(model._generation_engine())


def kv_path(path: str | os.PathLike[str]) -> Path:
    """Where the KV cache of the session saved at ``path`` goes."""
    path = Path(path)
    return path.with_name(path.name + SUFFIX)


def save(
    model: Model, path: str | os.PathLike[str], tokens: Sequence[int]
) -> dict[str, Any] | None:
    """Write the KV cells of the reusable prefix of ``tokens`` beside ``path``; return
    what the session's JSON records about them (``None``: nothing cached to save)."""
    target = kv_path(path)
    partial = target.with_name(target.name + ".part")
    try:
        n = model._generation_engine().save_prefix(partial, tokens)
        if n == 0:
            target.unlink(missing_ok=True)
            return None
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return {
        "file": target.name,
        "size": target.stat().st_size,
        "sha256": file_sha256(target),
        "n_tokens": n,
        **_settings(model),
    }


def _problem(info: Mapping[str, Any], model: Model, target: Path) -> str | None:
    if not target.is_file():
        return f"{target.name} is missing"
    if target.stat().st_size != info.get("size"):
        return f"{target.name} has {target.stat().st_size} bytes, {info.get('size')} were saved"
    problem = settings_problem(info, _settings(model))
    if problem is not None:
        return problem
    if file_sha256(target) != info.get("sha256"):
        return f"{target.name} does not match its SHA-256 (changed or damaged)"
    return None


def load(model: Model, path: str | os.PathLike[str], info: object, tokens: Sequence[int]) -> int:
    """Restore the KV cache recorded in ``info`` if it is valid for ``model`` and holds a
    prefix of ``tokens``; warn why not otherwise. Returns the tokens restored."""
    target = kv_path(path)
    if not isinstance(info, Mapping) or info.get("file") != target.name:
        reason: str | None = "its record in the session file is malformed"
    else:
        reason = _problem(info, model, target)
    if reason is None:
        try:
            return model._generation_engine().load_prefix(target, tokens)
        except (ValueError, OSError) as error:
            reason = str(error)
    warnings.warn(
        f"the saved KV cache of {os.fspath(path)!r} is not used: {reason}; the conversation "
        "is evaluated again",
        UserWarning,
        stacklevel=3,
    )
    return 0
