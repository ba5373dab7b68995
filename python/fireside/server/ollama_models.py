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
from fireside.server.model_lookup import served_entry, served_names, serves, without_latest
from fireside.server.pulls import Pulls, PullState
from fireside.server.serving import EventStream, parse_body

if TYPE_CHECKING:
    from fireside.hub.catalog import CatalogEntry
    from fireside.server.serving import Service

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


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


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


def _served_tag(service: Service) -> o.ModelTag:
    path = service.model.path
    entry = served_entry(service)
    core = service.core
    return o.ModelTag(
        name=service.model_id,
        model=service.model_id,
        modified_at=_mtime(path),
        size=path.stat().st_size,
        digest=_digest(path, entry),
        details=_details(entry, core.architecture, core.n_params),
    )


def _tags(service: Service) -> o.TagList:
    from fireside.hub import list_models

    tags = [_served_tag(service)]
    seen = {service.model.path.resolve()}
    for listing in list_models(downloaded=True):
        path = listing.path
        if path is None or path.resolve() in seen or not path.is_file():
            continue
        seen.add(path.resolve())
        tags.append(
            o.ModelTag(
                name=listing.name,
                model=listing.name,
                modified_at=_mtime(path),
                size=path.stat().st_size,
                digest=_digest(path, listing.entry),
                details=_details(listing.entry),
            )
        )
    return o.TagList(models=tags)


@router.get("/tags")
async def tags(request: Request) -> Response:
    """The served model, then every downloaded model."""
    service = _service(request)
    service.engine.metrics.request("ollama.tags")
    return _json(await anyio.to_thread.run_sync(_tags, service))


@router.get("/ps")
async def ps(request: Request) -> Response:
    """The models loaded now: the served one, which stays loaded while the server runs."""
    from fireside import _core

    service = _service(request)
    service.engine.metrics.request("ollama.ps")
    tag = _served_tag(service)
    gpu = any(d.type in ("gpu", "igpu", "accel") for d in _core.devices())
    offloaded = gpu and service.config.n_gpu_layers != 0
    running = o.RunningModel(
        name=tag.name,
        model=tag.model,
        size=tag.size,
        digest=tag.digest,
        details=tag.details,
        expires_at=NEVER,
        size_vram=service.core.size if offloaded else 0,
        context_length=service.engine.n_ctx_seq,
    )
    return _json(o.RunningList(models=[running]))


def _show(service: Service, name: str) -> o.ShowResponse:
    from fireside.hub import show

    is_served = serves(service, name)
    try:
        details = show(service.model.path if is_served else name)
    except (ModelNotFoundError, ValueError, TypeError) as e:
        raise _hub_error(name, e) from None
    if not details.downloaded or details.path is None:
        raise _not_found(name, ValueError("it is not downloaded (pull it with /api/pull)"))
    entry = details.entry or (served_entry(service) if is_served else None)
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
        template=service.model.chat_template.source if is_served else "",
        details=_details(entry, family, gguf.parameters if gguf else None),
        model_info=info,
        capabilities=["embedding"] if kind == "embedding" else ["completion"],
        modified_at=_mtime(details.path),
        license=(gguf.license if gguf else None) or (entry.license if entry else ""),
    )


@router.post("/show")
async def show_model(request: Request) -> Response:
    """What fireside knows of a downloaded model: catalog facts and GGUF metadata."""
    req: o.ShowRequest = await parse_body(request, o.ShowRequest)
    service = _service(request)
    service.engine.metrics.request("ollama.show")
    return _json(await anyio.to_thread.run_sync(_show, service, _target(req)))


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
    _service(request).engine.metrics.request("ollama.pull")
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


def _delete(service: Service, pulls: Pulls, name: str) -> None:
    from fireside.hub import remove
    from fireside.hub.names import parse_model_name
    from fireside.hub.resolve import find_local

    served = service.model.path.resolve()
    serving = APIError(
        409,
        f"model '{name}' is loaded by this server and serving requests; it cannot be "
        "deleted while the server runs (stop fireside serve first).",
        param="model",
        code="model_in_use",
    )
    if name.lower() in served_names(service):
        raise serving
    try:
        local = find_local(parse_model_name(name))
        key, _ = _pull_key(name)
    except (ModelNotFoundError, ValueError, TypeError) as e:
        raise _hub_error(name, e) from None
    if any(path.resolve() == served for path in local):
        raise serving
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
    """Delete a downloaded model from fireside's store (never the served model's file)."""
    _require_management(request)
    req: o.DeleteRequest = await parse_body(request, o.DeleteRequest)
    service = _service(request)
    service.engine.metrics.request("ollama.delete")
    await anyio.to_thread.run_sync(_delete, service, request.app.state.pulls, _target(req))
    return Response(status_code=200)
