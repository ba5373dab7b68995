"""Downloading one file: ask the server about it, then a locked, resumable, verified transfer.

Built on huggingface_hub's public pieces: :func:`~huggingface_hub.hf_hub_url` and
:func:`~huggingface_hub.get_hf_file_metadata` (the HEAD request that yields the ETag,
the LFS sha256, the size and the CDN location), ``huggingface_hub.utils.http_stream_backoff``
(the streamed GET, on huggingface_hub's shared HTTP client) and ``hf_raise_for_status``,
:class:`~huggingface_hub.HfApi` (repository listings) and its token handling.

fireside drives the file handling itself instead of calling ``hf_hub_download``,
because huggingface_hub (2.x) discards a partial download when the process stops,
while fireside promises to resume after a restart:

* the partial file is ``<name>.<content tag>.incomplete`` beside the final name, where
  the tag is derived from the expected sha256 or ETag: a later run with the same
  content resumes it with a ``Range`` request, a run for changed content discards it;
* an inter-process lock (``<name>.lock``) makes concurrent pulls wait for one another:
  the second finds the finished file and returns it;
* the sha256 is the catalog's when it has one, else the Hub's LFS sha256 (the ETag of
  every large file): a mismatch deletes the file and raises
  :class:`~fireside.errors.DownloadError` naming both hashes;
* the free disk space is checked before the transfer starts;
* the file must start with the GGUF magic (an HTML error page never passes for a model);
* only then is it renamed to its final name, so a final name always holds a whole file;
* a transfer that receives less than :data:`STALL_BYTES` in any
  ``FIRESIDE_DOWNLOAD_STALL_TIMEOUT`` seconds (60) is abandoned: a server that trickles
  a byte a second cannot hold a download open forever (the partial file is kept);
* a server that sends more bytes than it announced is cut off;
* the destination is always inside the store (see :mod:`.store`, :mod:`.paths`): names
  from a listing or a redirect never choose where a file is written.

``HF_ENDPOINT`` is read at each call and passed to huggingface_hub explicitly, so it
need not be set before huggingface_hub is imported.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from ..errors import Cancelled, DownloadError, ModelNotFoundError, OfflineError
from . import config, paths, store
from .formats import magic_format
from .progress import Progress, ProgressSpec
from .quants import RepoFile

logger = logging.getLogger("fireside.hub")

_SHA256 = re.compile(r"[0-9a-f]{64}")
_HASH_BLOCK = 1 << 20

STALL_BYTES = 64 * 1024
"""A download must receive this many bytes in every stall window (see
:func:`fireside.hub.config.download_stall_timeout`), else it is abandoned."""


def _http() -> Any:
    """The HTTP client module huggingface_hub uses (httpx2 from 2.0, httpx in 1.x).

    Imported on first use, like huggingface_hub itself, so importing fireside stays fast.
    """
    try:
        import httpx2

        return httpx2
    except ImportError:  # pragma: no cover - depends on the installed huggingface_hub
        import httpx

        return httpx


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fireside")
    except PackageNotFoundError:
        return "unknown"


def _headers(*, token: bool | None) -> dict[str, str]:
    from huggingface_hub.utils import build_hf_headers

    return build_hf_headers(token=token, library_name="fireside", library_version=_version())


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return (parts.scheme, (parts.hostname or "").lower(), parts.port)


@dataclass(frozen=True)
class Remote:
    """What the server said about a file, and how to GET it."""

    label: str  # for messages: "owner/repo/file" or the URL
    url: str  # the address to GET (the CDN location after a redirect)
    size: int | None
    etag: str | None
    sha256: str | None  # expected content hash, when known
    headers: dict[str, str] = field(repr=False, default_factory=dict)
    commit: str | None = None

    @property
    def identity(self) -> str | None:
        """What names this content (to decide whether a partial file may be resumed)."""
        return self.sha256 or self.etag


class InsufficientDiskSpace(DownloadError):
    """The file system has less free space than the download needs."""


def check_disk_space(folder: Path, needed: int) -> None:
    """Raise :class:`InsufficientDiskSpace` if ``folder``'s file system has under ``needed`` bytes free."""
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed:
        raise InsufficientDiskSpace(
            f"not enough disk space in {folder}: the download needs {needed / 1e6:,.1f} MB "
            f"and only {free / 1e6:,.1f} MB are free"
        )


