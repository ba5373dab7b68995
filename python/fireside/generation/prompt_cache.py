"""A prompt cache on disk: the KV cells of long prompt prefixes, kept across restarts.

``fireside serve --prompt-cache DIR`` gives every model's engine one :class:`PromptCache`.
When a request ends, the engine hands it the cells of the request's reusable prefix (the
whole prompt chunks, the unit the engine reuses: see "Determinism" in
:mod:`fireside.generation.engine`), if that prefix is at least :attr:`PromptCache.min_tokens`
long and not stored yet; a chat's reply, once the engine has evaluated it again as prompt
chunks while idle (``Engine.realign_pending``), adds the conversation through the reply the
same way. A worker thread writes them to ``DIR/<key>.kv``, where the key
is a SHA-256 of the model file's fingerprint, the versions and context settings
(:func:`fireside.generation.kv_files.kv_settings`) and the prefix's tokens. When a request
arrives whose prompt no slot has cached as far, the engine looks for the longest stored
prefix of it (each chunk boundary, longest first) and restores those cells instead of
evaluating them, so a restarted server answers a returning conversation, system prompt or
LocalDocs context after evaluating only what is new.

Each file is self-describing: a magic line, one JSON line recording the settings, the key,
the token count and the payload's size and SHA-256, then the payload (llama.cpp's sequence
state). A file is used only when all of that matches this engine and the prompt; anything
else (another model or version, other context settings, a truncated, changed or foreign
file) is logged as a warning, removed and the prompt is evaluated as usual.

Bounded: files are evicted least recently used first (a hit or a repeat save touches the
file's mtime) to keep the directory within ``max_bytes``. Several servers may share a
directory: files are written to a unique temporary name and renamed into place (readers
see a whole file or none), and a file that vanishes meanwhile is just a miss.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
from array import array
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fireside.generation.kv_files import settings_problem

log = logging.getLogger("fireside.generation")

SUFFIX = ".kv"
MAGIC = b"FIRESIDE-KV-PREFIX\n"
FORMAT = 1
DEFAULT_MAX_BYTES = 4 << 30
"""The default size bound of a prompt cache directory (4 GiB)."""
DEFAULT_MIN_TOKENS = 256
"""Prefixes shorter than this are not stored (evaluating them is quick anyway)."""
MAX_PENDING_BYTES = 512 << 20
"""Cells waiting to be written; a save beyond this is skipped (the writer is behind)."""
_HEADER_MAX = 1 << 20  # a header lists a key per chunk: 64 hex digits per 64 tokens
_STALE_TMP_S = 3600.0
_NAME = re.compile(r"^[0-9a-f]{64}" + re.escape(SUFFIX) + r"$")
_TMP = re.compile(r"^\.[0-9a-f]{64}\.\d+\.[0-9a-f]+\.tmp$")


@dataclass
class PromptCacheStats:
    """What a prompt cache did since it was opened (``bytes``/``files``: on disk now)."""

    hits: int = 0
    """Prompts whose prefix was restored from disk."""
    misses: int = 0
    """Prompts looked up and not found (nothing stored, or only invalid files)."""
    tokens_restored: int = 0
    """Prompt tokens restored instead of evaluated."""
    saves: int = 0
    """Prefixes written."""
    rejected: int = 0
    """Files found invalid (stale, truncated, changed, foreign), warned about and removed."""
    evictions: int = 0
    """Files removed to stay within the size bound."""
    bytes: int = 0
    files: int = 0
    max_bytes: int = 0


@dataclass(frozen=True)
class Found:
    """A stored prefix read from disk and checked: the cells of ``n_file`` tokens, of
    which the first ``n_tokens`` are the prefix asked for (the rest is cut after
    restoring)."""

    n_tokens: int
    payload: bytes
    path: Path
    n_file: int


class PromptCache:
    """A directory of stored prompt prefixes, shared by a server's engines.

    Args:
        directory: where the files go (created if missing).
        max_bytes: the bound on the files' total size (least recently used go first).
        min_tokens: the shortest prefix stored.

    Raises ``ValueError`` naming the directory when it cannot be created or written.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        max_bytes: int = DEFAULT_MAX_BYTES,
        *,
        min_tokens: int = DEFAULT_MIN_TOKENS,
    ) -> None:
        for name, value in (("max_bytes", max_bytes), ("min_tokens", min_tokens)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.directory = Path(directory).expanduser()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            probe = self.directory / f".probe.{os.getpid()}.{secrets.token_hex(4)}.tmp"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise ValueError(
                f"the prompt cache directory {os.fspath(directory)!r} cannot be used: {error}"
            ) from error
        self.max_bytes = max_bytes
        self.min_tokens = min_tokens
        self._lock = threading.Lock()
        self._stats = PromptCacheStats(max_bytes=max_bytes)
        self._cond = threading.Condition()
        self._queue: deque[tuple[str, bytes, bytes]] = deque()
        self._pending = 0  # bytes queued or being written
        self._closed = False
        # every chunk boundary's key of the files on disk -> (file key, its tokens), so a
        # prompt sharing only the start of a stored one (a system prompt) finds it too
        self._headers: dict[str, tuple[str, int, list[str]]] = {}  # by file name
        self._index: dict[str, tuple[str, int]] = {}
        self._listed = -1  # the directory's mtime when it was last indexed
        self._evict()
        self._writer = threading.Thread(
            target=self._write_loop, name="fireside-prompt-cache", daemon=True
        )
        self._writer.start()

    # -- state -----------------------------------------------------------------------

    def stats(self) -> PromptCacheStats:
        """A snapshot of the counters."""
        with self._lock:
            return replace(self._stats)

    def bind(self, settings: Mapping[str, Any]) -> BoundPromptCache:
        """The cache as one engine uses it: keys and checks for these KV settings."""
        return BoundPromptCache(self, dict(settings))

    def path(self, key: str) -> Path:
        return self.directory / f"{key}{SUFFIX}"

    # -- reading ---------------------------------------------------------------------

    def locate(self, key: str) -> tuple[str, int] | None:
        """The stored file holding the prefix whose key is ``key`` (at one of its chunk
        boundaries): its key and token count."""
        self._refresh()
        with self._lock:
            return self._index.get(key)

    def _refresh(self) -> None:
        """Index the headers of files written since the last look (by anyone)."""
        try:
            listed = self.directory.stat().st_mtime_ns
        except OSError:
            return
        with self._lock:
            if listed == self._listed:
                return
        names = {e.name for e in os.scandir(self.directory) if _NAME.match(e.name)}
        with self._lock:
            known = dict(self._headers)
        headers = {name: known[name] for name in names if name in known}
        for name in names - headers.keys():
            path = self.directory / name
            try:
                header = _header(_head(path))
                keys = header.get("prefix_keys")
                if not isinstance(keys, list) or header.get("key") != name[: -len(SUFFIX)]:
                    raise _Invalid("its header lists no prefix keys")
                headers[name] = (name[: -len(SUFFIX)], int(header["n_tokens"]), keys)
            except FileNotFoundError:
                continue
            except (OSError, _Invalid, KeyError, TypeError, ValueError) as error:
                self.reject(path, str(error) or type(error).__name__)
        index: dict[str, tuple[str, int]] = {}
        for key, n, keys in sorted(headers.values(), key=lambda h: -h[1]):
            for prefix in keys:  # the shortest file holding a prefix wins (less to read)
                index[str(prefix)] = (key, n)
        with self._lock:
            self._headers, self._index, self._listed = headers, index, listed

    def read(
        self, path: Path, key: str, n_tokens: int, settings: Mapping[str, Any]
    ) -> tuple[dict[str, Any], bytes] | None:
        """The checked header and cells of ``path`` (``None``: missing, or invalid: then
        warned about and removed)."""
        try:
            with path.open("rb") as f:
                size = os.fstat(f.fileno()).st_size
                data = f.read(self.max_bytes + _HEADER_MAX + 1)
        except FileNotFoundError:
            return None  # evicted by another server meanwhile
        except OSError as error:
            self.reject(path, f"it cannot be read ({error})")
            return None
        try:
            if len(data) > self.max_bytes + _HEADER_MAX:
                raise _Invalid(f"it has {size} bytes, more than the cache may hold")
            return _check(data, key, n_tokens, settings)
        except _Invalid as invalid:
            self.reject(path, str(invalid))
            return None

    def hit(self, found: Found) -> None:
        """``found`` was restored into a sequence: count it and mark it used."""
        _touch(found.path)
        with self._lock:
            self._stats.hits += 1
            self._stats.tokens_restored += found.n_tokens

    def miss(self) -> None:
        with self._lock:
            self._stats.misses += 1

    def reject(self, path: Path, reason: str) -> None:
        """Warn that ``path`` is not used and why, and remove it."""
        log.warning(
            "prompt cache file %s is not used: %s; it is removed and the prompt is evaluated",
            path,
            reason,
        )
        try:
            size = path.stat().st_size
            path.unlink()
        except OSError:
            size = 0
        with self._lock:
            self._stats.rejected += 1
            self._stats.bytes = max(0, self._stats.bytes - size)
            self._stats.files = max(0, self._stats.files - (1 if size else 0))

    # -- writing ---------------------------------------------------------------------

    def wants(self, n_bytes: int) -> bool:
        """Whether a save of ``n_bytes`` of cells would be written now."""
        with self._cond:
            return self._room(n_bytes)

    def _room(self, n_bytes: int) -> bool:
        return (
            not self._closed
            and n_bytes <= self.max_bytes
            and self._pending + n_bytes <= MAX_PENDING_BYTES
        )

    def put(self, key: str, header: bytes, payload: bytes) -> bool:
        """Queue a file for the writer thread (False: skipped, see :meth:`wants`)."""
        n = len(header) + len(payload)
        with self._cond:
            if not self._room(n):
                return False
            self._queue.append((key, header, payload))
            self._pending += n
            self._cond.notify_all()
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued file is written; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 60.0) -> None:
        """Write what is queued, then stop the writer thread. Idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._writer.join(timeout)

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closed)
                if not self._queue:
                    return  # closed, and everything is written
                key, header, payload = self._queue[0]
            try:
                self._write(key, header, payload)
            except OSError as error:
                log.warning("the prompt cache could not write %s: %s", self.path(key), error)
            finally:
                with self._cond:
                    self._queue.popleft()
                    self._pending -= len(header) + len(payload)
                    self._cond.notify_all()

    def _write(self, key: str, header: bytes, payload: bytes) -> None:
        target = self.path(key)
        if target.exists():  # another server wrote it meanwhile
            _touch(target)
            return
        tmp = self.directory / f".{key}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            with tmp.open("wb") as f:
                f.write(MAGIC)
                f.write(header)
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        with self._lock:
            self._stats.saves += 1
        self._evict()

    def _evict(self) -> None:
        """Remove the least recently used files past :attr:`max_bytes` (and temporary
        files a crashed writer left); refresh the size gauges."""
        files: list[tuple[int, int, Path]] = []
        now = time.time()
        try:
            entries = list(os.scandir(self.directory))
        except OSError as error:
            log.warning("the prompt cache cannot list %s: %s", self.directory, error)
            return
        for entry in entries:
            try:
                if _NAME.match(entry.name) and entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    files.append((st.st_mtime_ns, st.st_size, Path(entry.path)))
                elif (
                    _TMP.match(entry.name)
                    and now - entry.stat(follow_symlinks=False).st_mtime > _STALE_TMP_S
                ):
                    os.unlink(entry.path)
            except OSError:
                continue  # removed by another server meanwhile
        files.sort()
        total = sum(size for _, size, _ in files)
        evicted = 0
        while files and total > self.max_bytes:
            _, size, path = files.pop(0)
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as error:
                log.warning("the prompt cache cannot remove %s: %s", path, error)
                continue
            total -= size
            evicted += 1
        with self._lock:
            self._stats.evictions += evicted
            self._stats.bytes = total
            self._stats.files = len(files)


class BoundPromptCache:
    """One engine's use of a :class:`PromptCache`: its settings, keys and file checks."""

    def __init__(self, cache: PromptCache, settings: dict[str, Any]) -> None:
        self.cache = cache
        self.settings = settings
        self.min_tokens = cache.min_tokens
        self._seed = json.dumps(settings, sort_keys=True).encode() + b"\0"

    def keys(self, tokens: Sequence[int], lengths: Sequence[int]) -> dict[int, str]:
        """The key of each prefix ``tokens[:n]`` for ``n`` in ``lengths`` (ascending)."""
        digest = hashlib.sha256(self._seed)
        done, keys = 0, {}
        for n in lengths:
            digest.update(array("i", tokens[done:n]).tobytes())
            done = n
            keys[n] = digest.copy().hexdigest()
        return keys

    def find(
        self, tokens: Sequence[int], lengths: Sequence[int], *, shortest: int = 1
    ) -> Found | None:
        """The longest stored valid prefix of ``tokens``, at least ``shortest`` long, among
        ``lengths`` (every chunk boundary of ``tokens`` up to the longest wanted, ascending),
        alone in its file or the start of a longer one."""
        keys = self.keys(tokens, lengths)
        for i in reversed(range(len(lengths))):
            n = lengths[i]
            if n < shortest:
                break
            where = self.cache.locate(keys[n])
            if where is None or where[1] < n:
                continue
            key, n_file = where
            path = self.cache.path(key)
            checked = self.cache.read(path, key, n_file, self.settings)
            if checked is None:
                continue
            header, payload = checked
            prefixes = header.get("prefix_keys")
            if not isinstance(prefixes, list) or len(prefixes) <= i:
                self.cache.reject(path, "its header lists too few prefix keys")
                continue
            if prefixes[i] != keys[n]:
                self.cache.reject(path, "it holds another prefix than its header says")
                continue
            return Found(n, payload, path, n_file)
        self.cache.miss()
        return None

    def stored(self, key: str) -> bool:
        """Whether the prefix ``key`` is on disk, alone or as the start of a longer one
        (then that file is marked used)."""
        where = self.cache.locate(key)
        if where is None:
            return False
        path = self.cache.path(where[0])
        if not path.is_file():
            return False
        _touch(path)
        return True

    def save(self, keys: Sequence[str], n_tokens: int, payload: bytes) -> bool:
        """Queue the cells of a prefix of ``n_tokens`` whose chunk boundaries have
        ``keys`` (the last is the prefix's own)."""
        key = keys[-1]
        header = {
            "format": FORMAT,
            "key": key,
            "prefix_keys": list(keys),
            "n_tokens": n_tokens,
            "size": len(payload),
            "sha256": hashlib.sha256(payload).hexdigest(),
            **self.settings,
        }
        line = json.dumps(header, sort_keys=True).encode() + b"\n"
        return self.cache.put(key, line, payload)


