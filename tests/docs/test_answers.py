"""Cited answers in Python: ``model.chat_session(docs=...)`` on real documents.

The 135M test model's answers are poor, so these tests check the mechanics: the retrieved
excerpts reach the rendered prompt (token counts match the grounded rendering exactly),
the references are those hits from the right real document, the history keeps the user's
own words, and bad input fails clearly.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fireside
import pytest
from fireside.chat.grounding import ELLIPSIS, Grounding, format_excerpt, grounded_messages

from tests.answers_corpus import (
    PROTECTED_QUESTION,
    ROOTLESS_QUESTION,
    build_collections,
    minilm_gguf,
)

GREEDY: dict[str, Any] = {"max_tokens": 4, "temperature": 0}


@pytest.fixture(scope="module")
def answers_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding the "builds" and "packages" collections (indexed once)."""
    cache = tmp_path_factory.mktemp("answers-cache")
    build_collections(cache, tmp_path_factory.mktemp("answers-docs"))
    return cache


@pytest.fixture(autouse=True)
def use_answers_cache(answers_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FIRESIDE_CACHE_DIR", str(answers_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return answers_cache


@pytest.fixture(scope="module")
def model(model_path: Path) -> Iterator[Any]:
    with fireside.Model(model_path, n_ctx=2048, n_threads=1) as m:
        yield m


def _prompt_tokens(session: Any, messages: list[dict[str, Any]], refs: list[Any]) -> int:
    text = session.chat_template.render(grounded_messages(messages, refs))
    return len(session.model.tokenize_rendered(text))


def test_the_reply_cites_the_hits_of_the_right_document_and_the_prompt_carries_them(
    model: Any,
) -> None:
    chat = model.chat_session(docs="builds", docs_k=3)
    reply = chat.send(ROOTLESS_QUESTION, **GREEDY)

    with fireside.Collection("builds", create=False) as col:
        hits = col.search(ROOTLESS_QUESTION, k=3)
    refs = reply.references
    assert [r.number for r in refs] == [1, 2, 3]
    assert [(r.source, r.excerpt, r.location) for r in refs] == [
        (h.source, h.text.strip(), h.location) for h in hits
    ]
    assert refs[0].source.endswith("/rootless-builds.txt")
    assert refs[0].file_name == "rootless-builds.txt"
    assert all(r.collection == "builds" for r in refs)
    assert "Rules-Requires-Root" in " ".join(r.excerpt for r in refs)
    assert chat.last_references == refs

    # the evaluated prompt is the grounded rendering, not the plain one
    asked = [{"role": "user", "content": ROOTLESS_QUESTION}]
    grounded = _prompt_tokens(chat, asked, refs)
    plain = _prompt_tokens(chat, asked, [])
    assert reply.usage.prompt_tokens == grounded
    excerpt_tokens = sum(model.count_tokens(r.excerpt) for r in refs)
    assert grounded - plain >= excerpt_tokens
    rendered = chat.chat_template.render(grounded_messages(asked, refs))
    assert all(r.excerpt in rendered for r in refs)
    assert "[1] rootless-builds.txt (lines " in rendered

    # the history keeps the user's words only
    assert chat.history == [
        {"role": "user", "content": ROOTLESS_QUESTION},
        {"role": "assistant", "content": reply.text},
    ]
    d = refs[0].to_dict()
    assert d["file"] == "rootless-builds.txt"
    assert d["excerpt"] == refs[0].excerpt
    assert d["location"]["lines"] == [refs[0].location.line_start, refs[0].location.line_end]


def test_each_turn_retrieves_for_its_own_message_and_the_history_stays_clean(
    model: Any,
) -> None:
    chat = model.chat_session(system_prompt="You are terse.", docs=["builds", "packages"], docs_k=2)
    first = chat.send(ROOTLESS_QUESTION, **GREEDY)
    second = chat.send(PROTECTED_QUESTION, **GREEDY)

    assert first.references[0].collection == "builds"
    assert second.references[0].collection == "packages"
    assert second.references[0].file_name == "protected-field.txt"
    history = chat.history
    assert [m["role"] for m in history] == ["system", "user", "assistant", "user", "assistant"]
    assert history[1]["content"] == ROOTLESS_QUESTION
    assert history[3]["content"] == PROTECTED_QUESTION
    assert not any("[1]" in str(m["content"]) for m in history[:4])
    # the second prompt grounds only the second question; the first turn is plain
    assert second.usage.prompt_tokens == _prompt_tokens(chat, history[:4], second.references)
    # The cache held the first turn's *grounded* prompt, so only the part before its user
    # message can be reused, to one of the engine's chunk boundaries (the end of the
    # system message); the rest is evaluated.
    stats = model.stats
    text = chat.chat_template.render(grounded_messages(history[:4], second.references))
    bounds = model._generation_engine().chunking.boundaries(model.tokenize_rendered(text))
    assert stats.last_prompt_tokens_reused in bounds
    assert stats.last_prompt_tokens_reused + stats.last_prompt_tokens_evaluated == (
        second.usage.prompt_tokens
    )


def test_a_stream_knows_its_references_before_it_runs_and_its_result_carries_them(
    model: Any,
) -> None:
    chat = model.chat_session(docs="packages", docs_k=2)
    stream = chat.send(PROTECTED_QUESTION, stream=True, **GREEDY)
    before = chat.last_references
    assert [r.file_name for r in before] == ["protected-field.txt"] * 2
    text = "".join(stream)
    assert stream.result is not None
    assert stream.result.references == before
    assert chat.history[-1] == {"role": "assistant", "content": text}


def test_the_token_budget_bounds_the_excerpts_and_cuts_the_last_one(model: Any) -> None:
    def cost(ref: Any) -> int:
        return model.count_tokens(format_excerpt(ref) + "\n\n")

    whole = model.chat_session(docs="builds", docs_k=4).send(ROOTLESS_QUESTION, **GREEDY)
    assert len(whole.references) == 4
    two = cost(whole.references[0]) + cost(whole.references[1])

    exact = model.chat_session(docs="builds", docs_k=4, docs_max_tokens=two)
    assert exact.send(ROOTLESS_QUESTION, **GREEDY).references == whole.references[:2]

    cut = model.chat_session(docs="builds", docs_k=4, docs_max_tokens=40)
    (only,) = cut.send(ROOTLESS_QUESTION, **GREEDY).references
    assert only.excerpt.endswith(ELLIPSIS)
    assert whole.references[0].excerpt.startswith(only.excerpt.removesuffix(ELLIPSIS))
    assert cost(only) <= 40

    # at most a quarter of the context, whatever is asked
    wide = model.chat_session(docs="builds", docs_max_tokens=100_000)
    assert wide.docs is not None
    assert wide.docs.max_tokens == 100_000
    assert wide.docs.budget(model.n_ctx) == model.n_ctx // 4


def test_templates_that_refuse_a_system_role_still_get_the_excerpts(model: Any) -> None:
    no_system = (
        "{% for m in messages %}{% if m.role == 'system' %}"
        "{{ raise_exception('this template has no system role') }}{% endif %}"
        "<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    chat = model.chat_session(docs="builds", docs_k=2, chat_template=no_system)
    reply = chat.send(ROOTLESS_QUESTION, **GREEDY)
    assert reply.references
    asked = [{"role": "user", "content": ROOTLESS_QUESTION}]
    assert reply.usage.prompt_tokens == _prompt_tokens(chat, asked, reply.references)


def test_a_message_with_nothing_to_cite_is_sent_as_it_is(model: Any) -> None:
    grounding = Grounding("builds", mode="keyword")
    try:
        chat = model.chat_session(docs=grounding)
        reply = chat.send("zzqx wvvy", **GREEDY)
        assert reply.references == []
        asked = [{"role": "user", "content": "zzqx wvvy"}]
        assert reply.usage.prompt_tokens == _prompt_tokens(chat, asked, [])
    finally:
        grounding.close()


def test_collection_objects_and_the_same_embedder_file_work_too(model: Any) -> None:
    with fireside.Collection("packages", embedder=str(minilm_gguf()), create=False) as col:
        reply = model.chat_session(docs=col, docs_k=1).send(PROTECTED_QUESTION, **GREEDY)
        assert [r.file_name for r in reply.references] == ["protected-field.txt"]
        assert col.search("Protected", k=1)  # still open: the session does not own it


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"docs": "no-such-collection"}, LookupError, "no collection named 'no-such-collection'"),
        ({"docs": "../etc"}, ValueError, "one plain name"),
        ({"docs": []}, ValueError, "docs is empty"),
        ({"docs": 42}, TypeError, "docs must be"),
        ({"docs": ["builds", "builds"]}, ValueError, "twice"),
        ({"docs": "builds", "docs_k": 0}, ValueError, "docs k must be an integer from 1 to 50"),
        ({"docs": "builds", "docs_k": True}, ValueError, "docs k"),
        ({"docs": "builds", "docs_max_tokens": 3}, ValueError, "docs max_tokens"),
        ({"docs_k": 3}, ValueError, "need docs="),
    ],
)
def test_bad_docs_options_are_clear_errors(
    model: Any, kwargs: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=re.escape(words)):
        model.chat_session(**kwargs)
