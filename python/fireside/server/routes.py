"""The HTTP routes: the OpenAI API under ``/v1`` (behind the API key, when one is set),
``/health``, ``/metrics`` and the chat page. Each request's ``model`` picks the service
(:func:`fireside.server.model_lookup.engine_for`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, ValidationError

from fireside.generation import compute
from fireside.server import protocol as p
from fireside.server.auth import require_api_key
from fireside.server.errors import APIError, bad_request
from fireside.server.model_lookup import engine_for, manager_of
from fireside.server.model_manager import ModelManager, Servable
from fireside.server.ollama_protocol import keep_alive_seconds
from fireside.server.serving import Service, parse_body

STATIC_DIR = Path(__file__).parent / "static"

api = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)])
public = APIRouter()


class _Named(BaseModel):
    """Just the model a request names (the rest is checked by its handler)."""

    model_config = ConfigDict(extra="ignore")
    model: str
    keep_alive: float | str | None = None


async def _count(request: Request, endpoint: str, shape: type[BaseModel]) -> Service:
    """The service of the model the request's body names (loaded if needed), held with the
    request's ``keep_alive`` (seconds or a duration, as Ollama's) when it gives one."""
    raw = await request.body()
    try:
        named = _Named.model_validate_json(raw)
    except ValidationError:
        await parse_body(request, shape)  # the request's own error, named by its shape
        raise bad_request("model is required.", param="model") from None
    try:
        keep_alive = keep_alive_seconds(named.keep_alive)
    except ValueError as e:
        raise bad_request(str(e), param="keep_alive") from None
    service = await engine_for(request, named.model, keep_alive=keep_alive)
    service.engine.metrics.request(endpoint)
    return service


@api.post("/chat/completions", response_model=p.ChatCompletion)
async def chat_completions(request: Request) -> Response:
    """Chat completion (``stream=true``: Server-Sent Events of chunks)."""
    service = await _count(request, "chat.completions", p.ChatCompletionRequest)
    return await service.chat(request)


@api.post("/completions", response_model=p.Completion)
async def completions(request: Request) -> Response:
    """Text completion of a raw prompt."""
    service = await _count(request, "completions", p.CompletionRequest)
    return await service.completion(request)


@api.post("/embeddings", response_model=p.EmbeddingList)
async def embeddings(request: Request) -> Response:
    """Embedding vectors of one or more texts."""
    service = await _count(request, "embeddings", p.EmbeddingRequest)
    return await service.embeddings(request)


def _card(manager: ModelManager, servable: Servable) -> p.ModelCard:
    record = manager.loaded_record(servable)
    try:
        created = int(servable.path.stat().st_mtime)
    except OSError:
        created = 0
    if record is not None:
        created = record.service.created
    return p.ModelCard(id=servable.id, created=created, loaded=record is not None)


@api.get("/models", response_model=p.ModelList)
async def list_models(request: Request) -> p.ModelList:
    """Every model this server can serve (``loaded``: in memory now)."""
    manager = manager_of(request)
    request.app.state.metrics.request("models")
    servable = await anyio.to_thread.run_sync(manager.servable)
    return p.ModelList(data=[_card(manager, s) for s in servable])


@api.get("/models/{model_id:path}", response_model=p.ModelCard)
async def get_model(model_id: str, request: Request) -> p.ModelCard:
    manager = manager_of(request)
    request.app.state.metrics.request("models")
    return _card(manager, await manager.resolve(model_id))


@public.get("/health")
async def health(request: Request) -> JSONResponse:
    """200 while the loaded engines run, 503 once one stopped; slot and queue counts."""
    manager = manager_of(request)
    engines = [s.engine for s in manager.services()]
    ok = all(e.running for e in engines)
    body: dict[str, Any] = {
        "status": "ok" if ok else "error",
        "models_loaded": [s.model_id for s in manager.services()],
        "slots_total": sum(e.parallel for e in engines),
        "slots_active": sum(e.active_slots for e in engines),
        "queue_depth": sum(e.queue_depth for e in engines),
    }
    if manager.primary is not None:
        body["model"] = manager.primary.model_id
    return JSONResponse(body, status_code=200 if ok else 503)


@public.get("/metrics", dependencies=[Depends(require_api_key)])
async def metrics(request: Request) -> PlainTextResponse:
    """Prometheus text format (gauges summed over the loaded models)."""
    manager = manager_of(request)
    engines = [s.engine for s in manager.services()]
    text = request.app.state.metrics.render(
        queue_depth=sum(e.queue_depth for e in engines),
        slots_active=sum(e.active_slots for e in engines),
        slots_total=sum(e.parallel for e in engines),
    )
    text = (
        text.rstrip("\n")
        + "\n"
        + "\n".join(
            [
                "# HELP fireside_models_loaded Models in memory now.",
                "# TYPE fireside_models_loaded gauge",
                f"fireside_models_loaded {len(engines)}",
                "# HELP fireside_model_loads_total Models loaded since the server started.",
                "# TYPE fireside_model_loads_total counter",
                f"fireside_model_loads_total {manager.n_loads}",
                "# HELP fireside_step_turn_waits_total Engine steps that waited for another model's.",
                "# TYPE fireside_step_turn_waits_total counter",
                f"fireside_step_turn_waits_total {compute.turn_waits()}",
            ]
        )
    )
    return PlainTextResponse(text + "\n", media_type="text/plain; version=0.0.4")


@public.get("/", include_in_schema=False)
async def index() -> Response:
    """The chat page."""
    page = STATIC_DIR / "index.html"
    if not page.is_file():
        raise APIError(404, "This server has no chat page; use the API under /v1.")
    return FileResponse(page, headers={"Cache-Control": "no-cache"})
