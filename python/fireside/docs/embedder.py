"""Which embedder a collection uses, and how it is named and fingerprinted.

A collection records its embedder's name and the sha256 of its GGUF file; vectors made by
any other file are refused (:class:`~fireside.docs.errors.EmbedderMismatchError`). The
model is loaded only when something has to be embedded.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np
import numpy.typing as npt

from fireside.model_path import LoadedModel, resolve_model_path

if TYPE_CHECKING:
    from fireside.embeddings import Embedder
    from fireside.model import Model

DEFAULT_EMBEDDER = "all-minilm-l6-v2"
"""The catalog name of the default embedding model (GPT4All's Embed4All default)."""

EmbedderSpec = Union["Model", "Embedder", str, "os.PathLike[str]"]
"""A :class:`fireside.Model`, a :class:`fireside.Embedder`, a catalog name or a GGUF path."""


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class EmbedderRef:
    """An embedder named by the user: resolved to a file, hashed and loaded on demand.

    ``known`` maps ``(path, size, mtime_ns)`` to a sha256 computed before (the collection
    keeps it), so a large model is not hashed again on every open.
    """

    def __init__(
        self,
        spec: EmbedderSpec,
        *,
        n_threads: int | None = None,
        known: tuple[str, int, int, str] | None = None,
    ) -> None:
        from fireside.embeddings import Embedder

        self._spec = spec
        self._n_threads = n_threads
        self._embedder: Embedder | None = None
        self._owned = False
        self._path: Path | None = None
        self._sha256: str | None = None
        self._known = known
        if isinstance(spec, Embedder):
            self._embedder = spec
            self._path = Path(spec.model_path)
            self.name = self._path.name.removesuffix(".gguf")
        elif isinstance(spec, LoadedModel):  # a fireside.Model
            self._path = spec.path
            self.name = spec.name
        elif isinstance(spec, (str, os.PathLike)):
            text = os.fspath(spec)
            if not text:
                raise ValueError("embedder must not be an empty name")
            self.name = Path(text).name.removesuffix(".gguf") if os.path.exists(text) else text
        else:
            raise TypeError(
                "embedder must be a fireside.Model, a fireside.Embedder, a catalog name or a "
                f"path, got {type(spec).__name__}"
            )

    @property
    def path(self) -> Path:
        """The GGUF file (resolved through the catalog, downloading if needed and allowed)."""
        if self._path is None:
            self._path = resolve_model_path(self._spec, progress=False)  # type: ignore[arg-type]
        return self._path

    @property
    def sha256(self) -> str:
        """The sha256 of the GGUF file."""
        if self._sha256 is None:
            path = self.path
            st = path.stat()
            known = self._known
            if known and (known[0], known[1], known[2]) == (str(path), st.st_size, st.st_mtime_ns):
                self._sha256 = known[3]
            else:
                self._sha256 = file_sha256(path)
        return self._sha256

    def fingerprint(self) -> tuple[str, int, int, str]:
        """``(path, size, mtime_ns, sha256)`` for the collection to remember."""
        st = self.path.stat()
        return str(self.path), st.st_size, st.st_mtime_ns, self.sha256

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit-length vectors of ``texts``, one row each."""
        if self._embedder is None:
            from fireside.embeddings import Embedder

            target = self._spec if isinstance(self._spec, LoadedModel) else self.path
            self._embedder = Embedder(target, n_threads=self._n_threads)
            self._owned = True
        if not texts:
            return np.zeros((0, self._embedder.n_embd), np.float32)
        return self._embedder.embed(list(texts), normalize=True)

    def close(self) -> None:
        """Free the embedder if this reference loaded it."""
        if self._owned and self._embedder is not None:
            self._embedder.close()
        self._embedder = None
        self._owned = False
