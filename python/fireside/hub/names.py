"""Parsing what a user passes as a model: a path, a catalog name, a Hub file or a URL.

Accepted forms, tried in this order:

1. an existing local file (``~`` is expanded);
2. ``hf:owner/repo/path/to/file.gguf`` — one file of a Hugging Face repository;
3. ``https://...`` (or ``http://``) — a URL, optionally ending in ``#sha256=<hex>``;
4. ``owner/repo:QUANT`` or ``owner/repo`` — the GGUF of that quantization in a Hub
   repository (``Q4_K_M`` when no tag is given), like llama.cpp's ``-hf``;
5. a catalog name or alias, any case.

Anything else is an error. In particular a name that looks like a path (it has a path
separator, a ``..`` component, or a ``.gguf`` suffix) but is not an existing file is
never sent anywhere: it raises :class:`~fireside.errors.ModelNotFoundError`. A name is
at most :data:`MAX_NAME_CHARS` characters. File paths inside a repository and a URL's
file name are checked by :mod:`.paths` (no traversal, no absolute path, no NUL, bounded
length; a URL's name after every stage of percent-decoding).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from ..errors import ModelNotFoundError
from . import paths
from .catalog import CatalogEntry, closest_model, load_catalog

DEFAULT_QUANT = "Q4_K_M"
MAX_NAME_CHARS = 4096
"""The longest model name (or path, or URL) accepted."""

_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_REPO = re.compile(rf"(?P<repo>{_SEGMENT}/{_SEGMENT})")
_REPO_QUANT = re.compile(rf"{_REPO.pattern}(?::(?P<quant>[A-Za-z0-9][A-Za-z0-9._-]*))?")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_GGML_HINT = re.compile(r"(\.bin$|ggml)", re.IGNORECASE)


@dataclass(frozen=True)
class LocalFile:
    """A model file the user already has."""

    path: Path


@dataclass(frozen=True)
class CatalogRef:
    """A catalog entry; ``replaced`` when the name was an older model's."""

    entry: CatalogEntry
    name: str
    replaced: bool = False


@dataclass(frozen=True)
class HubFile:
    """One file of a Hub repository."""

    repo: str
    filename: str
    revision: str = "main"
    sha256: str | None = None


@dataclass(frozen=True)
class HubQuant:
    """The GGUF of one quantization in a Hub repository (picked from its file list)."""

    repo: str
    quant: str
    explicit: bool


@dataclass(frozen=True)
class UrlRef:
    """A file at a plain URL; ``sha256`` from a ``#sha256=`` fragment."""

    url: str
    sha256: str | None = None

    @property
    def basename(self) -> str:
        """The URL's file name, percent-decoded and checked (see :mod:`.paths`)."""
        return paths.url_file_name(urlsplit(self.url).path.rsplit("/", 1)[-1], what=self.url)


ModelRef = LocalFile | CatalogRef | HubFile | HubQuant | UrlRef


def _looks_like_path(name: str) -> bool:
    return (
        "/" in name
        or "\\" in name
        or name.startswith(("~", "."))
        or ".." in re.split(r"[/\\]", name)
        or name.lower().endswith((".gguf", ".bin"))
    )


def _not_found(name: str, why: str) -> ModelNotFoundError:
    return ModelNotFoundError(f"{name}: {why} — closest catalog model: {closest_model(name)}")


def validate_repo_path(name: str, path: str) -> str:
    """Check a file path inside a repository (no traversal, no absolute path)."""
    try:
        paths.relative_parts(path, what=name)
    except paths.UnsafePathError as e:
        raise paths.UnsafePathError(
            f"{name[:200]!r}: {path[:120]!r} is not a valid file path inside a repository "
            f"({e.reason})",
            reason=e.reason,
        ) from None
    return path


def _expand(name: str | os.PathLike[str]) -> Path:
    """``~`` expanded where it can be (``~nosuchuser`` stays as typed)."""
    try:
        return Path(name).expanduser()
    except RuntimeError:
        return Path(name)


def _parse_hf(name: str) -> HubFile:
    rest = name[3:]
    m = re.match(rf"(?P<repo>{_SEGMENT}/{_SEGMENT})/(?P<file>.+)", rest)
    if not m or ".." in m["repo"].split("/"):
        raise ValueError(f"{name!r} is not of the form hf:owner/repo/file.gguf")
    filename = validate_repo_path(name, m["file"])
    if not filename.lower().endswith(".gguf"):
        raise ValueError(f"{name!r}: only .gguf files can be loaded")
    return HubFile(repo=m["repo"], filename=filename)


