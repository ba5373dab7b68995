"""The app factory: ``create_app(model, ...)`` loads the model and returns the ASGI app.

State lives on ``app.state`` (``service``, ``config``, ``metrics``), never in module
globals, so several apps can live in one process (tests do). The engine's scheduler
thread starts with the app's lifespan and stops with it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from fireside.chat.template_pool import shared_pool
from fireside.server import errors
from fireside.server.anthropic_api import AnthropicErrorShape
from fireside.server.anthropic_api import router as anthropic_router
from fireside.server.config import ServerConfig
from fireside.server.docs_api import DocsService
from fireside.server.docs_api import router as docs_router
from fireside.server.limits import BodySizeLimit
from fireside.server.ollama_api import public as ollama_public
from fireside.server.ollama_api import router as ollama_router
from fireside.server.ollama_errors import OllamaErrors
from fireside.server.origins import OriginPolicy
from fireside.server.pulls import Pulls
from fireside.server.responses_api import router as responses_router
from fireside.server.responses_store import ResponseStore
from fireside.server.routes import STATIC_DIR, api, public


def _slot_context(model: Any, config: ServerConfig) -> int:
    """Tokens per slot: as asked, else the default context for the whole KV budget split
    between the slots (never more than the model was trained for)."""
    from fireside.defaults import default_n_ctx, kv_bytes_per_token

    core = model.core
    if config.ctx_size is not None:
        return config.ctx_size
    kv = kv_bytes_per_token(core.n_layer, core.n_embd, core.n_head, core.n_head_kv)
    return default_n_ctx(core.n_ctx_train, kv * config.parallel)


def create_app(
    model: str | os.PathLike[str] | Any,
    config: ServerConfig | None = None,
    **options: Any,
) -> FastAPI:
    """An OpenAI-compatible server for ``model``: a path, a catalog name, or a loaded
    :class:`fireside.Model` (which the caller keeps owning).

    ``config`` (or keyword ``options`` of :class:`ServerConfig`) sets slots, context,
    API key, limits and the Host names and web origins it serves
    (:mod:`fireside.server.origins`); run it with :func:`fireside.server.http11.uvicorn_config`
    so that even malformed HTTP is answered in OpenAI's shape. Loading happens here, so errors surface before a port is bound.
    """
    from fireside.model import Model
    from fireside.server.engine import Engine
    from fireside.server.metrics import Metrics
    from fireside.server.serving import Service, default_model_id

    if config is None:
        config = ServerConfig(**options)
    elif options:
        raise TypeError("give a ServerConfig or keyword options, not both")
    n_threads = config.n_threads  # None: "auto"
    owns = not isinstance(model, Model)
    loaded: Model
    if owns:
        loaded = Model(
            model,
            embedding=True,  # no single-sequence context: the engine makes its own
            n_threads=n_threads,
            n_gpu_layers=config.n_gpu_layers,
            chat_template=config.chat_template,
            n_batch=config.n_batch,
        )
    else:
        loaded = model  # type: ignore[assignment]
    docs: DocsService | None = None
    try:
        docs = DocsService(config.docs)  # an unknown collection fails before a port is bound
        metrics = Metrics()
        engine = Engine(
            loaded.core,
            parallel=config.parallel,
            n_ctx_seq=_slot_context(loaded, config),
            n_batch=config.n_batch,
            n_threads=n_threads or "auto",
            max_queue=config.max_queue,
            metrics=metrics,
        )
        model_id = config.model_id or (
            default_model_id(model, loaded.path) if owns else loaded.name
        )
        service = Service(loaded, engine, config, model_id, owns_model=owns, docs=docs)
    except BaseException:
        if docs is not None:
            docs.close()
        if owns:
            loaded.close()
        raise

    pulls = Pulls()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine.start()
        try:
            yield
        finally:
            pulls.close()  # downloads over HTTP stop at their next chunk
            service.close()  # and the collections
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
    app.state.config = config
    app.state.service = service
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
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
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
