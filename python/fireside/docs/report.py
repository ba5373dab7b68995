"""What an add/update did, and the progress events it sends on the way."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Skipped:
    """A file (or folder) that was not indexed, and why."""

    path: str
    reason: str


@dataclass
class IndexReport:
    """The outcome of :meth:`Collection.add` or :meth:`Collection.update`.

    ``added``, ``updated`` and ``removed`` are absolute paths; ``unchanged`` counts files
    found as they were; ``embedded_chunks`` counts the chunks embedded by this call.
    """

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    embedded_chunks: int = 0

    @property
    def embedded_files(self) -> int:
        """Files parsed and embedded by this call."""
        return len(self.added) + len(self.updated)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        data = asdict(self)
        data["embedded_files"] = self.embedded_files
        return data

    def summary(self) -> str:
        """One line: the counts, and the reasons for skips."""
        line = (
            f"{len(self.added)} added, {len(self.updated)} updated, {len(self.removed)} removed, "
            f"{self.unchanged} unchanged, {len(self.skipped)} skipped"
        )
        if self.skipped:
            reasons = Counter(s.reason.split(":")[0].split("(")[0].strip() for s in self.skipped)
            line += " (" + ", ".join(f"{n} {r}" for r, n in reasons.most_common(4)) + ")"
        return line


@dataclass(frozen=True)
class IndexProgress:
    """Sent to a progress callback after each file: ``done`` of ``total`` files handled,
    the file, and what happened to it (``added``, ``updated``, ``unchanged``, ``skipped``,
    ``removed``)."""

    done: int
    total: int
    path: str
    action: str
