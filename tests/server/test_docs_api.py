"""The server's LocalDocs: ``--docs`` collections listed and searched over HTTP, and chat
completions with ``"docs"`` that return ``references`` (official ``openai`` client, real
model, real documents: dpkg's specification files).

The server exposes only "builds"; "packages" exists on disk beside it and must stay out of
reach.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fireside.chat.grounding import Grounding, grounded_messages
from fireside.docs import Collection, CollectionNotFoundError
from fireside.server import create_app

from tests.answers_corpus import (
    PROTECTED_QUESTION,
    ROOTLESS_QUESTION,
    build_collections,
    cache_dir,
)

from .conftest import LiveServer, serve

SLOT_CTX = 1024


@pytest.fixture(scope="module")
def answers_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("answers-cache")
    build_collections(cache, tmp_path_factory.mktemp("answers-docs"))
    return cache


@pytest.fixture(scope="module")
def live(model_path: Path, answers_cache: Path) -> Iterator[LiveServer]:
    with cache_dir(answers_cache):
        app = create_app(model_path, parallel=2, ctx_size=SLOT_CTX, n_threads=1, docs=("builds",))
    with serve(app) as server:
        yield server


def _ask(live: LiveServer, question: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": live.model_id,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": 4,
        "temperature": 0,
        **extra,
    }


def _expected_references(live: LiveServer, answers_cache: Path, question: str) -> list[Any]:
    model = live.app.state.service.model
    with cache_dir(answers_cache):
        grounding = Grounding("builds")
        try:
            return grounding.retrieve(question, model.count_tokens, n_ctx=SLOT_CTX)
        finally:
            grounding.close()


def _prompt_tokens(live: LiveServer, question: str, refs: list[Any]) -> int:
    model = live.app.state.service.model
    messages = grounded_messages([{"role": "user", "content": question}], refs)
    return len(model.apply_chat_template(messages, tokenize=True))


def test_the_served_collections_are_listed(live: LiveServer) -> None:
    body = httpx.get(live.url + "/v1/docs", timeout=60).json()
    assert body["object"] == "list"
    (card,) = body["data"]
    assert card["id"] == "builds"
    assert card["object"] == "collection"
    assert card["documents"] == 2
    assert card["chunks"] > 10
    assert card["embedder"] == "all-MiniLM-L6-v2-F16"


def test_search_returns_the_hits_of_the_collection(live: LiveServer, answers_cache: Path) -> None:
    r = httpx.post(
        live.url + "/v1/docs/builds/search", json={"query": ROOTLESS_QUESTION, "k": 3}, timeout=60
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["collection"] == "builds"
    with cache_dir(answers_cache), Collection("builds", create=False) as col:
        hits = col.search(ROOTLESS_QUESTION, k=3)
    assert [(h["source"], h["text"]) for h in body["data"]] == [(h.source, h.text) for h in hits]
    assert body["data"][0]["file"] == "rootless-builds.txt"
    assert body["data"][0]["location"]["lines"][0] >= 1


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/v1/docs/packages/search", {"query": "Protected"}, 404, None),  # on disk, not served
        ("/v1/docs/nope/search", {"query": "x"}, 404, None),
        ("/v1/docs/..%2Fbuilds/search", {"query": "x"}, 404, "no route"),
        ("/v1/docs/builds/search", {"query": ""}, 400, "query"),
        ("/v1/docs/builds/search", {"query": "   "}, 400, "query"),
        ("/v1/docs/builds/search", {"query": "x", "k": 0}, 400, "k"),
        ("/v1/docs/builds/search", {"query": "x", "k": 51}, 400, "k"),
        ("/v1/docs/builds/search", {"query": "x" * 4001}, 400, "query"),
        ("/v1/docs/builds/search", {"query": "x", "path": "/etc"}, 400, "path"),
        ("/v1/docs/builds/search", {}, 400, "query"),
    ],
)
def test_bad_searches_are_answered_in_openais_error_shape(
    live: LiveServer, path: str, body: dict[str, Any], status: int, param: str | None
) -> None:
    r = httpx.post(live.url + path, json=body, timeout=60)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["message"]
    assert error["type"] == "invalid_request_error"
    if param == "no route":  # a name with a slash is no collection route at all
        assert error["code"] is None
    elif status == 404:
        assert error["code"] == "collection_not_found"
        assert "'builds'" in error["message"]  # says what is served
    else:
        assert error["param"] == param


def test_a_chat_completion_with_docs_cites_the_excerpts_its_prompt_carried(
    live: LiveServer, answers_cache: Path
) -> None:
    client = live.client()
    reply = client.chat.completions.create(
        model=live.model_id,
        messages=[{"role": "user", "content": ROOTLESS_QUESTION}],
        max_tokens=4,
        temperature=0,
        extra_body={"docs": ["builds"]},
    )
    refs = _expected_references(live, answers_cache, ROOTLESS_QUESTION)
    assert refs and refs[0].file_name == "rootless-builds.txt"
    got = reply.choices[0].model_extra["references"]  # type: ignore[index]
    assert got == [r.to_dict() for r in refs]
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == _prompt_tokens(live, ROOTLESS_QUESTION, refs)
    assert reply.usage.prompt_tokens > _prompt_tokens(live, ROOTLESS_QUESTION, [])
    assert sum(live.app.state.service.model.count_tokens(r.excerpt) for r in refs) <= SLOT_CTX // 4


def test_a_stream_sends_the_references_before_done(live: LiveServer, answers_cache: Path) -> None:
    body = _ask(live, ROOTLESS_QUESTION, docs=["builds"], stream=True)
    events = []
    with httpx.stream("POST", live.url + "/v1/chat/completions", json=body, timeout=120) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(line[len("data: ") :])
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    cited = [c for c in chunks if c["choices"] and "references" in c["choices"][0]]
    assert len(cited) == 1
    assert cited[0]["choices"][0]["finish_reason"] is not None
    refs = _expected_references(live, answers_cache, ROOTLESS_QUESTION)
    assert cited[0]["choices"][0]["references"] == [r.to_dict() for r in refs]

    # and through the official client
    stream = live.client().chat.completions.create(
        model=live.model_id,
        messages=[{"role": "user", "content": ROOTLESS_QUESTION}],
        max_tokens=4,
        temperature=0,
        stream=True,
        extra_body={"docs": ["builds"]},
    )
    last = [c for c in stream if c.choices][-1]
    assert last.choices[0].model_extra["references"][0]["file"] == "rootless-builds.txt"  # type: ignore[index]


def test_without_docs_there_is_no_references_field(live: LiveServer) -> None:
    r = httpx.post(live.url + "/v1/chat/completions", json=_ask(live, "Hi"), timeout=120)
    assert r.status_code == 200
    assert "references" not in r.json()["choices"][0]


@pytest.mark.parametrize(
    ("docs", "status", "code"),
    [
        (["packages"], 404, "collection_not_found"),  # exists on disk, not exposed
        (["nope"], 404, "collection_not_found"),
        (["builds", "nope"], 404, "collection_not_found"),
        (["../builds"], 404, "collection_not_found"),
        (["builds", "builds"], 400, None),
        ([], 400, None),
        ("builds", 400, None),
        ([f"c{i}" for i in range(9)], 400, None),
    ],
)
def test_chat_with_docs_that_are_not_served_is_refused(
    live: LiveServer, docs: Any, status: int, code: str | None
) -> None:
    client = live.client()
    kind = openai.NotFoundError if status == 404 else openai.BadRequestError
    with pytest.raises(kind) as caught:
        client.chat.completions.create(
            model=live.model_id,
            messages=[{"role": "user", "content": PROTECTED_QUESTION}],
            max_tokens=4,
            extra_body={"docs": docs},
        )
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["param"] == "docs" or (error["param"] or "").startswith("docs")
    assert error["code"] == code


def test_docs_needs_a_user_message(live: LiveServer) -> None:
    body = _ask(live, "x", docs=["builds"])
    body["messages"] = [{"role": "system", "content": "You are terse."}]
    r = httpx.post(live.url + "/v1/chat/completions", json=body, timeout=60)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "messages"


def test_an_unknown_collection_stops_the_app_before_it_serves(
    model_path: Path, answers_cache: Path
) -> None:
    with cache_dir(answers_cache), pytest.raises(CollectionNotFoundError, match="'nope'"):
        create_app(model_path, parallel=1, ctx_size=256, n_threads=1, docs=("builds", "nope"))
    with pytest.raises(ValueError, match="one plain name"):
        create_app(model_path, parallel=1, ctx_size=256, n_threads=1, docs=("../builds",))
