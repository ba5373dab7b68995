"""LocalDocs over HTTP: the collections a server exposes, their search, and the
``references`` of grounded chat completions.

``fireside serve --docs NAME[,NAME]`` (``ServerConfig.docs``) opens those collections when
the app is created; an unknown one stops the server before it binds a port. Requests can
only name them: a collection that exists on disk but was not exposed is answered 404 like
one that does not exist, and nothing a request sends is ever indexed (there is no route
that adds documents).

* ``GET /v1/docs``: ``{"object": "list", "data": [{"id", "object": "collection",
  "documents", "chunks", "embedder"}]}``
* ``POST /v1/docs/{name}/search`` with ``{"query": str, "k": int = 5, "mode": ...}``:
  ``{"object": "list", "collection", "data": [{"source", "file", "title", "location",
  "text", "score", "retriever"}]}``
* ``/v1/chat/completions`` with ``"docs": ["NAME"]``: each choice carries ``references``
  (see :class:`DocReference`; in a stream, on the chunk that ends the choice).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fireside.server.auth import require_api_key
from fireside.server.errors import APIError, bad_request, validation_error

if TYPE_CHECKING:
    from fireside.chat.grounding import Grounding, Reference
    from fireside.docs.collection import Collection

MAX_QUERY_CHARS = 4000
"""The longest search query accepted, in characters."""
MAX_DOCS_PER_REQUEST = 8
"""The most collections one chat request may name."""


# -- bodies --------------------------------------------------------------------------------


class DocsSearchRequest(BaseModel):
    """``POST /v1/docs/{name}/search``."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    k: int = Field(default=5, ge=1, le=50)
    mode: Literal["hybrid", "vector", "keyword"] = "hybrid"


class DocLocation(BaseModel):
    page: int | None = None
    heading: str | None = None
    lines: list[int] | None = None


class DocHit(BaseModel):
    source: str
    file: str
    title: str | None
    location: DocLocation
    text: str
    score: float
    retriever: str


class DocsSearchResult(BaseModel):
    object: Literal["list"] = "list"
    collection: str
    data: list[DocHit]


class DocReference(BaseModel):
    """An excerpt a grounded answer used, numbered as the prompt numbered it."""

    number: int
    collection: str
    source: str
    file: str
    title: str | None
    location: DocLocation
    excerpt: str
    score: float

    @classmethod
    def of(cls, ref: Reference) -> DocReference:
        return cls.model_validate(ref.to_dict())


class CollectionCard(BaseModel):
    id: str
    object: Literal["collection"] = "collection"
    documents: int
    chunks: int
    embedder: str


class CollectionList(BaseModel):
    object: Literal["list"] = "list"
    data: list[CollectionCard]


# -- the exposed collections ------------------------------------------------------------------


def not_served(name: str, served: Sequence[str], param: str | None = None) -> APIError:
    """The 404 for a collection this server does not expose."""
    listing = ", ".join(repr(n) for n in served) if served else "none"
    return APIError(
        404,
        f"The collection {name[:80]!r} is not served here. Collections served: {listing}.",
        param=param,
        code="collection_not_found",
    )


class DocsService:
    """The collections a server exposes, opened once and searched from worker threads
    (each collection serializes its own searches)."""

    def __init__(self, names: Sequence[str]) -> None:
        from fireside.docs.collection import Collection

        self._collections: dict[str, Collection] = {}
        self._lock = threading.Lock()
        try:
            for name in names:
                self._collections[name] = Collection(name, create=False)
        except BaseException:
            self.close()
            raise

    @property
    def names(self) -> list[str]:
        """The exposed collections' names, in the order given."""
        return list(self._collections)

    def get(self, name: str, param: str | None = None) -> Collection:
        """An exposed collection, or a 404."""
        col = self._collections.get(name)
        if col is None:
            raise not_served(name, self.names, param)
        return col

    def cards(self) -> CollectionList:
        cards = []
        for name, col in self._collections.items():
            info = col.info()
            cards.append(
                CollectionCard(
                    id=name,
                    documents=info.n_documents,
                    chunks=info.n_chunks,
                    embedder=info.embedder,
                )
            )
        return CollectionList(data=cards)

    def search(self, name: str, req: DocsSearchRequest) -> DocsSearchResult:
        col = self.get(name)
        try:
            hits = col.search(req.query, k=req.k, mode=req.mode)
        except ValueError as e:  # a blank query
            raise APIError(400, str(e), param="query") from None
        data = [DocHit(file=os.path.basename(h.source), **h.to_dict()) for h in hits]
        return DocsSearchResult(collection=name, data=data)

    def grounding(self, names: Sequence[str]) -> Grounding:
        """A :class:`~fireside.chat.grounding.Grounding` over exposed collections only
        (404 for any other name, 400 for too many or repeated names)."""
        from fireside.chat.grounding import Grounding

        if len(names) > MAX_DOCS_PER_REQUEST:
            raise APIError(
                400, f"docs names {len(names)} collections; at most {MAX_DOCS_PER_REQUEST}.",
                param="docs",
            )  # fmt: skip
        if len(set(names)) != len(names):
            raise APIError(400, "docs names a collection twice.", param="docs")
        return Grounding([self.get(name, "docs") for name in names])

    def close(self) -> None:
        with self._lock:
            for col in self._collections.values():
                col.close()
            self._collections = {}


def _docs(request: Request) -> DocsService:
    docs: DocsService | None = getattr(request.app.state, "docs", None)
    if docs is None:  # pragma: no cover - create_app always sets it
        raise APIError(404, "This server serves no document collections.")
    return docs


router = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)])


@router.get("/docs", response_model=CollectionList)
async def list_docs(request: Request) -> Any:
    """The document collections this server exposes (``fireside serve --docs``)."""
    request.app.state.metrics.request("docs")
    return await anyio.to_thread.run_sync(_docs(request).cards)


@router.post("/docs/{name}/search", response_model=DocsSearchResult)
async def search_docs(name: str, request: Request) -> Any:
    """The chunks of collection ``name`` that best match ``query``."""
    request.app.state.metrics.request("docs.search")
    docs = _docs(request)
    docs.get(name)  # 404 before the body is even read
    raw = await request.body()
    if not raw.strip():
        raise bad_request('The request body is empty; send {"query": "...", "k": 5}.')
    try:
        req = DocsSearchRequest.model_validate_json(raw)
    except ValidationError as e:
        raise validation_error(e.errors(include_url=False)) from None
    return await anyio.to_thread.run_sync(docs.search, name, req)