def _network_error(what: str, exc: BaseException) -> DownloadError:
    try:
        url = str(getattr(exc, "request").url)  # noqa: B009 - raises when httpx has none
    except (AttributeError, RuntimeError):
        url = what
    host = urlsplit(url).netloc or "the server"
    if isinstance(exc, _http().TimeoutException):
        return DownloadError(f"{what}: {host} gave no answer within {config.hub_timeout():g} s")
    return DownloadError(f"{what}: cannot reach {host} ({exc})")


def _translate(exc: Exception, *, what: str, repo: str | None = None) -> Exception:
    """Turn a huggingface_hub / HTTP error into fireside's error, with a useful message."""
    from huggingface_hub.utils import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(exc, OfflineModeIsEnabled):
        return OfflineError(f"{what}: offline mode forbids fetching it ({exc})")
    if isinstance(exc, GatedRepoError):
        return DownloadError(
            f"{repo or what} is gated: accept its licence on its Hub page, then log in "
            "(`hf auth login`) or set HF_TOKEN"
        )
    if isinstance(exc, RepositoryNotFoundError):
        return ModelNotFoundError(
            f"no Hub repository named {repo or what} (if it is private, log in with "
            "`hf auth login` or set HF_TOKEN)"
        )
    if isinstance(exc, RevisionNotFoundError):
        return ModelNotFoundError(f"{what}: no such revision on the Hub")
    if isinstance(exc, EntryNotFoundError):
        return ModelNotFoundError(f"{what}: no such file on the Hub")
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        if status == 404:
            return ModelNotFoundError(f"{what}: not found (HTTP 404)")
        if status in (401, 403):
            return DownloadError(
                f"{what}: access denied (HTTP {status}); log in with `hf auth login` or set HF_TOKEN"
            )
        return DownloadError(f"{what}: the server answered HTTP {status}")
    if isinstance(exc, _http().TransportError):
        return _network_error(what, exc)
    return DownloadError(f"{what}: {exc}")


def _metadata(url: str, *, what: str, token: bool | None, repo: str | None = None) -> Any:
    from huggingface_hub import get_hf_file_metadata
    from huggingface_hub.utils import HfHubHTTPError, OfflineModeIsEnabled

    try:
        return get_hf_file_metadata(
            url,
            token=token,
            timeout=config.hub_timeout(),
            library_name="fireside",
            library_version=_version(),
            endpoint=config.hub_endpoint(),
        )
    except (HfHubHTTPError, OfflineModeIsEnabled, _http().TransportError) as e:
        raise _translate(e, what=what, repo=repo) from e


def hub_remote(
    repo: str, filename: str, *, revision: str = "main", sha256: str | None = None
) -> Remote:
    """Ask the Hub about one file (one HEAD request); raise fireside errors on failure.

    ``sha256`` is the expected hash (from the catalog). When the Hub reports a different
    LFS sha256 the file changed upstream, and :class:`DownloadError` is raised before
    anything is downloaded.
    """
    from huggingface_hub import hf_hub_url

    what = f"{repo}/{filename}"
    url = hf_hub_url(repo, filename, revision=revision, endpoint=config.hub_endpoint())
    meta = _metadata(url, what=what, token=None, repo=repo)
    etag = meta.etag
    lfs_sha = etag if etag and _SHA256.fullmatch(etag) else None
    if sha256 and lfs_sha and sha256 != lfs_sha:
        raise DownloadError(
            f"{what}: the Hub now serves different content than the catalog expects "
            f"(expected sha256 {sha256}, the Hub reports {lfs_sha})",
            expected_sha256=sha256,
            actual_sha256=lfs_sha,
        )
    headers = _headers(token=None)
    location = meta.location or url
    if _origin(location) != _origin(url):
        # a signed CDN address: the Hub token must not travel there
        headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
    return Remote(
        label=what,
        url=location,
        size=meta.size,
        etag=etag,
        sha256=sha256 or lfs_sha,
        headers=headers,
        commit=meta.commit_hash,
    )


def url_remote(url: str, *, sha256: str | None = None) -> Remote:
    """Ask a plain URL about its file (HEAD, following redirects); no Hub token is sent."""
    target = url
    meta = None
    for _ in range(8):
        meta = _metadata(target, what=url, token=False)
        if meta.size is not None or not meta.location or meta.location == target:
            break
        target = meta.location
    assert meta is not None
    return Remote(
        label=url,
        url=meta.location or target,
        size=meta.size,
        etag=meta.etag,
        sha256=sha256,
        headers=_headers(token=False),
    )


