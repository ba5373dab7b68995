"""The models view in a real Chromium: the first run downloads a model from a local fake
Hub (serving the real test model's bytes as the catalog's file) with a live progress bar
and a cancel button, then the chat uses it, a second model is switched to, and one is
deleted after confirmation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fireside.hub import get_entry, store
from fireside.server import create_app

from tests.hub.fakehub import FakeHub
from tests.server.conftest import LiveServer, serve
from tests.stores import fresh_store, hub_serving_the_test_model, place

from .web_helpers import send, set_max_tokens, wait_idle

SMOL = "smollm2-135m-instruct"
GEMMA = "gemma-3-270m-q4_k_m"
ENTRY = get_entry(SMOL)
assert ENTRY is not None

# Every text the download's progress label shows, in order (it changes as bytes arrive).
OBSERVE_PROGRESS = """
() => {
  window.__progress = [];
  new MutationObserver(() => {
    for (const label of document.querySelectorAll(".download-percent")) {
      const text = label.textContent;
      if (window.__progress[window.__progress.length - 1] !== text) window.__progress.push(text);
    }
  }).observe(document.getElementById("models-view"), {
    childList: true, subtree: true, characterData: true,
  });
}
"""


# Every state the model badge in the header goes through.
OBSERVE_BADGE = """
() => {
  const badge = document.getElementById("model-badge");
  window.__badge = [badge.dataset.state];
  new MutationObserver(() => window.__badge.push(badge.dataset.state)).observe(badge, {
    attributes: true, attributeFilter: ["data-state"],
  });
}
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[FakeHub]:
    """An empty model store and a fake Hub serving the test model as the catalog's file."""
    root = tmp_path_factory.mktemp("models-page")
    with fresh_store(root) as mp, hub_serving_the_test_model(mp, model_path) as fake:
        yield fake


@pytest.fixture(scope="module")
def live(hub: FakeHub) -> Iterator[LiveServer]:
    app = create_app(None, parallel=1, ctx_size=1024, n_threads=1, keep_alive=-1.0)
    with serve(app) as server:
        yield server


@pytest.fixture
def confirming_page(browser: Any) -> Iterator[Any]:
    """A page whose confirm() dialogs are answered by ``page.answers`` (first in first)."""
    context = browser.new_context(viewport={"width": 1280, "height": 820})
    page = context.new_page()
    page.set_default_timeout(60_000)
    answers: list[bool] = []
    errors: list[str] = []

    def on_dialog(dialog: Any) -> None:
        if answers and answers.pop(0):
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.answers = answers  # type: ignore[attr-defined]
    yield page
    context.close()
    assert not errors, f"the page raised: {errors}"


def catalog_row(page: Any, name: str) -> Any:
    return page.locator(f'#catalog-models [data-catalog="{name}"]')


def served_row(page: Any, name: str) -> Any:
    return page.locator(f'#served-models [data-model="{name}"]')


def test_first_run_download_chat_switch_delete(
    confirming_page: Any, live: LiveServer, hub: FakeHub, gemma_path: Path
) -> None:
    page = confirming_page
    page.goto(live.url + "/")
    # first run: no model yet, so the page opens on the catalog
    page.wait_for_selector("#models-view:not([hidden]) .models-first-run")
    row = catalog_row(page, SMOL)
    facts = row.locator(".model-facts").inner_text()
    assert "98 MB download" in facts and f"{ENTRY.ram_gb} GB of memory" in facts
    assert ENTRY.license in facts
    assert row.locator(".model-description").inner_text() == ENTRY.description
    page.evaluate(OBSERVE_PROGRESS)

    # a slow download, cancelled: the server stops it and nothing is kept as downloaded
    hub.faults.bytes_per_second = 4_000_000
    row.locator("[data-action=download]").click()
    page.wait_for_function("() => (window.__progress || []).some((t) => /^[1-9]\\d* %/.test(t))")
    row.locator("[data-action=cancel]").click()
    row.locator("[data-action=download]").wait_for()
    assert live.app.state.pulls.wait_idle(60)
    assert not store.hub_path(ENTRY.repo, ENTRY.file).exists()

    # the real download: progress up to 100 %, then it is on this computer
    hub.faults.bytes_per_second = None
    page.evaluate("() => { window.__progress = []; }")
    row.locator("[data-action=download]").click()
    served_row(page, SMOL).wait_for()
    shown = page.evaluate("window.__progress")
    percents = [int(t.split(" %")[0]) for t in shown if " %" in t]
    assert percents and percents[-1] == 100 and percents == sorted(percents), shown
    assert store.hub_path(ENTRY.repo, ENTRY.file).is_file()

    # chat with it
    served_row(page, SMOL).locator("text=Use in this chat").click()
    page.wait_for_selector("#models-view", state="hidden")
    page.wait_for_selector("#model-badge[data-state=loaded]")  # "loading…" until then
    assert page.locator("#model-badge").inner_text() == SMOL
    set_max_tokens(page, 8)
    send(page, "Name a color.")
    wait_idle(page)
    assert page.locator(".message.assistant .content").last.inner_text().strip()
    page.wait_for_selector(f'#model-select option[value="{SMOL}"]', state="attached")

    # a second model appears in the store; the conversation switches to it (loading state)
    place(gemma_path, store.hub_path("fireside-tests/gemma", f"{GEMMA}.gguf"))
    if page.locator("#settings").is_hidden():
        page.click("#settings-toggle")
    page.click("#models-refresh")
    page.wait_for_selector(f'#model-select option[value="{GEMMA}"]', state="attached")
    assert "loads when used" in page.locator(f'#model-select option[value="{GEMMA}"]').inner_text()
    page.select_option("#model-select", GEMMA)
    page.wait_for_selector("#model-badge[data-state=loaded]")
    assert page.locator("#model-badge").inner_text() == GEMMA
    loaded = {m.service.model_id for m in live.app.state.models.loaded()}
    assert loaded == {SMOL, GEMMA}
    send(page, "Name a fruit.")
    wait_idle(page)
    assert page.locator(".message.assistant .content").last.inner_text().strip()

    # delete the first one: not on a dismissed confirmation, then for real
    page.click("#models-toggle")
    page.wait_for_selector(f'#served-models [data-model="{SMOL}"][data-loaded=true]')
    row = served_row(page, SMOL)
    row.locator("[data-action=delete]").click()  # dismissed
    assert store.hub_path(ENTRY.repo, ENTRY.file).is_file()
    page.answers.append(True)
    row.locator("[data-action=delete]").click()
    served_row(page, SMOL).wait_for(state="detached")
    assert not store.hub_path(ENTRY.repo, ENTRY.file).exists()
    assert catalog_row(page, SMOL).locator("[data-action=download]").is_visible()
    served_row(page, GEMMA).locator("[data-action=unload]").click()
    page.wait_for_selector(f'#served-models [data-model="{GEMMA}"][data-loaded=false]')
    assert live.app.state.models.loaded() == []

    # a reply from a model that is not in memory: the header says it is loading first
    page.click("#models-close")
    page.evaluate(OBSERVE_BADGE)
    send(page, "Name a tree.")
    wait_idle(page)
    page.wait_for_selector("#model-badge[data-state=loaded]")
    assert "loading" in page.evaluate("window.__badge")
    assert {m.service.model_id for m in live.app.state.models.loaded()} == {GEMMA}
