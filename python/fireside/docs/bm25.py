"""The ``n`` best BM25 matches of a query, without scoring every chunk a common word is in.

FTS5 ranks ``"w1" OR "w2" OR ...`` by scoring every chunk that holds any of the words; a
common word ("file", "error") is in a fifth of a large collection, and scoring those
chunks is most of a keyword search's time. The top ``n`` rarely needs the chunks that
hold *only* common words: BM25 is a sum over the query's words, and one word adds at
most ``idf * (k1 + 1)`` to a chunk's score, so such a chunk scores at most ``bound``, the
common words' maxima summed (the MaxScore idea of Turtle and Flood, 1995). So the query
is split into rare words ``R`` and common words ``C``, and FTS5 scores, in two queries,

1. ``(R) AND (C)``: the chunks with both kinds, every word counted once, so each score
   is the chunk's full BM25 score (FTS5's idf and averages are the whole collection's,
   whatever the expression);
2. ``R``: the chunks with rare words, by those words alone (the full score of a chunk
   with no common word; less than it for one with some, which query 1 then scores).

The ``n`` best of both together are the top ``n`` of the chunks with a rare word; when
the n-th of them scores above ``bound``, they are the top ``n`` of the whole query.
Otherwise a second split moves into ``R`` the common words that do not fit under that
n-th score (which can only rise as ``R`` grows), and that split always decides; with no
common word left it is FTS5's plain ``OR`` query. Either way the ranking is FTS5's own.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fireside.docs.store import Store

K1 = 1.2
"""FTS5's ``bm25()`` term-frequency saturation: one word adds at most ``idf * (K1 + 1)``."""
COMMON_SHARE = 0.02
"""A word in more than this share of the chunks is a common word."""
MIN_COMMON_HITS = 2000
"""Below this many chunks holding common words, FTS5 scores the whole query at once."""


def idf(n_rows: int, hits: int) -> float:
    """FTS5's inverse document frequency of a word in ``hits`` of ``n_rows`` chunks (never
    below 1e-6)."""
    value = math.log((n_rows - hits + 0.5) / (hits + 0.5)) if n_rows else 0.0
    return value if value > 0.0 else 1e-6


def _or(phrases: list[str]) -> str:
    return " OR ".join(phrases)


def top(store: Store, words: list[str], n: int) -> list[tuple[int, float]]:
    """``(chunk id, BM25 score)`` of the ``n`` best chunks for any of ``words`` (distinct,
    lower case), best first: FTS5's ranking of ``"w1" OR "w2" OR ...``."""
    phrases = [f'"{w}"' for w in words]
    whole = _or(phrases)
    if len(phrases) < 2:
        return store.keyword(whole, n)
    with store.reading():  # one snapshot: the statistics and the scores agree
        n_rows, _ = store.keyword_totals()
        hits = {p: store.keyword_hits(p) for p in phrases}
        ceiling = {p: idf(n_rows, hits[p]) * (K1 + 1.0) for p in phrases}
        common = sorted(
            (p for p in phrases if hits[p] > COMMON_SHARE * n_rows), key=lambda p: hits[p]
        )
        if len(common) == len(phrases) or sum(hits[p] for p in common) < MIN_COMMON_HITS:
            return store.keyword(whole, n)
        best, theta = _split(store, phrases, common, n)
        if best is not None and sum(ceiling[p] for p in common) < theta:
            return best
        if theta <= 0.0:  # fewer than n chunks have a rare word
            return store.keyword(whole, n)
        # keep the most common words whose maxima fit under theta; the rest become rare
        kept: list[str] = []
        for p in reversed(common):
            if sum(ceiling[q] for q in kept) + ceiling[p] >= theta:
                break
            kept.append(p)
        if kept:
            best, _ = _split(store, phrases, kept, n)
            if best is not None:
                return best
        return store.keyword(whole, n)


def _split(
    store: Store, phrases: list[str], common: list[str], n: int
) -> tuple[list[tuple[int, float]] | None, float]:
    """The top ``n`` of the chunks holding a word not in ``common``, and the n-th score
    (0 and None when fewer than ``n`` chunks hold one)."""
    rare = [p for p in phrases if p not in common]
    scores = dict(store.keyword(f"({_or(rare)}) AND ({_or(common)})", n))
    for chunk_id, score in store.keyword(_or(rare), n):
        if score > scores.get(chunk_id, 0.0):  # no common word in it (else query 1 has it)
            scores[chunk_id] = score
    ranked = sorted(scores.items(), key=lambda item: -item[1])[:n]
    if len(ranked) < n:
        return None, 0.0
    return ranked, ranked[-1][1]