def _parse_url(name: str) -> UrlRef:
    parts = urlsplit(name)
    if not parts.hostname:
        raise ValueError(f"{name!r} is not a valid URL (no host)")
    sha256 = None
    if parts.fragment:
        key, _, value = parts.fragment.partition("=")
        if key != "sha256" or not _SHA256.fullmatch(value.lower()):
            raise ValueError(f"{name!r}: the only URL fragment understood is #sha256=<64 hex>")
        sha256 = value.lower()
    url = parts._replace(fragment="").geturl()
    if not parts.path.rsplit("/", 1)[-1]:
        raise ValueError(f"{name!r}: the URL does not end in a file name")
    ref = UrlRef(url=url, sha256=sha256)
    ref.basename  # noqa: B018 - raises UnsafePathError for a name that is not safe
    return ref


def _kind(path: Path) -> Literal["file", "directory", "fifo", "other"] | None:
    """What is at ``path`` (symlinks followed), or ``None`` when nothing can be there."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # missing, a name too long, an unreadable folder
        return None
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    return "fifo" if stat.S_ISFIFO(mode) else "other"


def _not_a_model_file(path: Path | str, kind: str) -> ModelNotFoundError:
    what = {
        "directory": "is a directory",
        "fifo": "is a named pipe (FIFO)",
    }.get(kind, "is not a regular file (a socket or a device)")
    return ModelNotFoundError(f"{path}: {what}, not a GGUF model file")


def parse_model_name(name: str | os.PathLike[str]) -> ModelRef:
    """Classify ``name`` (see the module docstring); raise on anything malformed.

    Raises ``TypeError`` for a non-string, ``ValueError`` for a malformed name and
    :class:`~fireside.errors.ModelNotFoundError` for a well-formed one that names
    nothing (with the closest catalog name).
    """
    if isinstance(name, os.PathLike):
        path = _expand(os.fspath(name))
        kind = _kind(path)
        if kind == "file":
            return LocalFile(path.resolve())
        if kind is not None:
            raise _not_a_model_file(path, kind)
        if len(str(path)) > MAX_NAME_CHARS:
            raise ValueError(_too_long(str(path)))
        raise ModelNotFoundError(f"{path}: no such file")
    if not isinstance(name, str):
        raise TypeError(f"a model must be a name or a path, got {type(name).__name__}")
    if "\x00" in name:
        raise ValueError("a model name cannot contain a NUL character")
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(_too_long(name))
    if _kind(_expand(name)) == "file":
        return LocalFile(_expand(name).resolve())
    name = name.strip()
    if not name:
        raise ValueError("the model name is empty")
    path = _expand(name)
    kind = _kind(path)
    if kind == "file":
        return LocalFile(path.resolve())

    lowered = name.lower()
    if lowered.startswith("hf:"):
        return _parse_hf(name)
    if lowered.startswith(("https://", "http://")):
        return _parse_url(name)
    if re.match(r"[a-z][a-z0-9+.-]*://", lowered):
        raise ValueError(f"{name!r}: only https:// (or http://) URLs are supported")

    if "/" not in name and "\\" not in name:
        # a catalog name wins over a folder of the same name in the working directory
        found = load_catalog().find(name)
        if found is not None:
            entry, replaced = found
            return CatalogRef(entry=entry, name=name, replaced=replaced)
    if kind is not None:
        raise _not_a_model_file(name, kind)
    m = _REPO_QUANT.fullmatch(name)
    if m and ".." not in m["repo"].split("/") and not lowered.endswith((".gguf", ".bin")):
        quant = m["quant"]
        return HubQuant(
            repo=m["repo"], quant=(quant or DEFAULT_QUANT).upper(), explicit=bool(quant)
        )
    if _looks_like_path(name):
        if _GGML_HINT.search(name):
            raise ggml_error(name)
        raise ModelNotFoundError(f"{name}: no such file (and not a model name)")
    if _GGML_HINT.search(name):
        raise ggml_error(name)
    raise _not_found(name, "not a local file or a catalog model")


def _too_long(name: str) -> str:
    return (
        f"the model name {name[:60]!r}... is {len(name):,} characters long "
        f"(at most {MAX_NAME_CHARS:,})"
    )


def ggml_error(name: str) -> ModelNotFoundError:
    """The error for an old GGML model name or file."""
    return _not_found(name, "GGML files are no longer supported; GGUF is required")
