"""The model manager: every downloaded model served by name, loaded on first use.

One :class:`ModelManager` lives on ``app.state.models``. A request names a model (a
catalog name or alias, Ollama's ``name:tag`` included, a file name with or without
``.gguf``); :meth:`ModelManager.acquire` finds it among the servable models (those the
app was created with, then every model in fireside's store), loads it if needed and
returns its :class:`~fireside.server.serving.Service` (one model, one engine). Loading
runs in a worker thread; requests for a model being loaded wait for that same load.

Limits, as Ollama has them:

* at most ``max_models`` loaded at once, and their estimated memory (weights plus KV
  cache, :mod:`fireside.server.model_memory`) within ``memory_budget`` (default: the memory
  free at start). To make room the least recently used *idle* model is unloaded; a model
  with requests in flight never is (the load waits for one to finish, up to
  :data:`ROOM_WAIT` seconds, then 503). A model that can never fit is a 503 at once.
* an idle model is unloaded ``keep_alive`` seconds after its last request ended (a timer
  on the event loop, cancelled when a request arrives); a request's own ``keep_alive``
  replaces it for that model: ``0`` unloads right after the reply, negative keeps it.

A request holds a lease on its model from :meth:`acquire` until its response has been
sent (:class:`ModelLeases`, an ASGI middleware, releases it), so streaming replies count
as in flight to their end. Models handed over already loaded (a
:class:`fireside.Model` given to ``create_app``) belong to the caller and are never
unloaded.
"""

from __future__ import annotations

import asyncio
import difflib
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

from fireside.errors import FiresideError
from fireside.server.errors import APIError
from fireside.server.model_memory import OVERHEAD, estimate

if TYPE_CHECKING:
    from fireside.generation.prompt_cache import PromptCache
    from fireside.hub.catalog import CatalogEntry
    from fireside.model import Model
    from fireside.server.config import ServerConfig
    from fireside.server.docs_api import DocsService
    from fireside.server.metrics import Metrics
    from fireside.server.serving import Service

ROOM_WAIT = 300.0
"""Seconds a load waits for busy models to finish before answering 503."""
LEASES = "fireside.model_leases"
"""The ASGI scope key under which a request's leases are kept."""


def without_latest(name: str) -> str:
    """``"smollm2:latest"`` -> ``"smollm2"`` (Ollama's default tag); others unchanged."""
    name = name.strip()
    return name[: -len(":latest")] if name.lower().endswith(":latest") else name


@dataclass(frozen=True)
class Servable:
    """A model this server can serve: its id, file, catalog entry and every name it
    answers to (lower-cased)."""

    id: str
    path: Path
    entry: CatalogEntry | None
    names: frozenset[str]
    model: Model | None = None  # handed over loaded: the caller's, never unloaded

    @property
    def key(self) -> Path:
        return self.path.resolve()

    @property
    def size(self) -> int:
        """Bytes on disk."""
        try:
            return self.path.stat().st_size
        except OSError:
            return 0


def _names(id_: str, path: Path, entry: CatalogEntry | None, *more: str) -> frozenset[str]:
    names = {id_, path.name, path.stem, *more}
    if entry is not None:
        names |= {entry.name, *entry.aliases, *entry.replaces}
    return frozenset(n.lower() for n in names if n)


def _entry_of(path: Path) -> CatalogEntry | None:
    from fireside.hub.catalog import catalog_entries

    return next((e for e in catalog_entries() if e.file == path.name), None)


@dataclass
class Loaded:
    """A loaded model: its service, estimated memory and how it is being used."""

    servable: Servable
    service: Service
    size: int
    keep_alive: float
    loaded_at: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.monotonic)
    in_flight: int = 0
    expires_at: float | None = None  # wall-clock time of the idle unload; None: never
    timer: asyncio.TimerHandle | None = None

    @property
    def pinned(self) -> bool:
        return self.servable.model is not None


@dataclass
class _Pending:
    task: asyncio.Future[Loaded]
    waiters: int = 0


