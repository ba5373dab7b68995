"""What a KV cache file on disk was made with, and whether it may be trusted here.

A sequence's KV cells are only valid for the model file, the llama.cpp build and the
context settings that computed them, and reusing them must keep the engine's exactness
promise (whole prompt chunks, see :mod:`fireside.generation.engine`). Both kinds of cache
file fireside writes, a chat session's (:mod:`fireside.chat.session_cache`) and the
server's prompt cache (:mod:`fireside.generation.prompt_cache`), record
:func:`kv_settings` beside the cells and are used only when :func:`settings_problem`
finds nothing different, and their bytes match the recorded size and SHA-256.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fireside.generation.engine import Engine

_SAMPLE = 1 << 20


def fireside_version() -> str:
    """The installed fireside version (``"unknown"`` in an uninstalled tree)."""
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


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a whole file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def kv_settings(engine: Engine) -> dict[str, Any]:
    """What ``engine``'s KV cells depend on: the model file (name, size, fingerprint),
    the fireside and llama.cpp versions and the context settings (JSON-ready)."""
    from fireside import _core

    path = Path(engine.model.path)
    return {
        "model_name": path.name,
        "model_size": os.path.getsize(path),
        "model_fingerprint": model_fingerprint(path),
        "fireside": fireside_version(),
        "llama_cpp": _core.LLAMA_CPP_COMMIT,
        "n_ctx": engine.n_ctx_seq,
        "chunk": engine.chunk,
        "chunk_rule": engine.chunking.settings(),
        "type_k": engine.ctx.type_k,
        "type_v": engine.ctx.type_v,
    }


def settings_problem(recorded: Mapping[str, Any], settings: Mapping[str, Any]) -> str | None:
    """Why cells recorded with ``recorded`` settings are not valid under ``settings``
    (``None``: every setting matches)."""
    for key, value in settings.items():
        if recorded.get(key) != value:
            what = "model file" if key.startswith("model_") else key
            return f"it was saved with another {what} ({recorded.get(key)!r}, now {value!r})"
    return None
