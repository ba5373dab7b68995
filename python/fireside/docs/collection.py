"""A named collection of documents: add folders and files, keep it current, search it.

Collections live in ``$FIRESIDE_CACHE_DIR/collections/NAME/`` (one SQLite database each,
see :mod:`fireside.docs.store`). Writes (add, update, reembed, delete) take the
collection's lock file, so two processes updating one collection run one after the
other; searches never wait for them (SQLite's WAL mode).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fireside.docs import indexing, retrieval
from fireside.docs.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE, check_chunking
from fireside.docs.embedder import DEFAULT_EMBEDDER, EmbedderRef, EmbedderSpec
from fireside.docs.errors import (
    CollectionBusyError,
    CollectionNotFoundError,
    EmbedderMismatchError,
)
from fireside.docs.hits import Hit
from fireside.docs.names import DB_FILE, check_name, collection_dir, collections_root
from fireside.docs.report import IndexProgress, IndexReport
from fireside.docs.scanning import is_glob
from fireside.docs.store import Store

if TYPE_CHECKING:
    from typing_extensions import Self

DEFAULT_MAX_FILE_BYTES = 50_000_000
"""Files larger than this (50 MB) are skipped and reported."""
LOCK_FILE = "write.lock"


@dataclass(frozen=True)
class CollectionInfo:
    """What :meth:`Collection.info` reports."""

    name: str
    path: str
    n_documents: int
    n_chunks: int
    embedder: str
    embedder_sha256: str | None
    vector_dim: int | None
    chunk_size: int
    chunk_overlap: int
    roots: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        data = dict(self.__dict__)
        data["skipped"] = [{"path": p, "reason": r} for p, r in self.skipped]
        return data


def _check_int(name: str, value: object, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


class Collection:
    """A named, persistent collection of documents.

    Args:
        name: one plain name (letters, digits, ``.``, ``_``, ``-``, spaces; at most 64).
        embedder: a :class:`fireside.Model`, :class:`fireside.Embedder`, catalog name or GGUF
            path. Default: the one the collection was built with, else ``all-minilm-l6-v2``.
        chunk_size, chunk_overlap: characters per chunk and shared by neighbours (default
            512 and 64); fixed when the collection is created.
        max_file_bytes: larger files are skipped (default 50 MB).
        n_threads: threads for embedding (default: the physical cores).
        create: create the collection when it does not exist (else
            :class:`~fireside.docs.errors.CollectionNotFoundError`).
        lock_timeout: seconds a write waits for another process's write to finish.
    """

    def __init__(
        self,
        name: str,
        *,
        embedder: EmbedderSpec | None = None,
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        n_threads: int | None = None,
        create: bool = True,
        lock_timeout: float = 600.0,
    ) -> None:
        from filelock import FileLock

        self.name = check_name(name)
        self._max_file_bytes = _check_int("max_file_bytes", max_file_bytes, 1)
        if not isinstance(lock_timeout, (int, float)) or lock_timeout < 0:
            raise ValueError(f"lock_timeout must be a number >= 0, got {lock_timeout!r}")
        self._lock_timeout = float(lock_timeout)
        folder = collection_dir(name)
        db = folder / DB_FILE
        if not db.is_file():
            if not create:
                raise CollectionNotFoundError(
                    f"no collection named {name!r} (create it with `fireside docs add`)"
                )
            folder.mkdir(parents=True, exist_ok=True)
        self.path = db
        self._write_lock = FileLock(str(folder / LOCK_FILE))
        self._lock = threading.RLock()
        self._store = Store(db)
        try:
            self._settle_settings(chunk_size, chunk_overlap)
            self._ref = self._make_ref(embedder, n_threads)
        except BaseException:
            self._store.close()
            raise
        self._n_threads = n_threads
        self._closed = False

    # -- opening ---------------------------------------------------------------------

    def _settle_settings(self, chunk_size: int | None, chunk_overlap: int | None) -> None:
        store = self._store
        stored_size = store.get_meta("chunk_size")
        if stored_size is None:
            size, overlap = check_chunking(
                DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size,
                DEFAULT_CHUNK_OVERLAP if chunk_overlap is None else chunk_overlap,
            )
            with store.transaction():
                if store.get_meta("chunk_size") is None:  # not created meanwhile
                    store.set_meta("chunk_size", str(size))
                    store.set_meta("chunk_overlap", str(overlap))
                    store.set_meta("created_at", str(time.time()))
            stored_size = store.get_meta("chunk_size")
        self._chunk_size = int(stored_size or DEFAULT_CHUNK_SIZE)
        self._chunk_overlap = int(store.get_meta("chunk_overlap") or DEFAULT_CHUNK_OVERLAP)
        for what, asked, have in (
            ("chunk_size", chunk_size, self._chunk_size),
            ("chunk_overlap", chunk_overlap, self._chunk_overlap),
        ):
            if asked is not None and asked != have:
                raise ValueError(
                    f"collection {self.name!r} was made with {what}={have}; to use {asked}, "
                    "make a new collection"
                )

    def _known_fingerprint(self) -> tuple[str, int, int, str] | None:
        meta = self._store.meta()
        try:
            return (
                meta["embedder_path"],
                int(meta["embedder_size"]),
                int(meta["embedder_mtime_ns"]),
                meta["embedder_sha256"],
            )
        except (KeyError, ValueError):
            return None

    def _make_ref(self, embedder: EmbedderSpec | None, n_threads: int | None) -> EmbedderRef:
        known = self._known_fingerprint()
        if embedder is None:
            recorded_path = known[0] if known else None
            if recorded_path and os.path.isfile(recorded_path):
                embedder = recorded_path
            else:
                embedder = self._store.get_meta("embedder_name") or DEFAULT_EMBEDDER
        return EmbedderRef(embedder, n_threads=n_threads, known=known)

    # -- properties ------------------------------------------------------------------

    @property
    def embedder_name(self) -> str:
        """The name of the embedder the collection was built with (or will be)."""
        return self._store.get_meta("embedder_name") or self._ref.name

    @property
    def chunk_size(self) -> int:
        """Characters per chunk."""
        return self._chunk_size

    @property
    def chunk_overlap(self) -> int:
        """Characters shared by consecutive chunks of one section."""
        return self._chunk_overlap

    def info(self) -> CollectionInfo:
        """Counts, settings, embedder, roots and the last update's skips."""
        with self._lock:
            self._live()
            n_docs, n_chunks = self._store.counts()
            return CollectionInfo(
                name=self.name,
                path=str(self.path),
                n_documents=n_docs,
                n_chunks=n_chunks,
                embedder=self.embedder_name,
                embedder_sha256=self._store.get_meta("embedder_sha256"),
                vector_dim=self._store.vector_dim(),
                chunk_size=self._chunk_size,
                chunk_overlap=self._chunk_overlap,
                roots=[spec for spec, _ in self._store.roots()],
                skipped=self._store.skipped(),
            )

    def documents(self) -> list[dict[str, Any]]:
        """The indexed files: ``path``, ``format``, ``title``, ``size``, ``n_chunks``."""
        with self._lock:
            self._live()
            return [
                {"path": d.path, "format": d.format, "title": d.title, "size": d.size,
                 "n_chunks": d.n_chunks}
                for d in sorted(self._store.documents().values(), key=lambda d: d.path)
            ]  # fmt: skip

    # -- writing -----------------------------------------------------------------------

    def _locked_write(self) -> Any:
        from filelock import Timeout

        try:
            return self._write_lock.acquire(timeout=self._lock_timeout)
        except Timeout:
            raise CollectionBusyError(
                f"collection {self.name!r} is being updated by another process "
                f"(waited {self._lock_timeout:g} s for {self._write_lock.lock_file})"
            ) from None

    def _check_embedder(self) -> None:
        recorded = self._store.get_meta("embedder_sha256")
        if recorded is None:
            return
        actual = self._ref.sha256
        if actual != recorded:
            name = self._store.get_meta("embedder_name") or "?"
            raise EmbedderMismatchError(
                f"collection {self.name!r} was indexed with {name} (sha256 {recorded[:12]}), "
                f"not {self._ref.name} (sha256 {actual[:12]}): use that embedder, or rebuild "
                f"the vectors with reembed({self._ref.name!r})",
                expected=(name, recorded),
                actual=(self._ref.name, actual),
            )

    def _record_embedder(self, ref: EmbedderRef) -> None:
        path, size, mtime_ns, sha = ref.fingerprint()
        for key, value in (
            ("embedder_name", ref.name),
            ("embedder_path", path),
            ("embedder_size", str(size)),
            ("embedder_mtime_ns", str(mtime_ns)),
            ("embedder_sha256", sha),
        ):
            self._store.set_meta(key, value)

    def _settings(self) -> indexing.IndexSettings:
        return indexing.IndexSettings(self._chunk_size, self._chunk_overlap, self._max_file_bytes)

    def _embed_and_record(self) -> indexing.Embed:
        """The embed function for indexing; records the embedder before the first vectors."""
        state = {"recorded": self._store.get_meta("embedder_sha256") is not None}

        def embed(texts: Any) -> Any:
            vectors = self._ref.embed(texts)
            if not state["recorded"]:
                with self._store.transaction():
                    self._record_embedder(self._ref)
                state["recorded"] = True
            return vectors

        return embed

    def add(
        self,
        *paths: str | os.PathLike[str],
        progress: Callable[[IndexProgress], None] | None = None,
    ) -> IndexReport:
        """Add folders (recursively), files or glob patterns, then index what changed.

        Returns the report of the update that follows (see :meth:`update`).
        """
        if not paths:
            raise ValueError("add() needs at least one folder, file or glob pattern")
        specs = []
        for raw in paths:
            if not isinstance(raw, (str, os.PathLike)):
                raise TypeError(f"paths must be str or os.PathLike, got {type(raw).__name__}")
            text = os.fspath(raw)
            if not text or "\x00" in text:
                raise ValueError(f"not a path: {text!r}")
            text = os.path.abspath(os.path.expanduser(text))
            if is_glob(text):
                specs.append((text, "glob"))
            elif not os.path.exists(text):
                raise FileNotFoundError(2, "no such file or folder", text)
            else:
                specs.append((text, "path"))
        with self._lock:
            self._live()
            with self._locked_write():
                self._check_embedder()
                with self._store.transaction():
                    for spec, kind in specs:
                        self._store.add_root(spec, kind)
                return self._update_locked(progress)

    def update(self, progress: Callable[[IndexProgress], None] | None = None) -> IndexReport:
        """Re-scan everything added: index new and changed files, drop deleted ones.

        A file is re-read only if its size or modification time changed, and re-embedded
        only if its content hash changed too. ``progress`` is called after each file.
        """
        with self._lock:
            self._live()
            with self._locked_write():
                self._check_embedder()
                return self._update_locked(progress)

    def _update_locked(self, progress: Callable[[IndexProgress], None] | None) -> IndexReport:
        return indexing.update(
            self._store, self._embed_and_record(), self._settings(), progress=progress
        )

    def reembed(
        self, embedder: EmbedderSpec, *, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Rebuild every vector with ``embedder`` and make it the collection's embedder.

        The vectors are computed first and swapped in one transaction, so searches see the
        old vectors or the new ones, never a mix. ``progress(done, total)`` counts chunks.
        Returns the number of chunks embedded.
        """
        with self._lock:
            self._live()
            new = EmbedderRef(embedder, n_threads=self._n_threads)
            with self._locked_write():
                chunks = list(self._store.chunk_texts())
                vectors: list[tuple[int, Any]] = []
                step = 256
                for start in range(0, len(chunks), step):
                    batch = chunks[start : start + step]
                    vectors.extend(zip([i for i, _ in batch], new.embed([t for _, t in batch])))
                    if progress:
                        progress(min(start + step, len(chunks)), len(chunks))
                with self._store.transaction():
                    self._store.replace_vectors(vectors)
                    self._record_embedder(new)
            old, self._ref = self._ref, new
            old.close()
            return len(chunks)

    # -- searching -----------------------------------------------------------------------

    def search(self, query: str, k: int = 5, *, mode: str = "hybrid") -> list[Hit]:
        """The ``k`` chunks that best answer ``query``.

        ``mode``: ``"hybrid"`` (BM25 and vector rankings merged by reciprocal-rank
        fusion), ``"vector"`` or ``"keyword"``. Vector and hybrid search refuse an
        embedder other than the collection's (:class:`EmbedderMismatchError`).
        """
        if not isinstance(query, str) or not query.strip():
            raise ValueError("query must be a non-empty str")
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 1000:
            raise ValueError(f"k must be an integer from 1 to 1000, got {k!r}")
        if mode not in retrieval.MODES:
            raise ValueError(f"mode must be one of {', '.join(retrieval.MODES)}, got {mode!r}")
        with self._lock:
            self._live()
            store = self._store
            if mode == "keyword":
                ranked = [(i, s, "keyword") for i, s in retrieval.keyword_search(store, query, k)]
            else:
                self._check_embedder()
                vector: list[tuple[int, float]] = []
                if store.n_vectors():
                    query_vector = self._ref.embed([query])[0]
                    n = k if mode == "vector" else max(4 * k, 20)
                    vector = retrieval.vector_search(store, query_vector, n)
                if mode == "vector":
                    ranked = [(i, s, "vector") for i, s in vector]
                else:
                    keyword = retrieval.keyword_search(store, query, max(4 * k, 20))
                    ranked = retrieval.fuse(keyword, vector, k)
            rows = store.chunk_rows([i for i, _, _ in ranked])
        return [
            Hit(row.text, row.source, row.location, score, retriever, row.title, row.id)
            for i, score, retriever in ranked
            if (row := rows.get(i)) is not None
        ]

    # -- lifetime ----------------------------------------------------------------------

    def _live(self) -> None:
        if self._closed:
            from fireside.errors import ClosedError

            raise ClosedError(f"collection {self.name!r} is closed")

    def close(self) -> None:
        """Close the database (and the embedder, if the collection loaded it)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._ref.close()
            self._store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Collection({self.name!r}, embedder={self.embedder_name!r})"

    @staticmethod
    def delete(name: str, *, lock_timeout: float = 600.0) -> None:
        """Delete collection ``name`` and its database (waits for a running update)."""
        from filelock import FileLock, Timeout

        folder = collection_dir(name)
        if not (folder / DB_FILE).is_file():
            raise CollectionNotFoundError(f"no collection named {name!r}")
        lock = FileLock(str(folder / LOCK_FILE))
        try:
            with lock.acquire(timeout=lock_timeout):
                shutil.rmtree(folder)
        except Timeout:
            raise CollectionBusyError(
                f"collection {name!r} is being updated by another process"
            ) from None


def list_collections() -> list[str]:
    """The names of the collections on this machine, sorted."""
    root = collections_root()
    try:
        entries = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    names = []
    for entry in entries:
        try:
            check_name(entry)
        except ValueError:
            continue
        if (Path(root) / entry / DB_FILE).is_file():
            names.append(entry)
    return names
