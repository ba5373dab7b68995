"""The HTTP routes: the OpenAI API under ``/v1`` (behind the API key, when one is set),
``/health``, ``/metrics`` and the chat page."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response

from fireside.server import protocol as p
from fireside.server.auth import require_api_key
from fireside.server.errors import APIError
from fireside.server.serving import Service

STATIC_DIR = Path(__file__).parent / "static"

api = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)])
public = APIRouter()


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def _count(request: Request, endpoint: str) -> Service:
    service = _service(request)
    service.engine.metrics.request(endpoint)
    return service


@api.post("/chat/completions", response_model=p.ChatCompletion)
async def chat_completions(request: Request) -> Response:
    """Chat completion (``stream=true``: Server-Sent Events of chunks)."""
    return await _count(request, "chat.completions").chat(request)


@api.post("/completions", response_model=p.Completion)
async def completions(request: Request) -> Response:
    """Text completion of a raw prompt."""
    return await _count(request, "completions").completion(request)


@api.post("/embeddings", response_model=p.EmbeddingList)
async def embeddings(request: Request) -> Response:
    """Embedding vectors of one or more texts."""
    return await _count(request, "embeddings").embeddings(request)


@api.get("/models", response_model=p.ModelList)
async def list_models(request: Request) -> p.ModelList:
    """The model this server serves."""
    return p.ModelList(data=[_count(request, "models").model_card()])


@api.get("/models/{model_id:path}", response_model=p.ModelCard)
async def get_model(model_id: str, request: Request) -> p.ModelCard:
    service = _count(request, "models")
    service.check_model(model_id)
    return service.model_card()


@public.get("/health")
async def health(request: Request) -> JSONResponse:
    """200 while the engine runs, 503 once it stopped; slot and queue counts."""
    status, body = _service(request).health()
    return JSONResponse(body, status_code=status)


@public.get("/metrics", dependencies=[Depends(require_api_key)])
async def metrics(request: Request) -> PlainTextResponse:
    """Prometheus text format."""
    return PlainTextResponse(
        _service(request).metrics_text(), media_type="text/plain; version=0.0.4"
    )


@public.get("/", include_in_schema=False)
async def index() -> Response:
    """The chat page."""
    page = STATIC_DIR / "index.html"
    if not page.is_file():
        raise APIError(404, "This server has no chat page; use the API under /v1.")
    return FileResponse(page, headers={"Cache-Control": "no-cache"})
