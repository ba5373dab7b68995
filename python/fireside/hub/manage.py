"""Managing downloaded models: list, pull, remove (the ``fireside list/pull/rm`` verbs)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelNotFoundError, OfflineError
from . import config, paths, quants, store
from .catalog import CatalogEntry, catalog_entries
from .names import CatalogRef, HubFile, HubQuant, LocalFile, UrlRef, parse_model_name
from .progress import ProgressSpec, validate
from .resolve import check_local, fetch, find_local


@dataclass(frozen=True)
class ModelListing:
    """One row of :func:`list_models`: a catalog model, or a downloaded file outside it."""

    name: str
    entry: CatalogEntry | None
    downloaded: bool
    path: Path | None

    @property
    def kind(self) -> str | None:
        return self.entry.kind if self.entry else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view: the catalog facts plus ``downloaded`` and ``path``."""
        data: dict[str, Any] = self.entry.to_dict() if self.entry else {"name": self.name}
        data["downloaded"] = self.downloaded
        data["path"] = str(self.path) if self.path else None
        if self.path is not None and self.entry is None:
            data["size"] = self.path.stat().st_size
        return data


def list_models(*, kind: str | None = None, downloaded: bool | None = None) -> list[ModelListing]:
    """The catalog, each model with whether it is on disk and where; then any other
    downloaded files (``hf:owner/repo/file`` or URL downloads). No network access.

    ``kind`` keeps only ``"chat"`` or ``"embedding"`` models; ``downloaded`` keeps only
    the models that are (``True``) or are not (``False``) on disk.
    """
    if kind not in (None, "chat", "embedding"):
        raise ValueError(f"kind must be 'chat' or 'embedding', got {kind!r}")
    rows: list[ModelListing] = []
    claimed: set[Path] = set()
    for entry in catalog_entries():
        local = find_local(CatalogRef(entry=entry, name=entry.name))
        path = local[0] if local else None
        if path is not None:
            claimed.add(path.resolve())
        rows.append(ModelListing(entry.name, entry, path is not None, path))
    if kind is None:
        for path in store.downloaded_files():
            if path.resolve() in claimed or quants.is_later_part(path.name):
                continue
            record = store.read_record(path) or {}
            rows.append(ModelListing(str(record.get("name") or path.name), None, True, path))
    else:
        rows = [r for r in rows if r.kind == kind]
    if downloaded is not None:
        rows = [r for r in rows if r.downloaded == downloaded]
    return rows


def pull(
    name: str | os.PathLike[str], *, progress: ProgressSpec = True, force: bool = False
) -> Path:
    """Make sure model ``name`` is downloaded; return its path.

    A model already on disk is returned without any network access unless ``force``,
    which downloads it again (the old copy is replaced only by a verified new one). A
    local file is returned as it is. Raises like :func:`fireside.hub.resolve_model`.
    """
    progress = validate(progress)
    ref = parse_model_name(name)
    label = os.fspath(name)
    local = find_local(ref)
    if local and not force:
        return check_local(local[0])
    if isinstance(ref, LocalFile):
        return check_local(ref.path)
    if config.is_offline():
        raise OfflineError(f"{label}: cannot download it while offline")
    return check_local(fetch(ref, progress=progress, force=force, requested=label))


def _stored_paths(name: str | os.PathLike[str]) -> list[Path]:
    ref = parse_model_name(name)
    if isinstance(ref, LocalFile):
        root = config.models_dir()
        try:
            paths.inside(root, ref.path, what=str(ref.path))
        except paths.UnsafePathError:
            raise paths.UnsafePathError(
                f"{ref.path} is not in fireside's model store ({root.resolve()}); fireside "
                "only removes files it downloaded"
            ) from None
        return [ref.path]
    if isinstance(ref, CatalogRef):
        candidates = [store.hub_path(ref.entry.repo, ref.entry.file)]
    elif isinstance(ref, HubFile):
        candidates = [store.hub_path(ref.repo, ref.filename)]
    elif isinstance(ref, HubQuant):
        candidates = store.local_quant(ref.repo, ref.quant, explicit=ref.explicit)
    else:
        assert isinstance(ref, UrlRef)
        candidates = [store.url_path(ref.url, ref.basename)]
    return [p for p in candidates if p.is_file()]


def remove(name: str | os.PathLike[str]) -> list[Path]:
    """Delete a downloaded model (all parts of a split one); return the deleted paths.

    Only files in fireside's store are deleted: never a file elsewhere, nor one in
    huggingface_hub's cache (:class:`~fireside.hub.paths.UnsafePathError` for a path
    outside the store). Raises :class:`~fireside.errors.ModelNotFoundError` when
    the model is not downloaded, ``BlockingIOError`` while another process downloads it.
    """
    paths = _stored_paths(name)
    if not paths:
        label = os.fspath(name)
        ref = parse_model_name(name)
        elsewhere = find_local(ref)
        if elsewhere:
            raise ModelNotFoundError(
                f"{label} is not in fireside's model store; it is at {elsewhere[0]} "
                "(huggingface_hub's cache: remove it with `hf cache delete`)"
            )
        raise ModelNotFoundError(f"{label} is not downloaded")
    for path in paths:
        store.delete(path)
    return paths
