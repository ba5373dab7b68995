"""The exceptions of LocalDocs collections (all :class:`fireside.errors.FiresideError`)."""

from __future__ import annotations

from fireside.errors import FiresideError


class DocsError(FiresideError):
    """Base class of the errors a document collection raises on purpose."""


class CollectionNameError(DocsError, ValueError):
    """A collection name is not one safe path component (separators, ``..``, NUL, length)."""


class CollectionNotFoundError(DocsError, LookupError):
    """No collection of that name exists (and it was not asked to be created)."""


class CollectionBusyError(DocsError, TimeoutError):
    """Another process kept the collection's write lock longer than the timeout."""


class EmbedderMismatchError(DocsError, ValueError):
    """The collection's vectors were made by another embedder than the one given.

    ``expected`` and ``actual`` are ``(name, sha256)`` pairs.
    """

    def __init__(self, message: str, *, expected: tuple[str, str], actual: tuple[str, str]) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class CollectionFormatError(DocsError, RuntimeError):
    """A collection's database is not one this version of fireside can read."""
