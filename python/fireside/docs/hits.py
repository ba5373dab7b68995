"""A search result, shaped so an answer can later cite it (source, location, excerpt)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fireside.docs.locations import Location


@dataclass(frozen=True)
class Hit:
    """One chunk found by :meth:`Collection.search`.

    ``score``: the fused reciprocal-rank score (hybrid), the BM25 score (keyword; higher
    is better) or the cosine similarity (vector). ``retriever``: ``"keyword"``,
    ``"vector"`` or ``"both"``.
    """

    text: str
    source: str
    location: Location
    score: float
    retriever: str
    title: str | None = None
    chunk_id: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``source``, ``location``, ``score``, ``text``, ``retriever``, ``title``."""
        return {
            "source": self.source,
            "location": self.location.to_dict(),
            "score": self.score,
            "text": self.text,
            "retriever": self.retriever,
            "title": self.title,
        }

    def __str__(self) -> str:
        return f"{self.source} ({self.location}): {self.text[:80]!r}"
