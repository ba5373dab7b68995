"""Collection names and where collections live.

A name is one path component chosen by a user: it is checked before any path is built
from it, and the path built is checked again to stay inside the collections root after
resolving symlinks (the same rule as PEP 706's tar filter).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from fireside.docs.errors import CollectionNameError

MAX_NAME_LENGTH = 64
"""The longest collection name, in characters."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]*")
DB_FILE = "index.sqlite"
"""The database file inside a collection's folder."""


def collections_root() -> Path:
    """The folder holding every collection: ``$FIRESIDE_CACHE_DIR/collections``."""
    from fireside.hub.config import cache_dir

    return cache_dir() / "collections"


def check_name(name: object) -> str:
    """``name`` if it is a valid collection name, else :class:`CollectionNameError`.

    Valid: 1 to 64 characters, letters, digits, ``.``, ``_``, ``-`` and spaces, starting
    with a letter or digit, not ending with a space or dot (so never ``.``, ``..``, a path
    separator or a NUL).
    """
    if not isinstance(name, str):
        raise CollectionNameError(f"a collection name must be a str, got {type(name).__name__}")
    shown = repr(name[:80])
    if not name:
        raise CollectionNameError("a collection name cannot be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise CollectionNameError(
            f"collection name {shown} is longer than {MAX_NAME_LENGTH} characters"
        )
    if "/" in name or "\\" in name or "\x00" in name or ".." in name:
        raise CollectionNameError(
            f"collection name {shown} must be one plain name: no path separators, '..' or NUL"
        )
    if not _NAME.fullmatch(name) or name.endswith((" ", ".")):
        raise CollectionNameError(
            f"collection name {shown} may use letters, digits, '.', '_', '-' and spaces, "
            "starting with a letter or digit"
        )
    return name


def collection_dir(name: str, root: Path | None = None) -> Path:
    """The folder of collection ``name`` (validated), proven to lie inside the root."""
    check_name(name)
    base = (root or collections_root()).expanduser()
    base_real = Path(os.path.realpath(base))
    path = base / name
    real = Path(os.path.realpath(path))
    if real.parent != base_real:
        raise CollectionNameError(f"collection {name!r} resolves outside {base_real}")
    return path
