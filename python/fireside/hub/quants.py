"""Choosing the GGUF file of one quantization from a repository's file list.

Used for ``owner/repo:QUANT`` names, both against the Hub's listing and against the
files already downloaded. A quantization tag matches when it stands alone in the file
name (``model-Q4_K_M.gguf``, ``model.Q4_0.gguf``), so ``Q4_K`` does not match
``Q4_K_M`` and ``Q4_0`` does not match ``IQ4_0``. A model split into parts
(``-00001-of-00003.gguf``) is chosen as a whole, parts in order. Multimodal projector
files (``mmproj*``) are never chosen.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

FALLBACK_QUANTS = ("Q4_K_M", "Q4_0", "Q8_0")

_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
_TAG = re.compile(r"(?:^|[-_.])((?:I?Q\d[A-Z0-9_]*?|F16|F32|BF16))(?=$|[-.])", re.IGNORECASE)


@dataclass(frozen=True)
class RepoFile:
    """A file in a repository listing (``sha256`` from its LFS pointer, if any)."""

    path: str
    size: int | None = None
    sha256: str | None = None


def is_later_part(path: str) -> bool:
    """Whether ``path`` is part 2 or later of a split model (listed under part 1)."""
    m = _SPLIT.search(path)
    return m is not None and int(m.group(1)) > 1


def _stem(path: str) -> str:
    name = PurePosixPath(path).name
    name = _SPLIT.sub("", name)
    return name[:-5] if name.lower().endswith(".gguf") else name


def _is_candidate(path: str) -> bool:
    name = PurePosixPath(path).name.lower()
    return name.endswith(".gguf") and not name.startswith("mmproj")


def matches(path: str, quant: str) -> bool:
    """Whether the file at ``path`` is of quantization ``quant`` (any case)."""
    if not _is_candidate(path):
        return False
    pattern = rf"(?:^|[-_.]){re.escape(quant)}(?=$|[-.])"
    # the folder may carry the tag too (repo/Q4_K_M/model-00001-of-00002.gguf)
    return bool(re.search(pattern, _stem(path), re.IGNORECASE)) or any(
        part.lower() == quant.lower() for part in PurePosixPath(path).parts[:-1]
    )


def available(files: Iterable[RepoFile]) -> list[str]:
    """The quantization tags present among ``files`` (for error messages)."""
    tags = {
        m.group(1).upper()
        for f in files
        if _is_candidate(f.path)
        for m in _TAG.finditer(_stem(f.path))
    }
    return sorted(tags)


def _groups(files: Iterable[RepoFile]) -> list[list[RepoFile]]:
    """Candidates grouped so that the parts of a split model form one complete group."""
    groups: dict[str, list[RepoFile]] = {}
    for f in files:
        key = _SPLIT.sub(".gguf", f.path)
        groups.setdefault(key, []).append(f)
    complete = []
    for key, members in groups.items():
        split = [_SPLIT.search(m.path) for m in members]
        if all(s is None for s in split) and len(members) == 1:
            complete.append(members)
            continue
        if any(s is None for s in split):
            continue  # a name that is both a plain file and a split part: ambiguous, skip
        total = {int(s.group(2)) for s in split if s}
        numbers = sorted(int(s.group(1)) for s in split if s)
        if len(total) == 1 and numbers == list(range(1, total.pop() + 1)):
            complete.append(sorted(members, key=lambda m: m.path))
    # prefer files at the top of the repository, then the shortest (plainest) name
    return sorted(complete, key=lambda g: (g[0].path.count("/"), len(g[0].path), g[0].path))


def pick(files: Sequence[RepoFile], quant: str, *, explicit: bool) -> list[RepoFile]:
    """The file (or the parts, in order) of ``quant``; empty when there is none.

    Without an explicit tag, ``Q4_K_M`` is preferred, then ``Q4_0``, then ``Q8_0``, then
    the only GGUF of the repository if it has exactly one.
    """
    wanted = [quant] if explicit else [quant, *(q for q in FALLBACK_QUANTS if q != quant)]
    for q in wanted:
        groups = _groups(f for f in files if matches(f.path, q))
        if groups:
            return groups[0]
    if not explicit:
        groups = _groups(f for f in files if _is_candidate(f.path))
        if len(groups) == 1:
            return groups[0]
    return []
