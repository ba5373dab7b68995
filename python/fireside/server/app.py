"""The app factory: ``create_app(model, ...)`` loads the given models and returns the ASGI app.

State lives on ``app.state`` (``models``, ``service``, ``config``, ``metrics``), never in
module globals, so several apps can live in one process (tests do). The engines are
stopped with the app's lifespan (their steps run on the process's compute thread).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import State

from fireside.chat.template_pool import shared_pool
from fireside.server import errors
from fireside.server.anthropic_api import AnthropicErrorShape
from fireside.server.anthropic_api import router as anthropic_router
from fireside.server.config import ServerConfig
from fireside.server.docs_api import DocsService
from fireside.server.docs_api import router as docs_router
from fireside.server.limits import BodySizeLimit
from fireside.server.model_manager import ModelLeases, ModelManager
from fireside.server.models_api import router as models_router
from fireside.server.ollama_api import public as ollama_public
from fireside.server.ollama_api import router as ollama_router
from fireside.server.ollama_errors import OllamaErrors
from fireside.server.origins import OriginPolicy
from fireside.server.pulls import Pulls
from fireside.server.responses_api import router as responses_router
from fireside.server.responses_store import ResponseStore
from fireside.server.routes import STATIC_DIR, api, public


class _AppState(State):
    """``app.state``, where ``service`` is the first given model's service while loaded."""

    @property
    def service(self) -> Any:
        return self.models.primary


def create_app(
    model: Any = None,
    config: ServerConfig | None = None,
    **options: Any,
) -> FastAPI:
    """An OpenAI- and Ollama-compatible server for the downloaded models.

    ``model`` names the models to serve first and load now: a path, a catalog name, a
    loaded :class:`fireside.Model` (which the caller keeps owning), or a list of them;
    ``None``: none loaded at start. Every model in fireside's store is served too, loaded
    on its first request (:mod:`fireside.server.model_manager`); ``app.state.models`` is
    the manager, ``app.state.service`` the first given model's service while it is loaded.

    ``config`` (or keyword ``options`` of :class:`ServerConfig`) sets slots, context,
    API key, limits, the model limits (``max_models``, ``memory_budget``, ``keep_alive``)
    and the Host names and web origins it serves (:mod:`fireside.server.origins`); run it
    with :func:`fireside.server.http11.uvicorn_config` so that even malformed HTTP is
    answered in OpenAI's shape. Loading happens here, so errors surface before a port is
    bound.
    """
    from fireside.server.metrics import Metrics

    if config is None:
        config = ServerConfig(**options)
    elif options:
        raise TypeError("give a ServerConfig or keyword options, not both")
    if model is None:
        given: list[Any] = []
    elif isinstance(model, (str, os.PathLike)) or not isinstance(model, (list, tuple)):
        given = [model]
    else:
        given = list(model)
    docs: DocsService | None = None
    try:
        docs = DocsService(config.docs)  # an unknown collection fails before a port is bound
        metrics = Metrics()
        manager = ModelManager(
            config,
            metrics=metrics,
            docs=docs,
            given=given,
        )
    except BaseException:
        if docs is not None:
            docs.close()
        raise

    pulls = Pulls()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await manager.start()
        try:
            yield
        finally:
            pulls.close()  # downloads over HTTP stop at their next chunk
            await manager.close()
            if docs is not None:
                docs.close()
            # a template still rendering would outlive a server stopped by a signal
            # (uvicorn re-raises it, so exit handlers do not run)
            shared_pool().close()

    app = FastAPI(
        title="fireside",
        summary="OpenAI-compatible API for a local model",
        docs_url=None,  # the docs pages load scripts from a CDN; the schema is at /openapi.json
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state = _AppState()
    app.state.config = config
    app.state.models = manager
    app.state.metrics = metrics
    app.state.docs = docs
    app.state.pulls = pulls
    app.state.responses = ResponseStore()  # previous_response_id (bounded, LRU)
    errors.install(app)
    app.include_router(api)
    app.include_router(docs_router)
    app.include_router(ollama_router)  # Ollama's API under /api
    app.include_router(ollama_public)
    app.include_router(public)
    app.include_router(responses_router)
    app.include_router(anthropic_router)
    app.include_router(models_router)  # the page's models view
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(ModelLeases, manager=manager)  # a request holds its model until sent
    app.add_middleware(BodySizeLimit, max_bytes=config.max_body_bytes)
    # added last, so it runs first: a page that may not use the server reaches nothing
    app.add_middleware(
        OriginPolicy,
        allowed_hosts=config.allowed_hosts,
        allowed_origins=config.allowed_origins,
        on_error=metrics.error,
    )
    # outermost: every error on /v1/messages (the policy's too) in Anthropic's shape
    app.add_middleware(AnthropicErrorShape)
    app.add_middleware(OllamaErrors)  # and every error under /api/ in Ollama's shape
    return app
