"""Samples, their median and spread, and the ratio of two figures.

Every figure in a benchmark report is a :class:`Figure`: the raw samples (kept so a
reader can recompute anything), their median and their spread. Ratios compare medians
of two figures measured in the same run.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Figure:
    """One measured quantity: samples in ``unit`` and their summary.

    ``higher_is_better`` tells a reader (and the plot) which way is good.
    """

    name: str
    unit: str
    samples: list[float] = field(default_factory=list)
    higher_is_better: bool = True

    def add(self, value: float) -> None:
        self.samples.append(float(value))

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def minimum(self) -> float | None:
        return min(self.samples) if self.samples else None

    @property
    def maximum(self) -> float | None:
        return max(self.samples) if self.samples else None

    @property
    def spread(self) -> float | None:
        """(max - min) / median: the relative range of the samples (0 for one sample)."""
        median = self.median
        if not self.samples or not median:
            return None
        return (max(self.samples) - min(self.samples)) / abs(median)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "median": self.median,
            "min": self.minimum,
            "max": self.maximum,
            "spread": self.spread,
            "n": self.n,
            "samples": list(self.samples),
            "higher_is_better": self.higher_is_better,
        }


def ratio(ours: Figure | None, reference: Figure | None) -> float | None:
    """``ours.median / reference.median``, or ``None`` when either is missing or zero."""
    if ours is None or reference is None:
        return None
    a, b = ours.median, reference.median
    if a is None or b is None or b == 0:
        return None
    return a / b


def paired_ratio(ours: Figure | None, reference: Figure | None) -> float | None:
    """The median over runs of ``ours[i] / reference[i]``: each pair was measured back to
    back, so drift on a shared machine cancels within a pair. ``None`` unless both figures
    have the same number of samples."""
    if ours is None or reference is None or not ours.samples:
        return None
    if len(ours.samples) != len(reference.samples) or 0.0 in reference.samples:
        return None
    return statistics.median(a / b for a, b in zip(ours.samples, reference.samples))


def compared(ours: Figure | None, reference: Figure | None) -> tuple[float | None, float | None]:
    """``ours / reference`` as a report states it: the paired ratio (:func:`paired_ratio`),
    or the ratio of the medians where the runs do not pair up; and the ratio of the
    medians."""
    of_medians = ratio(ours, reference)
    paired = paired_ratio(ours, reference)
    return (paired if paired is not None else of_medians), of_medians


def median_of(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None
