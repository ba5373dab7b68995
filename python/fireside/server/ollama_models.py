"""Ollama's model endpoints: ``/api/tags``, ``/api/show``, ``/api/ps``, ``/api/pull``,
``/api/delete`` and ``/api/version``, over fireside's model store (:mod:`fireside.hub`).

Names are fireside's (catalog names and aliases, Ollama's ``name:tag`` ones included,
``hf:`` names, URLs); ``name:latest`` is ``name``. ``/api/tags`` lists the served model
first, then every downloaded model. Pulling streams Ollama's progress lines
(``{"status", "digest", "total", "completed"}``); clients pulling the same model share
one download, and the download stops when every client pulling it has gone (see
:mod:`fireside.server.pulls`). Pull and delete change the store: they are off when
``ServerConfig.manage_models`` is false (``fireside serve`` beyond loopback without an
API key), and the served model's file is never deleted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response

from fireside.errors import ModelNotFoundError
from fireside.server import ollama_protocol as o
from fireside.server.errors import APIError, bad_request, from_exception
from fireside.server.model_lookup import manager_of, without_latest
from fireside.server.pulls import Pulls, PullState
from fireside.server.serving import EventStream, parse_body

if TYPE_CHECKING:
    from fireside.chat.templates import ChatTemplate
    from fireside.hub.catalog import CatalogEntry
    from fireside.server.model_manager import Loaded, ModelManager, Servable

OLLAMA_API_VERSION = "0.5.0"
"""The Ollama release whose API this follows (JSON-schema ``format`` came with 0.5), so
clients that check the version use the features implemented here."""
NEVER = "9999-12-31T23:59:59Z"
"""``expires_at`` of a model that stays loaded while the server runs."""

router = APIRouter()  # included under /api, behind the API key
public = APIRouter()


class NDJSONStream(EventStream):
    """Newline-delimited JSON, Ollama's streaming format; ``on_close`` runs however it
    ends (finished, client gone)."""

    media_type = "application/x-ndjson"


def now() -> str:
    """The time as Ollama writes it (RFC 3339, UTC)."""
    return _timestamp(datetime.now(timezone.utc))


def _timestamp(when: datetime) -> str:
    return when.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _mtime(path: Path) -> str:
    return _timestamp(datetime.fromtimestamp(path.stat().st_mtime, timezone.utc))


def _size_label(n: int | None) -> str:
    """``135000000`` -> ``"135M"``, ``7615616512`` -> ``"7.6B"`` (Ollama's style)."""
    if not n:
        return ""
    if n >= 1_000_000_000:
        return f"{n / 1e9:.1f}B"
    return f"{n / 1e6:.0f}M"


def _json(body: o._Response) -> Response:
    return Response(body.model_dump_json(exclude_none=True), media_type="application/json")


def _target(req: o._Named) -> str:
    try:
        return without_latest(req.target)
    except ValueError:
        raise bad_request("Missing required parameter: 'model'.", param="model") from None


def _require_management(request: Request) -> None:
    if not request.app.state.config.manage_models:
        raise APIError(
            403,
            "Downloading and deleting models is off: this server listens beyond loopback "
            "without an API key. Restart fireside serve with --api-key to allow it.",
            code="model_management_disabled",
        )


def _not_found(name: str, error: BaseException | None = None) -> APIError:
    why = f": {error}" if error is not None else ""
    return APIError(404, f"model '{name}' not found{why}", param="model", code="model_not_found")


def _hub_error(name: str, error: BaseException) -> APIError:
    if isinstance(error, ModelNotFoundError):
        return _not_found(name, error)
    return from_exception(error, param="model")


# -- listing -------------------------------------------------------------------------------


def _details(entry: CatalogEntry | None, family: str = "", parameters: int | None = None) -> Any:
    return o.Details(
        family=family,
        families=[family] if family else None,
        parameter_size=_size_label(parameters or (entry.parameters if entry else None)),
        quantization_level=entry.quantization if entry else "",
    )


def _digest(path: Path, entry: CatalogEntry | None) -> str:
    from fireside.hub import store

    record = store.read_record(path) or {}
    return str(record.get("sha256") or (entry.sha256 if entry else None) or "")


def _tag(servable: Servable, record: Loaded | None) -> o.ModelTag:
    path = servable.path
    details = _details(servable.entry)
    if record is not None:  # a loaded model knows its family and size
        core = record.service.core
        details = _details(servable.entry, core.architecture, core.n_params)
    return o.ModelTag(
        name=servable.id,
        model=servable.id,
        modified_at=_mtime(path),
        size=path.stat().st_size,
        digest=_digest(path, servable.entry),
        details=details,
    )


def _tags(manager: ModelManager) -> o.TagList:
    tags = []
    for servable in manager.servable():
        try:
            tags.append(_tag(servable, manager.loaded_record(servable)))
        except OSError:  # deleted meanwhile
            continue
    return o.TagList(models=tags)


@router.get("/tags")
async def tags(request: Request) -> Response:
    """The models this server serves: those it was started with, then every downloaded one."""
    request.app.state.metrics.request("ollama.tags")
    return _json(await anyio.to_thread.run_sync(_tags, manager_of(request)))


def _expires(record: Loaded) -> str:
    if record.expires_at is None:
        if record.pinned or record.keep_alive < 0:
            return NEVER
        when = time.time() + record.keep_alive  # in use: the keep-alive starts when idle
    else:
        when = record.expires_at
    return _timestamp(datetime.fromtimestamp(when, timezone.utc))


@router.get("/ps")
async def ps(request: Request) -> Response:
    """The models loaded now, most recently used first: memory (estimated ``size``), when
    each will be unloaded, and (fireside's) the requests it serves now."""
    from fireside.placement import offloads_by_default

    request.app.state.metrics.request("ollama.ps")
    manager = manager_of(request)
    offloaded = offloads_by_default() and manager.config.n_gpu_layers != 0
    running = []
    for record in manager.loaded():
        service = record.service
        core = service.core
        servable = record.servable
        running.append(
            o.RunningModel(
                name=servable.id,
                model=servable.id,
                size=record.size,
                digest=_digest(servable.path, servable.entry),
                details=_details(servable.entry, core.architecture, core.n_params),
                expires_at=_expires(record),
                size_vram=record.size if offloaded else 0,
                context_length=service.engine.n_ctx_seq,
                in_flight=record.in_flight,
                loaded_at=_timestamp(datetime.fromtimestamp(record.loaded_at, timezone.utc)),
            )
        )
    return _json(o.RunningList(models=running))


def _capabilities(kind: str, template: ChatTemplate | None) -> list[str]:
    """Ollama's ``capabilities``: ``tools`` when the loaded model's chat template renders
    tools, ``thinking`` when it has thinking markers (a model not loaded: its kind only)."""
    if kind == "embedding":
        return ["embedding"]
    found = ["completion"]
    if template is not None:
        from fireside.chat.reasoning import detect_markers

        if template.capabilities.supports_tools:
            found.append("tools")
        if detect_markers(template.source) is not None:
            found.append("thinking")
    return found


def _show(manager: ModelManager, name: str) -> o.ShowResponse:
    from fireside.hub import show

    servable = manager.find(name)
    record = manager.loaded_record(servable) if servable is not None else None
    try:
        details = show(servable.path if servable is not None else name)
    except (ModelNotFoundError, ValueError, TypeError) as e:
        raise _hub_error(name, e) from None
    if not details.downloaded or details.path is None:
        raise _not_found(name, ValueError("it is not downloaded (pull it with /api/pull)"))
    entry = details.entry or (servable.entry if servable is not None else None)
    gguf = details.gguf
    info: dict[str, Any] = {}
    family = ""
    if gguf is not None:
        family = gguf.architecture
        arch = gguf.architecture
        facts = {
            "general.architecture": arch,
            "general.name": gguf.name,
            "general.parameter_count": gguf.parameters,
            "general.size_label": gguf.size_label,
            "general.quantization": gguf.quantization,
            "general.license": gguf.license,
            f"{arch}.context_length": gguf.context_length,
            f"{arch}.block_count": gguf.n_layer,
            f"{arch}.embedding_length": gguf.n_embd,
            "tokenizer.ggml.model": gguf.vocab_type,
            "tokenizer.vocab_size": gguf.n_vocab,
        }
        info = {k: v for k, v in facts.items() if v is not None}
    kind = entry.kind if entry else "chat"
    return o.ShowResponse(
        modelfile=f"# fireside model\nFROM {details.path}\n",
        parameters="",
        template=record.service.model.chat_template.source if record is not None else "",
        details=_details(entry, family, gguf.parameters if gguf else None),
        model_info=info,
        capabilities=_capabilities(kind, record.service.model.chat_template if record else None),
        modified_at=_mtime(details.path),
        license=(gguf.license if gguf else None) or (entry.license if entry else ""),
    )


@router.post("/show")
async def show_model(request: Request) -> Response:
    """What fireside knows of a downloaded model: catalog facts and GGUF metadata."""
    req: o.ShowRequest = await parse_body(request, o.ShowRequest)
    request.app.state.metrics.request("ollama.show")
    return _json(await anyio.to_thread.run_sync(_show, manager_of(request), _target(req)))


@public.get("/version")
async def version() -> Response:
    """The Ollama API version this server follows."""
    return _json(o.Version(version=OLLAMA_API_VERSION))


# -- pull and delete -----------------------------------------------------------------------


def _pull_key(name: str) -> tuple[str, str | None]:
    """What identifies the model ``name`` downloads (its catalog name, else the name as
    given) and its sha256 when known; raises for a name that names nothing."""
    from fireside.hub.names import CatalogRef, parse_model_name

    ref = parse_model_name(name)
    if isinstance(ref, CatalogRef):
        return ref.entry.name, ref.entry.sha256
    return name, None


def _progress_line(state: PullState, digest: str | None, name: str) -> o.Progress:
    label = digest[:12] if digest else name
    return o.Progress(
        status=f"pulling {label}",
        digest=f"sha256:{digest}" if digest else None,
        total=state.total,
        completed=state.done,
    )


_FINAL = ("verifying sha256 digest", "writing manifest", "success")


@router.post("/pull")
async def pull(request: Request) -> Response:
    """Download a model into fireside's store (``stream``, the default: progress lines)."""
    _require_management(request)
    req: o.PullRequest = await parse_body(request, o.PullRequest)
    name = _target(req)
    if req.insecure:
        raise bad_request(
            "insecure is not supported: fireside downloads over HTTPS and checks sha256.",
            param="insecure",
        )
    request.app.state.metrics.request("ollama.pull")
    try:
        key, digest = await anyio.to_thread.run_sync(_pull_key, name)
    except (ModelNotFoundError, ValueError, TypeError) as e:
        raise _hub_error(name, e) from None
    pulls: Pulls = request.app.state.pulls
    watch = pulls.watch(key, name)  # joined before answering: a second client shares it
    if req.stream:

        async def lines() -> AsyncIterator[str]:
            yield o.Progress(status="pulling manifest").json_line()
            async for state in watch:
                if state.error is not None:
                    message = _hub_error(name, state.error).message
                    yield o.ErrorLine(error=message).json_line()
                    return
                if state.total is not None or state.done:
                    yield _progress_line(state, digest, name).json_line()
                if state.path is not None:
                    for status in _FINAL:
                        yield o.Progress(status=status).json_line()
                    return

        return NDJSONStream(lines(), watch.close)

    async def finish() -> PullState | None:
        last = None
        async for state in watch:
            last = state
        return last

    try:
        result = await _until_disconnect(request, finish())
    finally:
        watch.close()
    if result is None:
        return Response(status_code=499)
    if result.error is not None:
        raise _hub_error(name, result.error)
    return _json(o.Progress(status="success"))


async def _until_disconnect(request: Request, work: Any) -> Any:
    """``await work``, or ``None`` (``work`` cancelled) when the client goes away first."""
    task = asyncio.ensure_future(work)

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        return task.result() if task.done() else None
    finally:
        watcher.cancel()
        task.cancel()


def _delete_target(manager: ModelManager, name: str) -> Path | None:
    """The file deleting ``name`` removes: the hub's meaning of the name first (a catalog
    name means the catalog's file), else the served model it names."""
    from fireside.hub.names import parse_model_name
    from fireside.hub.resolve import find_local

    try:
        local = find_local(parse_model_name(name))
    except (ModelNotFoundError, ValueError, TypeError):  # not a hub name: a served id?
        servable = manager.find(name)
        return servable.path if servable is not None else None
    return local[0] if local else None


def _delete(pulls: Pulls, name: str) -> None:
    from fireside.hub import remove

    try:
        key, _ = _pull_key(name)
    except (ModelNotFoundError, ValueError, TypeError) as e:
        raise _hub_error(name, e) from None
    if key in pulls.active():
        raise APIError(409, f"model '{name}' is being downloaded; try again when it is done.")
    try:
        remove(name)
    except BlockingIOError:
        raise APIError(409, f"model '{name}' is being downloaded; try again when it is done.")
    except (ModelNotFoundError, ValueError, TypeError) as e:
        raise _hub_error(name, e) from None


@router.delete("/delete")
async def delete(request: Request) -> Response:
    """Delete a downloaded model from fireside's store: unloaded first when idle, refused
    (409) while it serves requests and for the models the server was started with."""
    _require_management(request)
    req: o.DeleteRequest = await parse_body(request, o.DeleteRequest)
    request.app.state.metrics.request("ollama.delete")
    name = _target(req)
    manager = manager_of(request)
    path = await anyio.to_thread.run_sync(_delete_target, manager, name)
    if path is not None:
        await manager.before_delete(path)
    target = str(path) if path is not None and path.is_file() else name
    await anyio.to_thread.run_sync(_delete, request.app.state.pulls, target)
    return Response(status_code=200)
