"""Model stores for tests that list, serve or download models: a fresh store of their own
(never this machine's), the real test models placed in it, and a fake Hub serving the
catalog's file."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fireside.hub import config, get_entry

from tests.hub.fakehub import FakeHub, Faults

SMOL = "smollm2-135m-instruct"
"""The catalog name of the test model."""


OUTSIDE_SETTINGS = (
    "FIRESIDE_MODELS_DIR",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_TOKEN",
    "HF_HUB_ETAG_TIMEOUT",
)
"""Environment variables of this machine that would point a test at another store or
Hub setting (removed for the test)."""


def place(source: Path, dest: Path) -> Path:
    """Put ``source`` at ``dest`` (a hard link, else a copy; kept if already there)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists():
        try:
            os.link(source, dest)
        except OSError:
            shutil.copyfile(source, dest)
    return dest


@contextmanager
def fresh_store(root: Path) -> Iterator[pytest.MonkeyPatch]:
    """Empty fireside and huggingface_hub caches under ``root`` until the block ends,
    online, with no models folder or Hub cache set from outside."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FIRESIDE_CACHE_DIR", str(root / "cache"))
        mp.setenv("HF_HOME", str(root / "hf-home"))
        mp.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        mp.setenv("FIRESIDE_HUB_TIMEOUT", "30")
        for var in OUTSIDE_SETTINGS:
            mp.delenv(var, raising=False)
        config.set_offline(None)
        try:
            yield mp
        finally:
            config.set_offline(None)


@contextmanager
def hub_serving_the_test_model(mp: pytest.MonkeyPatch, model_path: Path) -> Iterator[FakeHub]:
    """A fake Hub serving ``model_path`` as the catalog's file of the test model;
    ``HF_ENDPOINT`` points at it (through ``mp``) until the block ends."""
    entry = get_entry(SMOL)
    assert entry is not None
    fake = FakeHub().start()
    fake.add(entry.repo, entry.file, model_path.read_bytes())
    mp.setenv("HF_ENDPOINT", fake.endpoint)
    try:
        yield fake
    finally:
        fake.faults = Faults()  # a throttle or a gate a test left must not hold the stop
        fake.stop()
