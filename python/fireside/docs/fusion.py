"""Reciprocal-rank fusion: merge ranked lists by ``sum(1 / (k + rank))`` (Cormack et al.
2009; GPT4All 3.4 merges its keyword and vector results the same way)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

RRF_K = 60
"""The rank offset: larger values flatten the difference between top and lower ranks."""


def reciprocal_rank_fusion(
    rankings: Mapping[str, Sequence[int]], *, k: int = RRF_K
) -> list[tuple[int, float, tuple[str, ...]]]:
    """``(item, fused score, names of the rankings that had it)``, best first.

    Ties keep the order of first appearance (rankings in the mapping's order).
    """
    scores: dict[int, float] = {}
    found: dict[int, list[str]] = {}
    for name, ranking in rankings.items():
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
            found.setdefault(item, []).append(name)
    order = sorted(scores, key=lambda item: -scores[item])
    return [(item, scores[item], tuple(found[item])) for item in order]