def list_repo(repo: str, *, revision: str = "main") -> list[RepoFile]:
    """The files of a Hub repository (one listing request, paginated by the Hub)."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile as HfRepoFile
    from huggingface_hub.utils import HfHubHTTPError, OfflineModeIsEnabled

    api = HfApi(endpoint=config.hub_endpoint(), library_name="fireside", library_version=_version())
    try:
        tree = list(api.list_repo_tree(repo, recursive=True, revision=revision))
    except (HfHubHTTPError, OfflineModeIsEnabled, _http().TransportError) as e:
        raise _translate(e, what=repo, repo=repo) from e
    files = []
    for item in tree:
        if not isinstance(item, HfRepoFile):
            continue  # a folder
        try:
            paths.relative_parts(item.path, what=repo)
        except paths.UnsafePathError as e:
            # the Hub never lists such a path: this listing is not to be trusted at all
            raise DownloadError(f"{repo}: the repository listing names an unsafe path: {e}") from e
        lfs = item.lfs
        files.append(RepoFile(path=item.path, size=item.size, sha256=lfs.sha256 if lfs else None))
    return files


class _Sink:
    """Where received bytes go: the partial file, the running hash and the progress."""

    def __init__(self, f: BinaryIO, progress: Progress, hasher: Any):
        self._f = f
        self._progress = progress
        self.hasher = hasher

    def write(self, data: bytes) -> None:
        self._f.write(data)
        self.hasher.update(data)
        self._progress.update(len(data))

    def restart(self) -> None:
        """Drop what the file holds (the server ignored ``Range`` and sends it all)."""
        self._f.seek(0)
        self._f.truncate(0)
        self._progress.update(-self._progress.done)
        self.hasher = hashlib.sha256()

    def tell(self) -> int:
        return self._f.tell()


class _Stalled(Exception):
    """The transfer went too slowly for too long (see :data:`STALL_BYTES`)."""


class _Oversized(Exception):
    """The server sent more bytes than it announced."""


def _sha256_of(path: Path, limit: int | None = None) -> Any:
    hasher = hashlib.sha256()
    remaining = limit
    with path.open("rb") as f:
        while remaining is None or remaining > 0:
            block = f.read(_HASH_BLOCK if remaining is None else min(_HASH_BLOCK, remaining))
            if not block:
                break
            hasher.update(block)
            if remaining is not None:
                remaining -= len(block)
    return hasher


def verify(path: Path, *, expected_sha256: str | None, actual_sha256: str, label: str) -> None:
    """Delete ``path`` and raise :class:`DownloadError` unless it is the GGUF we expect."""
    with path.open("rb") as f:
        head = f.read(4)
    if expected_sha256 and actual_sha256 != expected_sha256:
        path.unlink(missing_ok=True)
        raise DownloadError(
            f"{label}: checksum mismatch, the download was deleted "
            f"(expected sha256 {expected_sha256}, got {actual_sha256})",
            expected_sha256=expected_sha256,
            actual_sha256=actual_sha256,
        )
    if magic_format(head) != "gguf":
        path.unlink(missing_ok=True)
        raise DownloadError(
            f"{label}: the server did not send a GGUF file (it starts with {head!r})"
        )


_RESUME_ATTEMPTS = 5


def _get(remote: Remote, sink: _Sink, have: int, *, window: float) -> None:
    """One GET of the bytes from ``have`` on into ``sink``; raise when it stalls
    (under :data:`STALL_BYTES` in ``window`` seconds)."""
    from huggingface_hub.utils import hf_raise_for_status, http_stream_backoff

    http = _http()
    headers = dict(remote.headers)
    if have:
        headers["Range"] = f"bytes={have}-"
    timeout = http.Timeout(window, connect=config.hub_timeout())
    try:
        with http_stream_backoff(
            "GET",
            remote.url,
            headers=headers,
            timeout=timeout,
            retry_on_exceptions=(),
            retry_on_status_codes=(408, 429),
        ) as response:
            hf_raise_for_status(response)
            if have and response.status_code != 206:
                sink.restart()  # the server ignored the Range header: start again from 0
            started = time.monotonic()
            recent = 0
            for chunk in response.iter_bytes():
                sink.write(chunk)
                if remote.size is not None and sink.tell() > remote.size:
                    raise _Oversized(f"more than the {remote.size:,} bytes it announced")
                recent += len(chunk)
                now = time.monotonic()
                if recent >= STALL_BYTES:
                    started, recent = now, 0
                elif now - started > window:
                    raise _Stalled(f"under {STALL_BYTES // 1024} KiB arrived in {window:g} s")
    except http.ReadTimeout as e:
        raise _Stalled(f"nothing arrived for {window:g} s") from e
    if remote.size is not None and sink.tell() < remote.size:
        raise http.RemoteProtocolError(
            f"the server closed the transfer at {sink.tell():,} of {remote.size:,} bytes"
        )


def _transfer(remote: Remote, sink: _Sink, have: int, *, window: float) -> None:
    """GET the rest of the file into ``sink``; resume after a dropped connection.

    Each new attempt must start past where the previous one did.
    """
    attempts = 0
    while True:
        try:
            _get(remote, sink, have, window=window)
            return
        except _http().TransportError as e:
            reached = sink.tell()
            attempts = attempts + 1 if reached <= have else 0
            if not remote.identity or attempts >= _RESUME_ATTEMPTS or reached <= have:
                raise
            logger.info("%s: connection lost at %d bytes (%s); resuming", remote.label, reached, e)
            have = reached


def fetch(
    remote: Remote,
    dest: Path,
    *,
    progress: ProgressSpec = True,
    force: bool = False,
    record: dict[str, Any] | None = None,
) -> Path:
    """Download ``remote`` to ``dest`` (see the module docstring); return ``dest``.

    With ``force``, an existing ``dest`` is replaced once the new copy has verified.
    """
    from huggingface_hub.utils import HfHubHTTPError

    window = config.download_stall_timeout()  # a bad setting fails before anything starts
    with store.locked(dest):
        if dest.is_file() and not force:
            return dest  # another process finished it while we waited
        identity = remote.identity
        partial = store.partial_path(dest, identity or remote.url)
        for stale in store.stale_partials(dest, keep=partial):
            stale.unlink(missing_ok=True)
        have = partial.stat().st_size if partial.is_file() and identity else 0
        if remote.size is not None and have > remote.size:
            have = 0
        if have == 0:
            partial.unlink(missing_ok=True)
        if remote.size is not None:
            check_disk_space(dest.parent, remote.size - have)
        if have:
            logger.info("resuming %s at %d bytes", remote.label, have)
        hasher = _sha256_of(partial, have) if have else hashlib.sha256()
        with (
            Progress(progress, desc=dest.name, total=remote.size, initial=have) as bar,
            partial.open("r+b" if have else "wb") as f,
        ):
            f.seek(have)
            sink = _Sink(f, bar, hasher)
            try:
                _transfer(remote, sink, have, window=window)
                f.flush()
                os.fsync(f.fileno())
            except (Cancelled, DownloadError):
                raise
            except _Stalled as e:
                raise DownloadError(
                    f"{remote.label}: the download stalled: {e} "
                    f"(FIRESIDE_DOWNLOAD_STALL_TIMEOUT); {f.tell():,} bytes are kept"
                    + ("; the next attempt resumes" if identity else "")
                ) from e
            except _Oversized as e:
                partial.unlink(missing_ok=True)
                raise DownloadError(
                    f"{remote.label}: the server sent {e}; the download was stopped and deleted"
                ) from e
            except (HfHubHTTPError, _http().TransportError) as e:
                if (
                    isinstance(e, HfHubHTTPError)
                    and e.response is not None
                    and e.response.status_code == 416
                ):
                    partial.unlink(missing_ok=True)  # our partial file no longer fits the server's
                kept = (
                    f" ({f.tell():,} bytes are kept; the next attempt resumes)" if identity else ""
                )
                raise DownloadError(f"{_translate(e, what=remote.label)}{kept}") from e
            except OSError as e:
                raise DownloadError(f"{remote.label}: {e}") from e
        actual = sink.hasher.hexdigest()
        verify(partial, expected_sha256=remote.sha256, actual_sha256=actual, label=remote.label)
        os.replace(partial, dest)
        store.write_record(
            dest,
            sha256=actual,
            size=dest.stat().st_size,
            etag=remote.etag,
            commit=remote.commit,
            **(record or {}),
        )
        return dest