class ModelManager:
    """The models a server serves, loaded on demand (see the module docstring).

    Args:
        config: the server's settings (slots, context, limits, ``max_models``,
            ``memory_budget``, ``keep_alive``).
        metrics: shared by every model's engine.
        docs: the served collections, shared by every model (owned by the app).
        given: models to serve first and load now (paths, names or loaded
            :class:`fireside.Model` objects); errors surface here, before a port is bound.
    """

    def __init__(
        self,
        config: ServerConfig,
        *,
        metrics: Metrics,
        docs: DocsService | None = None,
        given: Sequence[Any] = (),
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.docs = docs
        self.max_models = config.max_models
        self.memory_budget = config.memory_budget or _free_memory()
        self._loaded: dict[Path, Loaded] = {}
        self._pending: dict[Path, _Pending] = {}
        self._reserved: dict[Path, int] = {}  # loading or unloading: memory still counted
        self._changed = asyncio.Event()  # set (and replaced) whenever anything changes
        self._tasks: set[asyncio.Future[Any]] = set()
        self._aliases: dict[str, Path] = {}
        self._given: list[Servable] = []
        self._started = False
        self.n_loads = 0  # models loaded since the start (a counter for tests and metrics)
        self.prepared = threading.Event()
        """Set once the server has prepared for loading models (see :meth:`start`)."""
        self.prompt_cache: PromptCache | None = None
        """The prompt cache on disk every engine shares (``config.prompt_cache``)."""
        if config.prompt_cache is not None:
            from fireside.generation.prompt_cache import PromptCache

            self.prompt_cache = PromptCache(config.prompt_cache, config.prompt_cache_size)
            metrics.watch_prompt_cache(self.prompt_cache.stats)
        try:
            for i, model in enumerate(given):
                servable = self._given_servable(model, config.model_id if i == 0 else None)
                self._given.append(servable)
                record = self._open(servable)
                self._loaded[servable.key] = record
        except BaseException:
            for record in self._loaded.values():
                record.service.close()
            if self.prompt_cache is not None:
                self.prompt_cache.close()
            raise

    # -- names ---------------------------------------------------------------------------

    def _given_servable(self, model: Any, model_id: str | None) -> Servable:
        from fireside.model import Model
        from fireside.model_path import resolve_model_path
        from fireside.server.serving import default_model_id

        if isinstance(model, Model):
            path = model.path
            id_ = model_id or model.name
            entry = _entry_of(path)
            return Servable(id_, path, entry, _names(id_, path, entry, model.name), model)
        path = resolve_model_path(model)
        entry = _entry_of(path)
        id_ = model_id or default_model_id(model, path)
        return Servable(id_, path, entry, _names(id_, path, entry, os.fspath(model)))

    def servable(self) -> list[Servable]:
        """Every model this server can serve: the given ones, then the downloaded ones
        (reads the model store: call it in a worker thread)."""
        from fireside.hub import list_models

        found = list(self._given)
        seen = {s.key for s in found}
        for listing in list_models(downloaded=True):
            path = listing.path
            if path is None or not path.is_file() or path.resolve() in seen:
                continue
            seen.add(path.resolve())
            entry = listing.entry
            id_ = entry.name if entry is not None else path.name.removesuffix(".gguf")
            found.append(Servable(id_, path, entry, _names(id_, path, entry, listing.name)))
        return found

    def find(self, name: str) -> Servable | None:
        """The servable model ``name`` means, or ``None`` (may read the store: call it in a
        worker thread unless :meth:`find_loaded` found it).

        The same model :meth:`servable` lists first among those answering to ``name``,
        but only the catalog entries that can answer to it are looked for on disk (a
        catalog entry's names, file name included, are known without looking)."""
        known = self.find_loaded(name)
        if known is not None:
            return known
        wanted = without_latest(name).lower()
        found = self._search(wanted)
        if found is not None:
            self._aliases[wanted] = found.key
        return found

    def _search(self, wanted: str) -> Servable | None:
        from fireside.hub import quants, store
        from fireside.hub.catalog import catalog_entries, get_entry
        from fireside.hub.names import CatalogRef
        from fireside.hub.resolve import find_local

        entry = get_entry(wanted)
        for servable in self._given:
            if wanted in servable.names or (entry is not None and servable.entry is entry):
                return servable
        seen = {s.key for s in self._given}
        entries = catalog_entries()

        def local(e: CatalogEntry) -> Path | None:
            paths = find_local(CatalogRef(entry=e, name=e.name))
            return paths[0] if paths else None

        for i, e in enumerate(entries):
            file_name = Path(e.file).name  # the name of its file, in the store or HF's cache
            names = _names(e.name, Path(file_name), e)
            if e is not entry and wanted not in names:
                continue
            path = local(e)
            if path is None or not path.is_file() or path.resolve() in seen:
                continue
            # an earlier entry with the same file (only one of that name can be) lists it
            if any(
                Path(o.file).name == file_name and (p := local(o)) and p.resolve() == path.resolve()
                for o in entries[:i]
            ):
                continue
            return Servable(e.name, path, e, names)
        for path in store.downloaded_files():
            if quants.is_later_part(path.name) or path.resolve() in seen:
                continue
            record = store.read_record(path) or {}
            listed = str(record.get("name") or path.name)
            id_ = path.name.removesuffix(".gguf")
            names = _names(id_, path, None, listed)
            if wanted not in names:
                continue
            # a catalog model's file is listed as that model: its file has its file name,
            # unless linked to under another one
            linked = path.is_symlink()
            if any(
                (linked or Path(e.file).name == path.name)
                and (p := local(e))
                and p.resolve() == path.resolve()
                for e in entries
            ):
                continue
            return Servable(id_, path, None, names)
        return None

    def find_loaded(self, name: str) -> Servable | None:
        """The given or loaded model ``name`` means (no disk access), or ``None``."""
        wanted = without_latest(name).lower()
        for servable in [*self._given, *(r.servable for r in self._loaded.values())]:
            if wanted in servable.names or self._aliases.get(wanted) == servable.key:
                return servable
        return None

    def _answers(self, servable: Servable, name: str) -> bool:
        wanted = without_latest(name).lower()
        return wanted in servable.names or self._aliases.get(wanted) == servable.key

    def close_matches(self, name: str, n: int = 3) -> list[str]:
        """The servable ids most like ``name``, then catalog names."""
        from fireside.hub.catalog import closest_models

        wanted = without_latest(name).lower()
        ids = [s.id for s in self.servable()]
        found = difflib.get_close_matches(wanted, ids, n=n, cutoff=0.3)
        found += [m for m in closest_models(wanted, n) if m not in found]
        return found[:n]

    def not_found(self, name: str, n_listed: int = 6) -> APIError:
        """The 404 for a model this server cannot serve, naming the close matches and
        the models it serves (reads the store: call it in a worker thread)."""
        from fireside.hub.catalog import get_entry

        entry = get_entry(without_latest(name))
        if entry is not None:
            return APIError(
                404,
                f"model '{name}' ({entry.name}) is not downloaded: download it with "
                f"`fireside pull {entry.name}`, /api/pull or the chat page's Models view",
                param="model",
                code="model_not_found",
            )
        matches = ", ".join(f"'{m}'" for m in self.close_matches(name))
        ids = [s.id for s in self.servable()]
        served = ", ".join(f"'{i}'" for i in ids[:n_listed]) or "none yet"
        if len(ids) > n_listed:
            served += f" and {len(ids) - n_listed} more"
        return APIError(
            404,
            f"model '{name}' not found (close matches: {matches}); this server serves "
            f"{served}; download others with `fireside pull NAME` or /api/pull",
            param="model",
            code="model_not_found",
        )

    async def resolve(self, name: str) -> Servable:
        """The servable model ``name`` means, or the 404 naming close matches."""
        servable = self.find_loaded(name)
        if servable is None:
            servable = await anyio.to_thread.run_sync(self.find, name)
        if servable is None:
            raise await anyio.to_thread.run_sync(self.not_found, name)
        return servable

    # -- state ---------------------------------------------------------------------------

    def loaded(self) -> list[Loaded]:
        """The loaded models, most recently used first."""
        return sorted(self._loaded.values(), key=lambda r: -r.last_used)

    def loaded_record(self, servable: Servable) -> Loaded | None:
        return self._loaded.get(servable.key)

    def services(self) -> list[Service]:
        return [r.service for r in self._loaded.values()]

    @property
    def primary(self) -> Service | None:
        """The first given model's service while it is loaded."""
        if not self._given:
            return None
        record = self._loaded.get(self._given[0].key)
        return record.service if record is not None else None

    def _used(self) -> int:
        return sum(r.size for r in self._loaded.values()) + sum(self._reserved.values())

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- loading ---------------------------------------------------------------------------

    def _open(self, servable: Servable) -> Loaded:
        """Load ``servable`` and build its service (blocks: a worker thread, or startup)."""
        from fireside.defaults import default_n_ctx, kv_bytes_per_token
        from fireside.model import Model
        from fireside.server.engine import Engine
        from fireside.server.serving import Service

        config = self.config
        model = servable.model
        if model is None:
            model = Model(
                servable.path,
                embedding=True,  # no single-sequence context: the engine makes its own
                n_threads=config.n_threads,
                n_gpu_layers=config.n_gpu_layers,
                chat_template=config.chat_template,
                n_batch=config.n_batch,
            )
        try:
            core = model.core
            kv = kv_bytes_per_token(core.n_layer, core.n_embd, core.n_head, core.n_head_kv)
            # tokens per slot: as asked, else the default context for the whole KV budget
            n_ctx = config.ctx_size or default_n_ctx(core.n_ctx_train, kv * config.parallel)
            engine = Engine(
                core,
                parallel=config.parallel,
                n_ctx_seq=n_ctx,
                n_batch=config.n_batch,
                n_threads=config.n_threads or "auto",
                max_queue=config.max_queue,
                metrics=self.metrics,
                speculative=config.speculative,
                prompt_cache=self.prompt_cache,
            )
            service = Service(
                model,
                engine,
                config,
                servable.id,
                owns_model=servable.model is None,
                docs=self.docs,
                owns_docs=False,
                answers_to=lambda name: self._answers(servable, name),
            )
        except BaseException:
            if servable.model is None:
                model.close()
            raise
        self.n_loads += 1
        size = core.size + kv * n_ctx * config.parallel + OVERHEAD
        return Loaded(servable, service, size, self.config.keep_alive)

    def _estimate(self, servable: Servable) -> int:
        return estimate(servable.path, self.config.parallel, self.config.ctx_size)

    def _no_room(self, servable: Servable, need: int) -> APIError:
        mib = 1 << 20
        return APIError(
            503,
            f"model '{servable.id}' needs about {need // mib} MiB, more than this server's "
            f"memory budget of {self.memory_budget // mib} MiB allows beside the models "
            "that stay loaded (restart fireside serve with a larger --memory-budget, or "
            "fewer --parallel slots or a smaller --ctx-size)",
            code="model_too_large",
        )

    async def _make_room(self, servable: Servable, need: int) -> None:
        """Unload idle models (least recently used first) until ``need`` fits."""
        deadline = time.monotonic() + ROOM_WAIT
        while True:
            pinned = [r for r in self._loaded.values() if r.pinned]
            if need + sum(r.size for r in pinned) > self.memory_budget or len(pinned) >= (
                self.max_models
            ):
                raise self._no_room(servable, need)
            count = len(self._loaded) + len(self._reserved)
            if count < self.max_models and self._used() + need <= self.memory_budget:
                return
            idle = [r for r in self._loaded.values() if r.in_flight == 0 and not r.pinned]
            if idle:
                await self._unload(min(idle, key=lambda r: r.last_used))
                continue
            changed = self._changed
            remaining = deadline - time.monotonic()
            try:
                await asyncio.wait_for(changed.wait(), max(remaining, 0.0))
            except asyncio.TimeoutError:
                raise APIError(
                    503,
                    f"model '{servable.id}' cannot be loaded now: every loaded model is "
                    f"serving requests (--max-models {self.max_models}); try again later",
                    code="models_busy",
                ) from None

    async def _load(self, servable: Servable) -> Loaded:
        key = servable.key
        try:
            need = await anyio.to_thread.run_sync(self._estimate, servable)
            await self._make_room(servable, need)
            self._reserved[key] = need  # no await since the check: the room is ours
            try:
                record = await anyio.to_thread.run_sync(self._open, servable)
            except (FiresideError, OSError, ValueError, RuntimeError) as e:
                raise APIError(
                    500, f"model '{servable.id}' could not be loaded: {e}", code="load_failed"
                ) from e
            finally:
                self._reserved.pop(key, None)
            pending = self._pending.get(key)
            record.in_flight = pending.waiters if pending is not None else 0
            self._loaded[key] = record
            if record.in_flight == 0:
                self._idle(record)
            return record
        finally:
            self._pending.pop(key, None)
            self._notify()

    async def acquire(
        self, name: str, *, keep_alive: float | None = None, leases: list[Loaded] | None = None
    ) -> Service:
        """The service of model ``name``, loaded if needed; the request holds it (in
        flight, never unloaded) until its lease in ``leases`` is released.

        ``keep_alive`` (seconds, negative: forever, ``None``: the server's default) is
        how long the model stays loaded once idle.
        """
        servable = await self.resolve(name)
        key = servable.key
        while True:
            record = self._loaded.get(key)
            if record is not None:
                record.in_flight += 1
                self._cancel_timer(record)
                break
            pending = self._pending.get(key)
            if pending is None:
                task = asyncio.ensure_future(self._load(servable))
                pending = self._pending[key] = _Pending(task)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            pending.waiters += 1
            try:
                record = await asyncio.shield(pending.task)
            except asyncio.CancelledError:
                if pending.task.done() and not pending.task.cancelled():
                    if pending.task.exception() is None:
                        self.release(pending.task.result())
                else:
                    pending.waiters -= 1
                raise
            break
        if keep_alive is not None:
            record.keep_alive = keep_alive
        record.last_used = time.monotonic()
        if leases is not None:
            leases.append(record)
        return record.service

    def release(self, record: Loaded) -> None:
        """A request on ``record`` ended (its response was sent)."""
        record.in_flight -= 1
        record.last_used = time.monotonic()
        if record.in_flight == 0 and self._loaded.get(record.servable.key) is record:
            self._idle(record)
        self._notify()

    def _idle(self, record: Loaded) -> None:
        """Start ``record``'s keep-alive (it just became idle)."""
        self._cancel_timer(record)
        if record.pinned or record.keep_alive < 0:
            record.expires_at = None
            return
        if record.keep_alive == 0:  # gone from the loaded models now, closed soon after
            if self._detach(record):
                self._spawn(self._close(record))
            return
        record.expires_at = time.time() + record.keep_alive
        if self._started:
            loop = asyncio.get_running_loop()
            record.timer = loop.call_later(record.keep_alive, self._expire, record)

    def _cancel_timer(self, record: Loaded) -> None:
        if record.timer is not None:
            record.timer.cancel()
            record.timer = None
        record.expires_at = None

    def _expire(self, record: Loaded) -> None:
        record.timer = None
        if record.in_flight == 0 and self._detach(record):
            self._spawn(self._close(record))

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _detach(self, record: Loaded) -> bool:
        """Take ``record`` out of the loaded models at once (its memory stays counted
        until it is closed); whether it was loaded."""
        key = record.servable.key
        if self._loaded.get(key) is not record:
            return False
        self._cancel_timer(record)
        del self._loaded[key]
        self._reserved[key] = self._reserved.get(key, 0) + record.size
        return True

    async def _unload(self, record: Loaded) -> None:
        if self._detach(record):
            await self._close(record)

    async def _close(self, record: Loaded) -> None:
        """Close a detached model in a worker thread and release its memory."""
        try:
            await anyio.to_thread.run_sync(record.service.close)
        finally:
            key = record.servable.key
            left = self._reserved.get(key, 0) - record.size
            if left > 0:
                self._reserved[key] = left
            else:
                self._reserved.pop(key, None)
            self._notify()

    def _busy(self, record: Loaded, what: str) -> APIError:
        return APIError(
            409,
            f"model '{record.servable.id}' is serving requests ({record.in_flight} now); "
            f"it cannot be {what} until they are done",
            param="model",
            code="model_in_use",
        )

    async def unload(self, name: str) -> bool:
        """Unload model ``name`` now; ``False`` when it was not loaded. A 404 for an
        unknown model, a 409 while it serves requests or for a model the caller owns."""
        servable = await self.resolve(name)
        record = self._loaded.get(servable.key)
        if record is None:
            pending = self._pending.get(servable.key)
            if pending is None:
                return False
            record = await asyncio.shield(pending.task)
        if record.pinned:
            raise APIError(
                409,
                f"model '{servable.id}' was handed to this server loaded and stays loaded "
                "while it runs",
                param="model",
                code="model_in_use",
            )
        if record.in_flight:
            raise self._busy(record, "unloaded")
        await self._unload(record)
        return True

    async def before_delete(self, path: Path) -> None:
        """Make the model file at ``path`` deletable: unload it when idle; a 409 while it
        serves requests, while it loads, or for a model the server was started with."""
        key = path.resolve()
        record = self._loaded.get(key)
        if record is not None and record.in_flight:
            raise self._busy(record, "deleted")
        servable = next((s for s in self._given if s.key == key), None)
        if servable is not None:
            raise APIError(
                409,
                f"model '{servable.id}' was named when this server started and is served "
                "by it; it cannot be deleted while the server runs (stop fireside serve "
                "first)",
                param="model",
                code="model_in_use",
            )
        if key in self._pending:
            raise APIError(409, f"model '{path.name}' is being loaded; try again soon.")
        if record is not None:
            await self._unload(record)

    # -- lifetime --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the given models' engines and keep-alive timers (the app's lifespan);
        with none given, prepare in the background what the first load needs
        (:func:`_prepare_loading`; a given model's load did)."""
        self._notify()
        self._started = True
        if self._loaded:
            self.prepared.set()
        else:
            threading.Thread(
                target=_prepare_loading, args=(self.prepared,), name="fireside-prepare", daemon=True
            ).start()
        for record in self._loaded.values():
            self._idle(record)

    async def close(self) -> None:
        """Unload everything (the server is stopping)."""
        for task in list(self._tasks):
            task.cancel()
        records = list(self._loaded.values())
        self._loaded.clear()
        for record in records:
            self._cancel_timer(record)
            await anyio.to_thread.run_sync(record.service.close)
        if self.prompt_cache is not None:  # what the engines handed it is written
            await anyio.to_thread.run_sync(self.prompt_cache.close)

    def close_now(self) -> None:
        """Unload everything without an event loop (an app that never ran)."""
        for record in list(self._loaded.values()):
            record.service.close()
        self._loaded.clear()
        if self.prompt_cache is not None:
            self.prompt_cache.close()


def _prepare_loading(done: threading.Event) -> None:
    """What the first request for a model that is not loaded would otherwise wait for
    before its load starts: the modules that load it (a fifth of a second on a busy
    machine) and a chat template worker process (see
    :meth:`~fireside.chat.template_pool.TemplatePool.prewarm`)."""
    try:
        from fireside.chat.template_pool import shared_pool
        from fireside.model import Model  # noqa: F401
        from fireside.server.engine import Engine  # noqa: F401
        from fireside.server.serving import Service  # noqa: F401

        shared_pool().prewarm()
    finally:
        done.set()


def _free_memory() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


class ModelLeases:
    """ASGI middleware: the models a request acquired are released once its response has
    been sent (or the client went away), so a streamed reply keeps its model in flight."""

    def __init__(self, app: ASGIApp, manager: ModelManager) -> None:
        self.app = app
        self.manager = manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        leases: list[Loaded] = []
        scope[LEASES] = leases
        try:
            await self.app(scope, receive, send)
        finally:
            for record in leases:
                self.manager.release(record)


def leases_of(scope: Scope) -> list[Loaded] | None:
    """The request's lease list (``None`` outside :class:`ModelLeases`)."""
    leases: list[Loaded] | None = scope.get(LEASES)
    return leases


def parse_size(text: str) -> int:
    """``"8G"``, ``"512M"``, ``"1.5GiB"``, ``"1000000"`` -> bytes (ValueError otherwise)."""
    units = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    value = text.strip().lower().removesuffix("ib").removesuffix("b")
    unit = value[-1:] if value[-1:] in units else ""
    number = value[: len(value) - len(unit)] if unit else value
    try:
        amount = float(number)
    except ValueError:
        raise ValueError(f"{text!r} is not a size: give bytes or e.g. '512M', '8G'") from None
    if not 0 < amount < float("inf"):
        raise ValueError(f"{text!r}: the size must be positive")
    return int(amount * units[unit])


__all__ = [
    "Loaded",
    "ModelLeases",
    "ModelManager",
    "Servable",
    "leases_of",
    "parse_size",
    "without_latest",
]
