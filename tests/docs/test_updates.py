"""Incremental updates on real documents: only what changed is read and embedded."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from fireside.docs.collection import Collection, list_collections
from fireside.docs.errors import CollectionNotFoundError, EmbedderMismatchError


def _collection(embedder_path: Path, name: str = "notes") -> Collection:
    return Collection(name, embedder=str(embedder_path), n_threads=1)


def test_update_reembeds_only_the_changed_file(corpus: Path, embedder_path: Path) -> None:
    for big in ("shared-mime-info-spec.pdf", "ubuntu.csv"):
        (corpus / big).unlink()  # keeps the test quick
    with _collection(embedder_path) as col:
        first = col.add(corpus)
        n_files = len(os.listdir(corpus))
        assert len(first.added) == n_files and first.embedded_files == n_files
        assert first.embedded_chunks == col.info().n_chunks > 0

        again = col.update()
        assert (again.embedded_files, again.embedded_chunks, again.unchanged) == (0, 0, n_files)

        # a changed file: only it is embedded again
        changed = corpus / "frontend-api.txt"
        changed.write_text(changed.read_text() + "\nAppended: the quokka is a small wallaby.\n")
        report = col.update()
        assert report.updated == [str(changed)]
        assert report.added == [] and report.removed == []
        (doc,) = [d for d in col.documents() if d["path"] == str(changed)]
        assert report.embedded_chunks == doc["n_chunks"]
        assert col.search("quokka wallaby", k=1, mode="keyword")[0].source == str(changed)

        # touched but identical: hashed, not embedded
        os.utime(corpus / "zstd-TESTING.md", ns=(1, 1))
        assert col.update().embedded_files == 0

        # deleted, and a new file: one removed, one added
        (corpus / "protected-field.txt").unlink()
        shutil.copy2("/usr/share/doc/procps/bugs.md", corpus / "procps-bugs.md")
        report = col.update()
        assert report.removed == [str(corpus / "protected-field.txt")]
        assert report.added == [str(corpus / "procps-bugs.md")]
        assert report.embedded_files == 1
        sources = {h.source for h in col.search("Protected packages Essential", k=20)}
        assert str(corpus / "protected-field.txt") not in sources
        assert col._store.integrity_check() == []


def test_collections_are_listed_reopened_and_deleted(corpus: Path, embedder_path: Path) -> None:
    with _collection(embedder_path, "a") as col:
        col.add(corpus / "pyyaml-README.md")
    with pytest.raises(CollectionNotFoundError, match="no collection named 'b'"):
        Collection("b", create=False)
    assert list_collections() == ["a"]
    with Collection("a", create=False) as col:  # the recorded embedder is found again
        assert col.embedder_name == "all-MiniLM-L6-v2-F16"
        assert col.search("LibYAML bindings", k=1)[0].source.endswith("pyyaml-README.md")
    Collection.delete("a")
    assert list_collections() == []
    with pytest.raises(CollectionNotFoundError):
        Collection.delete("a")


def test_another_embedder_is_refused_until_reembed(
    corpus: Path, embedder_path: Path, model_path: Path
) -> None:
    with _collection(embedder_path) as col:
        col.add(corpus / "pyyaml-README.md")
        n_chunks = col.info().n_chunks
    with Collection("notes", embedder=str(model_path), n_threads=1) as other:
        with pytest.raises(EmbedderMismatchError, match="was indexed with all-MiniLM") as info:
            other.search("LibYAML", k=1)
        assert info.value.expected[1] != info.value.actual[1]
        with pytest.raises(EmbedderMismatchError):
            other.update()
        # keyword search needs no embedder
        assert other.search("LibYAML", k=1, mode="keyword")
        assert other.reembed(str(model_path)) == n_chunks
        assert other.info().vector_dim == 576
        assert other.search("LibYAML bindings", k=1, mode="hybrid")
        assert other._store.integrity_check() == []
    with (
        Collection("notes", embedder=str(embedder_path)) as back,
        pytest.raises(EmbedderMismatchError),
    ):
        back.search("LibYAML", k=1)


def test_chunk_settings_are_fixed_at_creation(corpus: Path, embedder_path: Path) -> None:
    with Collection("c", embedder=str(embedder_path), chunk_size=256, chunk_overlap=32) as col:
        col.add(corpus / "rootless-builds.txt")
        assert max(len(h.text) for h in col.search("root", k=50, mode="keyword")) <= 256
    with pytest.raises(ValueError, match="chunk_size=256"):
        Collection("c", chunk_size=512)
    with pytest.raises(ValueError, match="chunk_size"):
        Collection("d", chunk_size=10)
