"""LocalDocs: search your own documents, offline.

>>> import fireside
>>> col = fireside.Collection("notes")           # stored under $FIRESIDE_CACHE_DIR/collections
>>> report = col.add("~/Documents/notes")        # folders, files or glob patterns
>>> for hit in col.search("how do I renew the certificate?", k=5):
...     print(hit.source, hit.location, hit.score)

Readers per format (:mod:`fireside.docs.readers`), structure-following chunks
(:mod:`~fireside.docs.chunking`), one SQLite database per collection with FTS5 and a
sqlite-vec index (:mod:`~fireside.docs.store`), and hybrid retrieval
(:mod:`~fireside.docs.retrieval`).
"""

from __future__ import annotations

from fireside.docs.collection import Collection, CollectionInfo, list_collections
from fireside.docs.embedder import DEFAULT_EMBEDDER
from fireside.docs.errors import (
    CollectionBusyError,
    CollectionFormatError,
    CollectionNameError,
    CollectionNotFoundError,
    DocsError,
    EmbedderMismatchError,
)
from fireside.docs.hits import Hit
from fireside.docs.locations import Location
from fireside.docs.report import IndexProgress, IndexReport, Skipped

__all__ = [
    "DEFAULT_EMBEDDER",
    "Collection",
    "CollectionBusyError",
    "CollectionFormatError",
    "CollectionInfo",
    "CollectionNameError",
    "CollectionNotFoundError",
    "DocsError",
    "EmbedderMismatchError",
    "Hit",
    "IndexProgress",
    "IndexReport",
    "Location",
    "Skipped",
    "list_collections",
]
