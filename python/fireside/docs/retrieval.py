"""Keyword (FTS5 BM25), vector (sqlite-vec) and hybrid (reciprocal-rank fusion) search.

Vector search is exact for collections of up to :data:`EXACT_LIMIT` chunks (every stored
float32 vector is compared with the query). Above that, sqlite-vec's ``vec0`` index of
sign-quantized vectors (one bit per dimension, Hamming distance) picks a pool of
candidates and only those are re-scored exactly by cosine similarity: the pool is
``COARSE_FACTOR`` times the results asked for, so recall depends on how well signs
preserve neighbourhoods in the embedder's space (well for sentence embedders).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from fireside.docs import bm25
from fireside.docs.fusion import reciprocal_rank_fusion

if TYPE_CHECKING:
    from fireside.docs.store import Store

MODES = ("hybrid", "vector", "keyword")
"""The search modes."""
EXACT_LIMIT = 4096
"""Collections with at most this many chunks are searched exhaustively."""
COARSE_FACTOR = 4
"""Candidates from the sign-bit index per result wanted (above :data:`EXACT_LIMIT`)."""
MAX_QUERY_TERMS = 64
"""Words of a query used for keyword search (the rest are ignored)."""

_WORD = re.compile(r"\w+")
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "if",
        "in",
        "is",
        "it",
        "of",
        "on",
        "or",
        "so",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "this",
        "to",
        "was",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
    ]
)
"""English words left out of keyword queries that have other words (they match nearly
every chunk, and each match costs BM25 time)."""


def query_words(text: str) -> list[str]:
    """The distinct lower-case words of ``text`` that keyword search looks for: common
    English words left out when others remain, at most :data:`MAX_QUERY_TERMS`."""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(text)))
    words = [w for w in words if w not in STOPWORDS] or words
    return words[:MAX_QUERY_TERMS]


def fts_query(text: str) -> str | None:
    """An FTS5 expression matching any word of ``text`` (each quoted: no FTS5 syntax from
    the user gets through), or None when ``text`` has no words."""
    words = query_words(text)
    return " OR ".join(f'"{w}"' for w in words) if words else None


def keyword_search(store: Store, text: str, n: int) -> list[tuple[int, float]]:
    """``(chunk id, BM25 score)`` of the ``n`` best keyword matches (FTS5's ranking of
    :func:`fts_query`, computed without scoring every chunk a common word is in: see
    :mod:`fireside.docs.bm25`)."""
    words = query_words(text)
    return bm25.top(store, words, n) if words else []


def vector_search(store: Store, query: npt.NDArray[np.float32], n: int) -> list[tuple[int, float]]:
    """``(chunk id, cosine similarity)`` of the ``n`` nearest chunks."""
    total = store.n_vectors()
    if total == 0:
        return []
    if total <= EXACT_LIMIT:
        ids, matrix = store.vectors()
    else:
        pool = min(total, max(COARSE_FACTOR * n, 64))
        ids, matrix = store.vectors(store.coarse_neighbours(query, pool))
    if not ids:
        return []
    if matrix.shape[1] != query.shape[0]:
        raise ValueError(
            f"the query vector has {query.shape[0]} dimensions, the collection's {matrix.shape[1]}"
        )
    scores = matrix @ query
    order = np.argsort(-scores, kind="stable")[:n]
    return [(ids[i], float(scores[i])) for i in order]


def fuse(
    keyword: list[tuple[int, float]], vector: list[tuple[int, float]], k: int
) -> list[tuple[int, float, str]]:
    """Hybrid ranking: ``(chunk id, RRF score, retriever)`` for the ``k`` best."""
    fused = reciprocal_rank_fusion(
        {"keyword": [i for i, _ in keyword], "vector": [i for i, _ in vector]}
    )
    return [
        (item, score, found[0] if len(found) == 1 else "both") for item, score, found in fused[:k]
    ]
