"""Model downloads started over HTTP, one per model, shared by every client pulling it.

A pull runs :func:`fireside.hub.pull` in a thread of its own. Clients follow it as an
async iterator of :class:`PullState` snapshots: a second client asking for the same model
while it downloads joins the same download (and sees the same bytes arrive) instead of
starting another. When the last client following a download goes away, the download is
cancelled at its next chunk; the partial file stays in the store and the next pull
resumes it (the hub's own lock keeps other processes from downloading the same file at
the same time). Progress is reported at each whole percent (each MiB when the size is
unknown), so a fast download does not flood the event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from fireside.hub.progress import ProgressCallback

Fetch = Callable[[str, ProgressCallback], Path]
"""Downloads model ``name``, reporting to the callback; returns the local path."""

_UNKNOWN_SIZE_STEP = 1 << 20


@dataclass(frozen=True)
class PullState:
    """A snapshot of one download: bytes so far, the total when known, and how it ended
    (``path`` once done, ``error`` when it failed)."""

    done: int
    total: int | None
    path: Path | None = None
    error: BaseException | None = None

    @property
    def finished(self) -> bool:
        return self.path is not None or self.error is not None


class _Watcher:
    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()

    def wake(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self.event.set)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            pass


class _Download:
    def __init__(self, key: str, name: str) -> None:
        self.key = key
        self.name = name
        self.lock = threading.Lock()
        self.state = PullState(0, None)
        self.watchers: set[_Watcher] = set()
        self.cancelled = False
        self.reported: tuple[int, int | None] | None = None
        self.thread: threading.Thread | None = None

    def snapshot(self) -> PullState:
        with self.lock:
            return self.state

    def progress(self, done: int, total: int | None) -> bool:
        """The hub's progress callback (download thread): ``False`` cancels."""
        with self.lock:
            self.state = PullState(done, total)
            step = (done * 100 // total, total) if total else (done // _UNKNOWN_SIZE_STEP, None)
            watchers = list(self.watchers) if step != self.reported else []
            self.reported = step
            cancelled = self.cancelled
        for watcher in watchers:
            watcher.wake()
        return not cancelled

    def finish(self, path: Path | None, error: BaseException | None) -> None:
        with self.lock:
            self.state = PullState(self.state.done, self.state.total, path, error)
            watchers = list(self.watchers)
        for watcher in watchers:
            watcher.wake()


class Pulls:
    """The downloads this server runs (kept on ``app.state.pulls``).

    Args:
        fetch: downloads one model; by default :func:`fireside.hub.pull`.
    """

    def __init__(self, fetch: Fetch | None = None) -> None:
        self._fetch = fetch or _hub_pull
        self._lock = threading.Lock()
        self._active: dict[str, _Download] = {}
        self._idle = threading.Condition(self._lock)

    def active(self) -> list[str]:
        """The keys of the downloads running now."""
        with self._lock:
            return list(self._active)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no download runs (blocks); whether that happened in ``timeout`` s."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._active, timeout)

    def _join(self, key: str, name: str, watcher: _Watcher) -> _Download:
        with self._lock:
            download = self._active.get(key)
            start = download is None
            if download is None:
                download = self._active[key] = _Download(key, name)
            with download.lock:
                download.cancelled = False  # a client came back before the cancel took
                download.watchers.add(watcher)
        watcher.event.set()  # a joining client sees where the download is at once
        if start:
            download.thread = threading.Thread(
                target=self._run, args=(download,), name=f"pull {key}", daemon=True
            )
            download.thread.start()
        return download

    def _leave(self, download: _Download, watcher: _Watcher) -> None:
        with download.lock:
            download.watchers.discard(watcher)
            if not download.watchers and not download.state.finished:
                download.cancelled = True

    def _run(self, download: _Download) -> None:
        path: Path | None = None
        error: BaseException | None = None
        try:
            path = self._fetch(download.name, download.progress)
        except BaseException as e:  # noqa: BLE001 - reported to every client following it
            error = e
        finally:
            with self._lock:
                self._active.pop(download.key, None)
                self._idle.notify_all()
            download.finish(path, error)

    def watch(self, key: str, name: str) -> Watch:
        """Start (or join) the download of ``name`` (``key``: what identifies the model,
        e.g. its catalog name) and follow it; :meth:`Watch.close` stops following (the
        last client to stop cancels the download)."""
        watcher = _Watcher()
        return Watch(self, self._join(key, name, watcher), watcher)

    def following(self, key: str) -> int:
        """How many clients follow the download of ``key`` now (0: none runs)."""
        with self._lock:
            download = self._active.get(key)
        if download is None:
            return 0
        with download.lock:
            return len(download.watchers)

    def close(self) -> None:
        """Cancel every download (at its next chunk); the server is stopping."""
        with self._lock:
            downloads = list(self._active.values())
        for download in downloads:
            with download.lock:
                download.cancelled = True


class Watch:
    """One client following a download: ``async for state in watch`` yields its state as
    it changes, ending with the finished state."""

    def __init__(self, pulls: Pulls, download: _Download, watcher: _Watcher) -> None:
        self._pulls = pulls
        self._download = download
        self._watcher = watcher

    async def __aiter__(self) -> AsyncIterator[PullState]:
        last: PullState | None = None
        try:
            while True:
                await self._watcher.event.wait()
                self._watcher.event.clear()
                state = self._download.snapshot()
                if state != last:
                    yield state
                    last = state
                if state.finished:
                    return
        finally:
            self.close()

    def close(self) -> None:
        """Stop following (again: nothing)."""
        self._pulls._leave(self._download, self._watcher)


def _hub_pull(name: str, progress: ProgressCallback) -> Path:
    from fireside.hub import pull

    return pull(name, progress=progress)
