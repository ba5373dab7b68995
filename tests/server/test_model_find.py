"""What a request for a model that is not loaded waits for before its load starts.

:meth:`ModelManager.find` (which model the name means) must pick the same model as the first entry of
:meth:`ModelManager.servable` (the listing ``/v1/models`` shows) answering to the name,
while looking on disk only for the catalog entries that can answer to it (a request
for a model that is not loaded pays this lookup before its load starts). Checked on a
real store: a catalog model's file, plain downloads (one with a download record naming
it), a link to the catalog file under another name, the second part of a split model.
And the server, once started, prepares the first load in the background.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fireside.hub import config, get_entry, store
from fireside.server.config import ServerConfig
from fireside.server.metrics import Metrics
from fireside.server.model_manager import ModelManager, Servable, without_latest

from tests.stores import fresh_store, place

SMOL = "smollm2-135m-instruct"
ENTRY = get_entry(SMOL)
assert ENTRY is not None


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[ModelManager]:
    with fresh_store(tmp_path_factory.mktemp("find-store")):
        catalog_file = store.hub_path(ENTRY.repo, ENTRY.file)
        place(model_path, catalog_file)
        models = config.models_dir()
        place(model_path, models / "local" / "plain-model.gguf")
        recorded = models / "urls" / "abc" / "downloaded.gguf"
        place(model_path, recorded)
        record = recorded.with_name(recorded.name + store.RECORD_SUFFIX)
        record.write_text(json.dumps({"name": "https://example.invalid/m.gguf"}))
        place(model_path, models / "local" / "split-00002-of-00002.gguf")
        link = models / "local" / "alias-of-smol.gguf"
        link.symlink_to(catalog_file)
        manager = ModelManager(ServerConfig(), metrics=Metrics())
        try:
            yield manager
        finally:
            manager.close_now()


def _first_listed(manager: ModelManager, name: str) -> Servable | None:
    """What the full listing says ``name`` means (as find did before)."""
    wanted = without_latest(name).lower()
    entry = get_entry(wanted)
    for servable in manager.servable():
        if wanted in servable.names or (entry is not None and servable.entry is entry):
            return servable
    return None


def test_find_picks_what_the_listing_lists_first(manager: ModelManager) -> None:
    listed = manager.servable()
    ids = {s.id for s in listed}
    assert SMOL in ids and "plain-model" in ids and "downloaded" in ids
    assert "alias-of-smol" not in ids  # the catalog model's file, listed as that model
    assert not any(s.id.startswith("split-00002") for s in listed)
    names = {n for s in listed for n in s.names} | {
        "smollm2:latest",
        "SmolLM2-135M-Instruct",
        "alias-of-smol",
        "alias-of-smol.gguf",
        "split-00002-of-00002",
        "nothing-like-this",
        "https://example.invalid/m.gguf",
    }
    for name in sorted(names):
        expected = _first_listed(manager, name)
        found = manager.find(name)
        assert (found and (found.id, found.path)) == (expected and (expected.id, expected.path)), (
            name
        )


def test_find_looks_on_disk_only_for_entries_that_can_answer(
    manager: ModelManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fireside.hub import manage, resolve

    looked: list[str] = []
    real = resolve.find_local

    def counting(ref: object) -> list[Path]:
        looked.append(getattr(ref, "name", "?"))
        return real(ref)  # type: ignore[arg-type]

    monkeypatch.setattr(resolve, "find_local", counting)
    monkeypatch.setattr(manage, "find_local", counting)
    found = manager.find("plain-model")
    assert found is not None and found.path.name == "plain-model.gguf"
    assert looked == []  # no catalog entry is named so, and no file is named like it
    found = manager.find(SMOL)
    assert found is not None and found.entry is ENTRY
    assert looked == [ENTRY.name]
    looked.clear()
    manager.servable()  # the full listing looks for every entry
    assert len(looked) > 1


def test_a_server_prepares_its_first_load_at_start(tmp_path: Path) -> None:
    """With no model loaded, the code that loads one and a chat template worker are
    made ready in the background at start, so the first request does not wait for them
    (in a fresh process: this one has imported them already)."""
    code = (
        "import asyncio, json, sys\n"
        "from fireside.chat.template_pool import shared_pool\n"
        "from fireside.server import create_app\n"
        "app = create_app(None)\n"
        "before = 'fireside.model' in sys.modules\n"
        "manager = app.state.models\n"
        "async def main():\n"
        "    await manager.start()\n"
        "    await asyncio.to_thread(manager.prepared.wait, 60)\n"
        "    await manager.close()\n"
        "asyncio.run(main())\n"
        "print(json.dumps({'before': before, 'after': 'fireside.model' in sys.modules,\n"
        "    'engine': 'fireside.server.engine' in sys.modules,\n"
        "    'prewarmed': shared_pool().prewarmed}))\n"
    )
    env = {**os.environ, "FIRESIDE_MODELS_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "before": False,
        "after": True,
        "engine": True,
        "prewarmed": 1,
    }
