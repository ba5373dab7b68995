"""The engine for model NAME: which served model a request's name means.

A served model answers to its id, its file name (with and without ``.gguf``) and, when
the catalog knows its file, every catalog name of that entry, Ollama's ``name:tag``
aliases included (``smollm2:135m`` for ``smollm2-135m-instruct``); ``name:latest`` is
``name``, as in Ollama. Today a server serves one model; :func:`engine_for` is the one
place a request's name becomes an engine, so a manager serving several models (loading
on demand, honouring ``keep_alive``) replaces it alone.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from fireside.hub.catalog import CatalogEntry, catalog_entries, closest_models, get_entry
from fireside.server.errors import APIError

if TYPE_CHECKING:
    from fastapi import Request

    from fireside.server.serving import Service


def without_latest(name: str) -> str:
    """``"smollm2:latest"`` -> ``"smollm2"`` (Ollama's default tag); others unchanged."""
    name = name.strip()
    return name[: -len(":latest")] if name.lower().endswith(":latest") else name


def served_names(service: Service) -> set[str]:
    """The names the served model answers to without the catalog (lower-cased)."""
    path = service.model.path
    return {n.lower() for n in (service.model_id, service.model.name, path.name, path.stem)}


def served_entry(service: Service) -> CatalogEntry | None:
    """The catalog entry of the served model's file, if the catalog knows it."""
    file = service.model.path.name
    named = get_entry(service.model_id)
    if named is not None and named.file == file:
        return named
    return next((e for e in catalog_entries() if e.file == file), None)


def serves(service: Service, name: str) -> bool:
    """Whether ``name`` means the model ``service`` serves."""
    wanted = without_latest(name)
    if wanted.lower() in served_names(service):
        return True
    entry = served_entry(service)
    return entry is not None and get_entry(wanted) is entry


def close_matches(service: Service, name: str, n: int = 3) -> list[str]:
    """The served model's id first, then the catalog names most like ``name``."""
    found = [service.model_id]
    wanted = without_latest(name).lower()
    scored = difflib.get_close_matches(wanted, sorted(served_names(service)), n=1, cutoff=0.0)
    if scored and scored[0] != service.model_id.lower():
        found.append(scored[0])
    found += [m for m in closest_models(wanted, n) if m not in found]
    return found[:n]


def not_served(service: Service, name: str) -> APIError:
    """The 404 for a model name this server does not serve, naming the close matches."""
    matches = ", ".join(f"'{m}'" for m in close_matches(service, name))
    return APIError(
        404,
        f"model '{name}' not found: this server serves '{service.model_id}' "
        f"(close matches: {matches}; `fireside serve NAME` serves another model)",
        param="model",
        code="model_not_found",
    )


async def engine_for(request: Request, name: str, *, keep_alive: float | None = None) -> Service:
    """The service whose engine serves model ``name`` (a 404 naming close matches if none).

    ``keep_alive`` (seconds, negative: forever) is how long the caller wants the model kept
    loaded; the one model a server serves today stays loaded while the server runs.
    """
    del keep_alive  # the single served model is never unloaded
    service: Service = request.app.state.service
    if not serves(service, name):
        raise not_served(service, name)
    return service
