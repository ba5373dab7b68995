"""The chat page with LocalDocs, in real Chromium: collections picked per conversation, and
the sources under the answer (file name, place, an excerpt that opens), never as HTML.

The server exposes the "builds" collection of dpkg's real specification files; "packages"
exists on disk too but is not exposed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fireside.chat.grounding import Grounding
from fireside.model import Model

from tests.answers_corpus import ROOTLESS_QUESTION, build_collections, cache_dir

from .conftest import N_CTX, LiveServer, PageWatch, start_server
from .web_helpers import open_chat, open_settings, saved_state, seed_state, send, wait_idle


@pytest.fixture(scope="module")
def answers_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("answers-cache")
    build_collections(cache, tmp_path_factory.mktemp("answers-docs"))
    return cache


@pytest.fixture(scope="module")
def docs_server(model_path: Path, answers_cache: Path) -> Iterator[LiveServer]:
    with cache_dir(answers_cache):
        server = start_server(model_path, docs=("builds",))
    yield server
    server.stop()


def _expected(model_path: Path, answers_cache: Path) -> list[Any]:
    with cache_dir(answers_cache), Model(model_path, n_ctx=N_CTX, n_threads=1) as model:
        grounding = Grounding("builds")
        try:
            return grounding.retrieve(ROOTLESS_QUESTION, model.count_tokens, n_ctx=N_CTX)
        finally:
            grounding.close()


def test_a_picked_collection_makes_the_answer_show_its_sources(
    page: Any,
    docs_server: LiveServer,
    watch: PageWatch,
    model_path: Path,
    answers_cache: Path,
) -> None:
    open_chat(page, docs_server.url)
    open_settings(page)
    option = page.locator(".docs-option", has_text="builds")
    option.wait_for()
    assert "2 documents" in option.inner_text()
    assert page.locator(".docs-option").count() == 1  # "packages" is not exposed
    option.locator("input").check()
    page.fill("#max-tokens", "4")
    send(page, ROOTLESS_QUESTION)
    wait_idle(page)

    assert watch.chat_requests[-1]["docs"] == ["builds"]
    expected = _expected(model_path, answers_cache)
    answer = page.locator(".message.assistant").last
    sources = answer.locator(".sources .source")
    assert sources.count() == len(expected) >= 1
    first = sources.first
    assert first.locator(".source-number").inner_text() == "[1]"
    assert first.locator(".source-file").inner_text() == "rootless-builds.txt"
    lines = expected[0].location
    assert first.locator(".source-where").inner_text() == (
        f"lines {lines.line_start}-{lines.line_end}"
    )
    excerpt = first.locator(".source-excerpt")
    assert not excerpt.is_visible()  # folded until asked for
    first.locator("summary").click()
    assert excerpt.is_visible()
    assert excerpt.inner_text().strip() == expected[0].excerpt.strip()

    # kept with the conversation: a reload shows the same sources
    saved = saved_state(page)["conversations"][0]
    assert saved["settings"]["docs"] == ["builds"]
    assert [r["excerpt"] for r in saved["messages"][-1]["references"]] == [
        r.excerpt for r in expected
    ]
    page.reload()
    page.wait_for_selector("#server-status[data-state=ok]")
    again = page.locator(".message.assistant").last.locator(".source-file")
    assert again.first.inner_text() == "rootless-builds.txt"
    assert not watch.console_errors, watch.console_errors


def test_collections_are_per_conversation_and_unserved_ones_are_not_sent(
    page: Any, docs_server: LiveServer, watch: PageWatch
) -> None:
    seed_state(
        page,
        {
            "version": 1,
            "activeId": "b",
            "conversations": [
                {"id": "a", "title": "with docs", "updated": 2, "messages": [],
                 "settings": {"docs": ["builds"], "max_tokens": 2}},
                {"id": "b", "title": "stale docs", "updated": 1, "messages": [],
                 "settings": {"docs": ["packages"], "max_tokens": 2}},
            ],
        },
    )  # fmt: skip
    open_chat(page, docs_server.url)
    open_settings(page)
    stale = page.locator(".docs-option", has_text="packages")
    stale.wait_for()
    assert "(not served)" in stale.inner_text()
    assert not page.locator(".docs-option", has_text="builds").locator("input").is_checked()
    send(page, "Hello")
    wait_idle(page)
    assert "docs" not in watch.chat_requests[-1]
    assert page.locator(".message.assistant .sources").count() == 0

    page.locator(".conv-open", has_text="with docs").click()
    open_settings(page)
    assert page.locator(".docs-option", has_text="builds").locator("input").is_checked()
    send(page, ROOTLESS_QUESTION)
    wait_idle(page)
    assert watch.chat_requests[-1]["docs"] == ["builds"]
    assert page.locator(".message.assistant .sources .source").count() >= 1


HOSTILE = "<img src=x onerror=\"window.__pwned='excerpt'\"><script>window.__pwned=1</script>"


def test_excerpts_and_file_names_are_never_html(
    page: Any, docs_server: LiveServer, watch: PageWatch
) -> None:
    reference = {
        "number": 1,
        "collection": "builds",
        "file": "<b onmouseover=\"window.__pwned='file'\">x.txt</b>",
        "source": "/tmp/x.txt",
        "title": None,
        "location": {"page": 2, "heading": "<i>h</i>", "lines": [3, 4]},
        "excerpt": HOSTILE,
    }
    seed_state(
        page,
        {
            "version": 1,
            "activeId": "x",
            "conversations": [
                {
                    "id": "x",
                    "title": "hostile",
                    "updated": 1,
                    "messages": [
                        {"role": "user", "content": "q"},
                        {"role": "assistant", "content": "a", "references": [reference]},
                    ],
                }
            ],
        },
    )
    open_chat(page, docs_server.url)
    source = page.locator(".sources .source").first
    source.locator("summary").click()
    sources = page.locator(".sources")
    assert sources.locator("img, script, b, i, [onerror]").count() == 0
    assert HOSTILE in source.locator(".source-excerpt").inner_text()
    assert "<b onmouseover=" in source.locator(".source-file").inner_text()
    assert source.locator(".source-where").inner_text() == "page 2 · § <i>h</i> · lines 3-4"
    source.locator(".source-file").hover()
    assert page.evaluate("window.__pwned") is None
    assert not watch.dialogs
    assert not watch.console_errors, watch.console_errors
    assert not [u for u in watch.requests if u.endswith("/x")]
