"""fireside's own model routes for the chat page's models view (behind the API key).

``GET /fireside/models`` lists, in one answer, the models this server can serve (with
size on disk, whether each is loaded, its memory estimate while loaded) and the catalog
(name, size on disk, memory needed, what it is good at, licence, whether downloaded).
Downloading, deleting and unloading use the Ollama routes (``/api/pull``,
``/api/delete``, ``/api/generate`` with ``keep_alive: 0``); ``POST
/fireside/models/unload`` is the same unload in OpenAI's error shape.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from fireside.server.auth import require_api_key
from fireside.server.model_lookup import manager_of
from fireside.server.model_manager import ModelManager
from fireside.server.serving import parse_body

router = APIRouter(prefix="/fireside", dependencies=[Depends(require_api_key)])


class UnloadRequest(BaseModel):
    """``{"model": NAME}``."""

    model_config = ConfigDict(extra="forbid")
    model: str


def _listing(manager: ModelManager, pulling: list[str]) -> dict[str, Any]:
    from fireside.hub.catalog import catalog_entries

    served = []
    downloaded_entries = set()
    for servable in manager.servable():
        record = manager.loaded_record(servable)
        if servable.entry is not None:
            downloaded_entries.add(servable.entry.name)
        served.append(
            {
                "id": servable.id,
                "file": servable.path.name,
                "size": servable.size,
                "catalog": servable.entry.name if servable.entry is not None else None,
                "loaded": record is not None,
                "memory": record.size if record is not None else None,
                "in_flight": record.in_flight if record is not None else 0,
            }
        )
    catalog = [
        {
            "name": e.name,
            "kind": e.kind,
            "size": e.size,
            "ram_gb": e.ram_gb,
            "parameters": e.parameters,
            "quantization": e.quantization,
            "context_length": e.context_length,
            "description": e.description,
            "license": e.license,
            "downloaded": e.name in downloaded_entries,
            "downloading": e.name in pulling,
        }
        for e in catalog_entries()
    ]
    return {"models": served, "catalog": catalog, "manage_models": manager.config.manage_models}


@router.get("/models")
async def models(request: Request) -> JSONResponse:
    """The servable models and the catalog (see the module docstring)."""
    request.app.state.metrics.request("fireside.models")
    pulling = request.app.state.pulls.active()
    body = await anyio.to_thread.run_sync(_listing, manager_of(request), pulling)
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.post("/models/unload")
async def unload(request: Request) -> JSONResponse:
    """Unload a model now (``unloaded: false`` when it was not loaded); 409 while it serves
    requests, 404 for an unknown one."""
    req: UnloadRequest = await parse_body(request, UnloadRequest)
    request.app.state.metrics.request("fireside.unload")
    unloaded = await manager_of(request).unload(req.model)
    return JSONResponse({"model": req.model, "unloaded": unloaded})
