"""The engine for model NAME: which served model a request's name means.

A model answers to its id, its file name (with and without ``.gguf``) and, when the
catalog knows its file, every catalog name of that entry, Ollama's ``name:tag`` aliases
included (``smollm2:135m`` for ``smollm2-135m-instruct``); ``name:latest`` is ``name``,
as in Ollama. :func:`engine_for` is the one place a request's name becomes an engine:
the model manager (:mod:`fireside.server.model_manager`) finds the model, loads it when
needed and keeps it for the request until its response is sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fireside.server.model_manager import ModelManager, leases_of, without_latest

if TYPE_CHECKING:
    from fastapi import Request

    from fireside.server.serving import Service

__all__ = ["engine_for", "manager_of", "without_latest"]


def manager_of(request: Request) -> ModelManager:
    """The app's model manager."""
    manager: ModelManager = request.app.state.models
    return manager


async def engine_for(request: Request, name: str, *, keep_alive: float | None = None) -> Service:
    """The service whose engine serves model ``name`` (a 404 naming close matches if none),
    loaded if needed and held for this request until its response has been sent.

    ``keep_alive`` (seconds, negative: forever, ``None``: the server's default) is how long
    the model stays loaded once idle.
    """
    return await manager_of(request).acquire(
        name, keep_alive=keep_alive, leases=leases_of(request.scope)
    )
