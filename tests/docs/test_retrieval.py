"""Questions whose answers sit at a known place in real documents find that place."""

from __future__ import annotations

from typing import Any

import pytest

# (question, corpus file, a check on the location of the top hit)
QUESTIONS: list[tuple[str, str, dict[str, Any]]] = [
    (
        "How do I install PyYAML without the LibYAML bindings?",
        "pyyaml-README.md",
        {"heading": "Installation"},
    ),
    ("What values can the Rules-Requires-Root field take?", "rootless-builds.txt", {}),
    (
        "Protected packages should not be trivial to remove, like Essential ones",
        "protected-field.txt",
        {},
    ),
    ("Which release is codenamed Jammy Jellyfish?", "ubuntu.csv", {"line_start": 37}),
    ("glob elements have a pattern attribute", "shared-mime-info-spec.pdf", {"page": 4}),
    ("In which year did Tim Berners-Lee receive the award?", "usenix-example.pdf", {"page": 3}),
]


@pytest.mark.parametrize("mode", ["hybrid", "keyword"])
@pytest.mark.parametrize(("question", "expected", "where"), QUESTIONS)
def test_the_top_hit_is_the_right_document_and_place(
    indexed: Any, question: str, expected: str, where: dict[str, Any], mode: str
) -> None:
    hits = indexed.search(question, k=5, mode=mode)
    assert hits, question
    top = hits[0]
    assert top.source.endswith("/" + expected), [h.source for h in hits]
    for key, value in where.items():
        actual = getattr(top.location, key)
        if key == "line_start":
            assert top.location.line_start <= value <= top.location.line_end, top.location
        else:
            assert actual == value, top.location


@pytest.mark.parametrize(("question", "expected", "where"), QUESTIONS)
def test_vector_search_alone_ranks_the_right_document_near_the_top(
    indexed: Any, question: str, expected: str, where: dict[str, Any]
) -> None:
    hits = indexed.search(question, k=5, mode="vector")
    assert len(hits) == 5
    assert all(h.retriever == "vector" for h in hits)
    assert any(h.source.endswith("/" + expected) for h in hits), [h.source for h in hits]
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_hybrid_hits_say_which_retriever_found_them(indexed: Any) -> None:
    hits = indexed.search("Rules-Requires-Root binary-targets", k=10)
    assert {h.retriever for h in hits} <= {"keyword", "vector", "both"}
    assert hits[0].retriever == "both"
    data = hits[0].to_dict()
    assert set(data) >= {"source", "location", "score", "text", "retriever"}
    assert data["source"].startswith("/")
    assert data["text"] == hits[0].text


def test_keyword_search_is_not_fooled_by_fts_syntax(indexed: Any) -> None:
    for query in ['"', "NEAR(", "a OR", "*", "-", "title:x", "')--"]:
        indexed.search(query, k=3, mode="keyword")  # no error
    assert indexed.search("!!!", k=3, mode="keyword") == []