class _Invalid(Exception):
    pass


def _header(data: bytes) -> dict[str, Any]:
    """The header at the start of a file's ``data``; raises :class:`_Invalid`."""
    if not data.startswith(MAGIC):
        raise _Invalid("it is not a fireside prompt cache file")
    end = data.find(b"\n", len(MAGIC), len(MAGIC) + _HEADER_MAX)
    if end < 0:
        raise _Invalid("its header is truncated")
    try:
        header = json.loads(data[len(MAGIC) : end])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _Invalid("its header is not JSON") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _Invalid(f"it has another format ({header!r:.60})")
    header["_end"] = end
    return header


def _check(
    data: bytes, key: str, n_tokens: int, settings: Mapping[str, Any]
) -> tuple[dict[str, Any], bytes]:
    """The header and payload of a file's ``data`` if it is a valid prefix file for
    these; raises :class:`_Invalid` naming what is wrong."""
    header = _header(data)
    end = header.pop("_end")
    problem = settings_problem(header, settings)
    if problem is not None:
        raise _Invalid(problem)
    if header.get("key") != key or header.get("n_tokens") != n_tokens:
        raise _Invalid("it holds another prefix than its name says")
    payload = data[end + 1 :]
    if len(payload) != header.get("size"):
        raise _Invalid(f"it has {len(payload)} bytes of cells, {header.get('size')} were saved")
    if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise _Invalid("its cells do not match their SHA-256 (changed or damaged)")
    return header, payload


def _head(path: Path) -> bytes:
    """The start of a file, up to the end of its header line (or the header limit)."""
    with path.open("rb") as f:
        data = f.read(len(MAGIC) + (16 << 10))
        while b"\n" not in data[len(MAGIC) :] and len(data) < len(MAGIC) + _HEADER_MAX:
            more = f.read(64 << 10)
            if not more:
                break
            data += more
    return data


def _touch(path: Path) -> None:
    try:
        now = time.time_ns()
        os.utime(path, ns=(now, now))
    except OSError:
        pass  # removed by another server meanwhile
