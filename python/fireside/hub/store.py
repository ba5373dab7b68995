"""fireside's model store: where downloaded files live on disk.

Layout under :func:`fireside.hub.config.models_dir` (``~/.cache/fireside/models``)::

    owner--repo/path/in/repo/file.gguf          a Hub file (whatever source it came from)
    owner--repo/path/in/repo/file.gguf.fireside.json   what was downloaded, when, its sha256
    owner--repo/.../file.gguf.<tag>.incomplete  a download in progress (resumable)
    owner--repo/.../file.gguf.lock              the lock two processes take to download it
    urls/<hash of the URL>/file.gguf            a file fetched from a plain URL

A file appears under its final name only once it is complete and verified (it is
renamed into place), so any ``*.gguf`` here is whole. Files already in huggingface_hub's
own cache are used where they are, read-only.

Every path here is built from parts checked by :mod:`.paths` and checked again to lie
inside the store after ``resolve()``: a repository name, a file path from a listing or a
URL can never name a file elsewhere. Stored files always end in ``.gguf`` (a URL's file
name gets the suffix when it lacks it), and :func:`delete` refuses any path outside.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from . import config, paths, quants
from .quants import RepoFile

RECORD_SUFFIX = ".fireside.json"
LOCK_SUFFIX = ".lock"
PARTIAL_SUFFIX = ".incomplete"

logger = logging.getLogger("fireside.hub")


def _contained(path: Path, *, what: str) -> Path:
    return paths.inside(config.models_dir(), path, what=what)


def repo_dir(repo: str) -> Path:
    """The folder of one Hub repository's files (``owner--name``)."""
    what = f"repository {repo[:120]!r}"
    owner, slash, name = repo.partition("/") if isinstance(repo, str) else ("", "", "")
    if not slash:
        raise paths.UnsafePathError(f"{what}: a repository is named owner/name")
    for part in (owner, name):
        paths.component(part, what=what)
        if "--" in part:  # as on the Hub: it would blur owner--name folders together
            raise paths.UnsafePathError(f"{what}: a repository name cannot contain '--'")
    return _contained(config.models_dir() / f"{owner}--{name}", what=what)


def hub_path(repo: str, filename: str) -> Path:
    """Where the store keeps ``filename`` (a path inside the repository) of ``repo``."""
    what = f"{repo[:120]}/{str(filename)[:120]}"
    parts = paths.relative_parts(filename, what=what)
    if not parts[-1].lower().endswith(".gguf"):
        raise paths.UnsafePathError(f"{what}: only .gguf files are stored")
    return _contained(repo_dir(repo).joinpath(*parts), what=what)


def url_file_name(basename: str) -> str:
    """The name the store gives the file of a URL whose file name is ``basename``."""
    name = paths.component(basename, what="the URL's file name")
    return name if name.lower().endswith(".gguf") else f"{name}.gguf"


def url_path(url: str, basename: str) -> Path:
    """Where the store keeps the file at ``url`` (``basename``: its decoded file name)."""
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    dest = config.models_dir() / "urls" / digest / url_file_name(basename)
    return _contained(dest, what=url[:200])


def partial_path(dest: Path, identity: str) -> Path:
    """The in-progress file for ``dest``; ``identity`` (a hash or ETag) names its content."""
    tag = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]
    return dest.with_name(f"{dest.name}.{tag}{PARTIAL_SUFFIX}")


def stale_partials(dest: Path, keep: Path | None = None) -> list[Path]:
    """In-progress files for ``dest`` other than ``keep`` (left by an older version)."""
    if not dest.parent.is_dir():
        return []
    prefix = dest.name + "."
    return [
        p
        for p in dest.parent.iterdir()
        if p.name.startswith(prefix) and p.name.endswith(PARTIAL_SUFFIX) and p != keep
    ]


@contextlib.contextmanager
def locked(dest: Path) -> Iterator[None]:
    """Hold the inter-process lock that guards downloading ``dest`` (inside the store)."""
    _contained(dest, what=str(dest))
    dest.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(dest) + LOCK_SUFFIX)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        logger.info("waiting for another process that is downloading %s", dest.name)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def write_record(path: Path, **facts: Any) -> None:
    """Remember where ``path`` came from (next to it, written atomically)."""
    record = {
        "file": path.name,
        "downloaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    record.update(facts)
    target = path.with_name(path.name + RECORD_SUFFIX)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, target)


def read_record(path: Path) -> dict[str, Any] | None:
    """The record written for ``path``, or ``None``."""
    try:
        data = json.loads(path.with_name(path.name + RECORD_SUFFIX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def in_hf_cache(repo: str, filename: str, revision: str) -> Path | None:
    """The file if huggingface_hub's cache holds it for ``revision`` (no network)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(
        repo, filename, cache_dir=config.hf_cache_dir(), revision=revision
    )
    return Path(found) if isinstance(found, str) else None


def local_repo_files(repo: str) -> list[RepoFile]:
    """The complete GGUF files the store holds for ``repo`` (safe names only)."""
    root = repo_dir(repo)
    if not root.is_dir():
        return []
    found = []
    for p in sorted(root.rglob("*.gguf")):
        relative = p.relative_to(root).as_posix()
        try:
            hub_path(repo, relative)
        except paths.UnsafePathError:
            continue  # not something fireside wrote (or a folder linked elsewhere)
        if p.is_file():
            found.append(RepoFile(path=relative, size=p.stat().st_size))
    return found


def local_quant(repo: str, quant: str, *, explicit: bool) -> list[Path]:
    """The downloaded file (or parts) of ``quant`` in ``repo``, or ``[]``.

    Without an explicit tag, the file an earlier untagged request chose is used (its
    record says so), else the default quantization only: another quantization that
    happens to be on disk is not what an untagged name means online either.
    """
    files = local_repo_files(repo)
    if not explicit:
        chosen_before = [
            f
            for f in files
            if (read_record(hub_path(repo, f.path)) or {}).get("default_for") == repo
        ]
        if chosen := quants.pick(chosen_before, quant, explicit=False):
            return [hub_path(repo, f.path) for f in chosen]
    chosen = quants.pick(files, quant, explicit=True)
    return [hub_path(repo, f.path) for f in chosen]


def downloaded_files() -> list[Path]:
    """Every complete model file in the store."""
    root = config.models_dir()
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*.gguf") if p.is_file())


def delete(path: Path) -> None:
    """Remove a stored file with its record, partial downloads and lock; prune empty folders.

    Raises :class:`~fireside.hub.paths.UnsafePathError` for a path outside the store
    (nothing is deleted), ``BlockingIOError`` when another process is downloading that
    file right now.
    """
    _contained(path, what=f"removing {str(path)[:200]}")
    lock_path = path.with_name(path.name + LOCK_SUFFIX)
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise BlockingIOError(f"{path.name} is being downloaded by another process") from None
    try:
        for extra in [path, path.with_name(path.name + RECORD_SUFFIX), *stale_partials(path)]:
            extra.unlink(missing_ok=True)
    finally:
        lock.release()
    with contextlib.suppress(OSError):
        lock_path.unlink()
    root = config.models_dir().resolve()
    parent = path.parent.resolve()
    while parent != root and root in parent.parents:
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent
