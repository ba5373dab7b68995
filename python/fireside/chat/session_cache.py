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

import hashlib
import os
import warnings
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fireside import _core

if TYPE_CHECKING:
    from fireside.model import Model

SUFFIX = ".kv"
_SAMPLE = 1 << 20


def _version() -> str:
    try:
        return metadata.version("fireside")
    except metadata.PackageNotFoundError:  # pragma: no cover - an uninstalled tree
        return "unknown"


def model_fingerprint(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a model file's size, first MiB and last MiB (cheap for large files;
    with the name and size it tells one model file from another)."""
    digest = hashlib.sha256()
    size = os.path.getsize(path)
    digest.update(str(size).encode())
    with open(path, "rb") as f:
        digest.update(f.read(_SAMPLE))
        f.seek(max(0, size - _SAMPLE))
        digest.update(f.read(_SAMPLE))
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _settings(model: Model) -> dict[str, Any]:
    engine = model._generation_engine()
    return {
        "model_name": model.path.name,
        "model_size": os.path.getsize(model.path),
        "model_fingerprint": model_fingerprint(model.path),
        "fireside": _version(),
        "llama_cpp": _core.LLAMA_CPP_COMMIT,
        "n_ctx": engine.n_ctx_seq,
        "chunk": engine.chunk,
        "type_k": engine.ctx.type_k,
        "type_v": engine.ctx.type_v,
    }


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
        "sha256": _file_sha256(target),
        "n_tokens": n,
        **_settings(model),
    }


def _problem(info: Mapping[str, Any], model: Model, target: Path) -> str | None:
    if not target.is_file():
        return f"{target.name} is missing"
    if target.stat().st_size != info.get("size"):
        return f"{target.name} has {target.stat().st_size} bytes, {info.get('size')} were saved"
    settings = _settings(model)
    for key, value in settings.items():
        if info.get(key) != value:
            what = "model file" if key.startswith("model_") else key
            return f"it was saved with another {what} ({info.get(key)!r}, now {value!r})"
    if _file_sha256(target) != info.get("sha256"):
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
