"""Keyword search's split query (fireside.docs.bm25) ranks exactly as FTS5's plain OR query.

The store holds real documents (manual pages, Debian docs, Python's standard library: the
benchmark corpus), so word frequencies are a real collection's.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import pytest
from fireside.bench.docs_corpus import chunk_texts, documents
from fireside.docs import bm25, retrieval
from fireside.docs.chunking import Chunk
from fireside.docs.locations import Location
from fireside.docs.store import Store

N_CHUNKS = 3000


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    st = Store(tmp_path_factory.mktemp("split") / "db.sqlite")
    rng = np.random.default_rng(0)
    total = 0
    with st.transaction():
        for i, doc in enumerate(documents()):
            texts = chunk_texts(doc)[: N_CHUNKS - total]
            if not texts:
                continue
            vectors = rng.standard_normal((len(texts), 8)).astype(np.float32)
            st.put_document(
                path=doc.name, fmt=doc.format, title=None, size=len(doc.data), mtime_ns=0,
                sha256=str(i), chunks=[Chunk(t, Location()) for t in texts], vectors=vectors,
            )  # fmt: skip
            total += len(texts)
            if total >= N_CHUNKS:
                break
    assert total == N_CHUNKS
    yield st
    st.close()


def _queries(st: Store) -> list[str]:
    asked = [
        "how to list files sorted by modification time",
        "read a file line by line and decode utf-8",
        "return value of the function when an error occurs",
        "error: permission denied when opening the file",
        "parse command line arguments with subcommands",
        "set the timeout for a socket connection",
        "foo_bar __init__ self return None",
    ]
    rng = random.Random(7)
    texts = [t for _, t in st.chunk_texts()]
    for text in rng.sample(texts, 60):
        words = text.split()
        if len(words) > 8:
            start = rng.randrange(len(words) - 6)
            asked.append(" ".join(words[start : start + rng.randint(2, 7)]))
    return asked


def test_totals_are_fts5s_own(store: Store) -> None:
    n_rows, n_tokens = store.keyword_totals()
    assert n_rows == N_CHUNKS == store.counts()[1]
    assert 10 * N_CHUNKS < n_tokens < 200 * N_CHUNKS


def test_split_ranking_equals_the_plain_or_query(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bm25, "MIN_COMMON_HITS", 50)  # a small store: split anyway
    splits = []
    real_split = bm25._split
    monkeypatch.setattr(bm25, "_split", lambda *a: splits.append(1) or real_split(*a))
    decided = {"first": 0, "second": 0}
    for query in _queries(store):
        words = retrieval.query_words(query)
        match = retrieval.fts_query(query)
        assert match is not None
        for n in (5, 20):
            splits.clear()
            got = bm25.top(store, words, n)
            want = store.keyword(match, n)
            assert len(got) == len(want), query
            # same scores in the same order; chunks with equal scores may swap
            assert [round(s, 9) for _, s in got] == [round(s, 9) for _, s in want], query
            by_score: dict[float, set[int]] = {}
            for i, s in want:
                by_score.setdefault(round(s, 9), set()).add(i)
            assert all(i in by_score[round(s, 9)] for i, s in got), query
            if len(splits) == 1:
                decided["first"] += 1
            elif len(splits) == 2:
                decided["second"] += 1
    # both ways of deciding were exercised
    assert decided["first"] > 0 and decided["second"] > 0, decided


def test_no_words_no_hits_and_one_word(store: Store) -> None:
    assert retrieval.keyword_search(store, "?!", 5) == []
    assert bm25.top(store, ["zzzqqqxxy", "wwwvvvuuu"], 5) == []
    assert bm25.top(store, ["file"], 5) == store.keyword('"file"', 5)
