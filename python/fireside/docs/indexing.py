"""The indexing loop: scan, compare, read, chunk, embed, write, one file at a time.

A file is re-read only when its size or modification time changed, and re-embedded only
when its sha256 changed too. Each file's change is one transaction, so an interrupted
update leaves every file either as it was or fully replaced, and the next update does the
rest. The caller holds the collection's write lock.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fireside.docs.chunking import chunk_sections
from fireside.docs.readers import Unreadable, parse
from fireside.docs.report import IndexProgress, IndexReport, Skipped
from fireside.docs.scanning import scan
from fireside.docs.store import DocumentRow, Store

Embed = Callable[[Sequence[str]], npt.NDArray[np.float32]]
Progress = Callable[[IndexProgress], None]

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


@dataclass(frozen=True)
class IndexSettings:
    """How files become chunks."""

    chunk_size: int
    chunk_overlap: int
    max_file_bytes: int


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n} bytes"


def _read(path: str, cap: int) -> tuple[bytes, os.stat_result]:
    """The file's bytes (at most ``cap + 1``) and its status after reading."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Unreadable("not a regular file")
        parts = []
        remaining = cap + 1
        while remaining > 0:
            part = os.read(fd, min(remaining, 1 << 20))
            if not part:
                break
            parts.append(part)
            remaining -= len(part)
        return b"".join(parts), os.fstat(fd)
    finally:
        os.close(fd)


class _Run:
    def __init__(
        self, store: Store, embed: Embed, settings: IndexSettings, progress: Progress | None
    ) -> None:
        self.store = store
        self.embed = embed
        self.settings = settings
        self.progress = progress
        self.report = IndexReport()

    def remove(self, doc: DocumentRow) -> None:
        with self.store.transaction():
            self.store.remove_document(doc.id)
        self.report.removed.append(doc.path)

    def skip(self, path: str, reason: str, doc: DocumentRow | None, *, keep: bool = False) -> str:
        """Record a skip; a stale indexed version goes too unless ``keep``."""
        self.report.skipped.append(Skipped(path, reason))
        if doc is not None and not keep:
            self.remove(doc)
        return "skipped"

    def one(self, path: str, fmt: str, doc: DocumentRow | None) -> str:
        cap = self.settings.max_file_bytes
        try:
            before = os.stat(path)
        except FileNotFoundError:
            if doc is not None:
                self.remove(doc)
                return "removed"
            return self.skip(path, "vanished before it could be read", None)
        except OSError as e:
            return self.skip(path, f"cannot read: {e.strerror or e}", doc)
        if before.st_size > cap:
            return self.skip(
                path, f"larger than the {_size(cap)} limit ({_size(before.st_size)})", doc
            )
        if doc is not None and (doc.size, doc.mtime_ns) == (before.st_size, before.st_mtime_ns):
            self.report.unchanged += 1
            return "unchanged"
        try:
            data, after = _read(path, cap)
        except FileNotFoundError:
            if doc is not None:
                self.remove(doc)
                return "removed"
            return self.skip(path, "vanished while being read", None)
        except Unreadable as e:
            return self.skip(path, str(e), doc)
        except OSError as e:
            return self.skip(path, f"cannot read: {e.strerror or e}", doc)
        if len(data) > cap:
            return self.skip(path, f"larger than the {_size(cap)} limit (it grew)", doc)
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns) or len(
            data
        ) != after.st_size:
            return self.skip(
                path, "changed while being read (the next update indexes it)", doc, keep=True
            )
        digest = hashlib.sha256(data).hexdigest()
        if doc is not None and doc.sha256 == digest:
            with self.store.transaction():
                self.store.touch(doc.id, after.st_mtime_ns)
            self.report.unchanged += 1
            return "unchanged"
        try:
            parsed = parse(fmt, data)
        except Unreadable as e:
            return self.skip(path, str(e), doc)
        del data
        chunks = chunk_sections(
            parsed.sections, self.settings.chunk_size, self.settings.chunk_overlap
        )
        if not chunks:
            return self.skip(path, "no text to index", doc)
        try:
            vectors = self.embed([chunk.text for chunk in chunks])
        except ValueError as e:
            return self.skip(path, f"cannot embed: {e}", doc)
        with self.store.transaction():
            self.store.put_document(
                path=path,
                fmt=parsed.format,
                title=parsed.title,
                size=after.st_size,
                mtime_ns=after.st_mtime_ns,
                sha256=digest,
                chunks=chunks,
                vectors=vectors,
            )
        self.report.embedded_chunks += len(chunks)
        if doc is None:
            self.report.added.append(path)
            return "added"
        self.report.updated.append(path)
        return "updated"


def update(
    store: Store,
    embed: Embed,
    settings: IndexSettings,
    *,
    progress: Progress | None = None,
    max_files: int | None = None,
) -> IndexReport:
    """Bring the store in line with its roots; return what changed."""
    run = _Run(store, embed, settings, progress)
    found = scan(store.roots(), **({"max_files": max_files} if max_files else {}))
    run.report.skipped.extend(Skipped(path, reason) for path, reason in found.skipped)
    documents = store.documents()
    gone = [doc for path, doc in documents.items() if path not in found.files]
    total = len(found.files) + len(gone)
    done = 0
    for doc in gone:
        run.remove(doc)
        done += 1
        if progress:
            progress(IndexProgress(done, total, doc.path, "removed"))
    for path in sorted(found.files):
        action = run.one(path, found.files[path], documents.get(path))
        done += 1
        if progress:
            progress(IndexProgress(done, total, path, action))
    with store.transaction():
        store.set_skipped((s.path, s.reason) for s in run.report.skipped)
    return run.report
