"""Real processes: kill -9 in the middle of an update, two updaters at once, the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from fireside.docs.collection import Collection

CHILD = r"""
import sys
from fireside.docs.collection import Collection

name, embedder, folder = sys.argv[1:4]
col = Collection(name, embedder=embedder, n_threads=1)

def progress(event):
    print(event.action, event.path, flush=True)

report = col.add(folder, progress=progress)
print("done", report.embedded_files, flush=True)
"""

SMALL = ["frontend-api.txt", "protected-field.txt", "pyyaml-README.md", "rootless-builds.txt",
         "zstd-TESTING.md", "jansson-README.rst", "mime-references.html", "usenix-example.pdf"]  # fmt: skip


def _small_corpus(corpus: Path) -> Path:
    for item in corpus.iterdir():
        if item.name not in SMALL:
            item.unlink()
    return corpus


def _child(name: str, embedder: Path, folder: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, name, str(embedder), str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _same(a: Collection, b: Collection) -> None:
    rows_a, rows_b = a._store.snapshot(), b._store.snapshot()
    assert len(rows_a) == len(rows_b)
    for ra, rb in zip(rows_a, rows_b):
        assert ra[:-1] == rb[:-1]  # path, hash, format, title, chunk text and location
        va, vb = (np.frombuffer(r[-1], np.float32) for r in (ra, rb))
        assert np.allclose(va, vb, atol=1e-5)


def test_kill_9_during_update_then_update_equals_an_uninterrupted_run(
    corpus: Path, embedder_path: Path
) -> None:
    folder = _small_corpus(corpus)
    child = _child("killed", embedder_path, folder)
    assert child.stdout is not None
    first = child.stdout.readline()  # one file committed, the next one under way
    assert first.startswith("added "), first + child.stderr.read()  # type: ignore[union-attr]
    child.kill()
    child.wait(timeout=60)
    assert child.returncode == -9

    with Collection("killed", embedder=str(embedder_path), n_threads=1) as col:
        assert col._store.integrity_check() == []
        before = col.info().n_documents
        assert 1 <= before < len(SMALL)  # it really was interrupted
        report = col.update()
        assert report.embedded_files == len(SMALL) - before  # only the unfinished files
        assert col.info().n_documents == len(SMALL)
        with Collection("whole", embedder=str(embedder_path), n_threads=1) as whole:
            whole.add(folder)
            _same(col, whole)


def test_two_processes_updating_one_collection_take_turns(
    corpus: Path, embedder_path: Path
) -> None:
    folder = _small_corpus(corpus)
    children = [_child("shared", embedder_path, folder) for _ in range(2)]
    outputs = [child.communicate(timeout=300) for child in children]
    for child, (out, err) in zip(children, outputs):
        assert child.returncode == 0, err
    embedded = sorted(int(out.strip().splitlines()[-1].split()[1]) for out, _ in outputs)
    assert embedded == [0, len(SMALL)]  # the second waited, then found nothing to do
    with Collection("shared", create=False) as col:
        assert col._store.integrity_check() == []
        assert col.info().n_documents == len(SMALL)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fireside.cli", "docs", *args],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_the_cli_adds_searches_lists_shows_and_removes(
    corpus: Path, embedder_path: Path, docs_cache: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "FIRESIDE_CACHE_DIR": str(docs_cache), "HF_HUB_OFFLINE": "1"}
    notes = tmp_path / "notes"
    notes.mkdir()
    for name in ("rootless-builds.txt", "pyyaml-README.md", "usenix-example.pdf"):
        shutil.copy2(corpus / name, notes / name)
    (notes / "logo.png").write_bytes(b"\x89PNG\r\n")
    added = _cli(env, "add", "notes", str(notes), "--embedder", str(embedder_path))
    assert added.returncode == 0, added.stderr
    assert "3 added" in added.stdout and "1 skipped" in added.stdout
    assert "logo.png: unsupported file type (.png)" in added.stdout

    found = _cli(env, "search", "notes", "Rules-Requires-Root binary-targets", "-k", "2", "--json")
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert len(hits) == 2
    assert hits[0]["source"] == str(notes / "rootless-builds.txt")
    assert {"source", "location", "score", "text"} <= set(hits[0])
    assert hits[0]["location"]["lines"][0] >= 1

    pdf = _cli(env, "search", "notes", "lifetime award 1998", "--mode", "keyword")
    assert "usenix-example.pdf (page 3)" in pdf.stdout, pdf.stdout

    assert "notes" in _cli(env, "list").stdout
    shown = json.loads(_cli(env, "show", "notes", "--json").stdout)
    assert shown["n_documents"] == 3 and shown["embedder"] == "all-MiniLM-L6-v2-F16"

    (notes / "pyyaml-README.md").unlink()
    updated = _cli(env, "update", "notes")
    assert "1 removed" in updated.stdout, updated.stdout

    bad = _cli(env, "search", "notes", "x", "--mode", "fuzzy")
    assert bad.returncode == 2 and "--mode must be one of" in bad.stderr
    for args in (("search", "../etc", "x"), ("rm", "nope"), ("update", "a/b")):
        result = _cli(env, *args)
        assert result.returncode == 1
        assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr

    assert _cli(env, "rm", "notes").returncode == 0
    assert "no collections" in _cli(env, "list").stdout
