"""Bad input is skipped or refused with a reason: never a crash, never a broken collection,
never a file read outside what the user named."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from fireside.docs.collection import Collection
from fireside.docs.errors import CollectionNameError
from fireside.docs.names import collection_dir

from tests.docs.conftest import real_file


@pytest.mark.parametrize(
    "name", ["", ".", "..", "../x", "a/b", "a\\b", "x\x00y", "n" * 65, "-x", " x", "x.", "a..b"]
)
def test_bad_collection_names_are_refused(name: str, docs_cache: Path) -> None:
    with pytest.raises(CollectionNameError):
        Collection(name)
    assert not (docs_cache / "collections").exists() or not any(
        (docs_cache / "collections").iterdir()
    )


def test_a_symlinked_collections_entry_cannot_lead_outside(
    docs_cache: Path, tmp_path: Path
) -> None:
    root = docs_cache / "collections"
    root.mkdir(parents=True)
    (root / "evil").symlink_to(tmp_path)
    with pytest.raises(CollectionNameError, match="resolves outside"):
        collection_dir("evil")


def _skips(report: object) -> dict[str, str]:
    return {os.path.basename(s.path): s.reason for s in report.skipped}  # type: ignore[attr-defined]


def test_bad_files_are_skipped_with_their_reasons(
    tmp_path: Path, embedder_path: Path, example_pdf: Path
) -> None:
    from pypdf import PdfReader, PdfWriter

    folder = tmp_path / "mess"
    folder.mkdir()
    pdf = real_file("shared-mime-info-spec.pdf").read_bytes()
    (folder / "truncated.pdf").write_bytes(pdf[: len(pdf) // 3])
    (folder / "garbage.pdf").write_bytes(real_file("pyyaml-README.md").read_bytes())
    writer = PdfWriter(clone_from=PdfReader(example_pdf))
    writer.encrypt("secret", algorithm="RC4-128")
    locked = tmp_path / "locked"
    locked.mkdir()
    writer.write(locked / "encrypted.pdf")
    shutil.copy2("/bin/true", folder / "program.txt")  # binary behind a text extension
    (folder / "corrupt.docx").write_bytes(pdf[:4000])
    shutil.copy2("/bin/true", folder / "program")  # no extension
    (folder / "big.md").write_bytes(real_file("rootless-builds.txt").read_bytes() * 40)
    (folder / "empty.txt").write_bytes(b"")
    os.mkfifo(folder / "pipe.txt")
    (folder / "loop").symlink_to(folder)
    outside = tmp_path / "outside.txt"
    shutil.copy2(real_file("frontend-api.txt"), outside)
    (folder / "escape.txt").symlink_to(outside)
    (folder / "dangling.txt").symlink_to(folder / "nowhere.txt")
    (folder / ".hidden.md").write_bytes(b"# hidden\n")
    (folder / "empty-folder").mkdir()
    # real text in other encodings: indexed, not skipped
    text = real_file("pyyaml-README.md").read_text("utf-8")
    (folder / "latin1.md").write_bytes(
        (text + "\nCaf\u00e9 cr\u00e8me br\u00fbl\u00e9e.\n").encode("latin-1")
    )
    (folder / "utf16.txt").write_bytes(real_file("frontend-api.txt").read_text().encode("utf-16"))

    with Collection(
        "mess", embedder=str(embedder_path), n_threads=1, max_file_bytes=200_000
    ) as col:
        report = col.add(folder)
        skips = _skips(report)
        assert sorted(os.path.basename(p) for p in report.added) == ["latin1.md", "utf16.txt"]
        assert "corrupt PDF" in skips["truncated.pdf"] or "unreadable pdf" in skips["truncated.pdf"]
        assert "pdf" in skips["garbage.pdf"].lower()
        assert "binary" in skips["program.txt"]
        assert "docx" in skips["corrupt.docx"]
        assert "unsupported file type" in skips["program"]
        assert "larger than the 200000 bytes limit" in skips["big.md"]
        assert skips["empty.txt"] == "no text to index"
        assert skips["pipe.txt"] == "not a regular file"
        assert "loop" in skips["loop"]
        assert "outside" in skips["escape.txt"]
        assert "cannot follow" in skips["dangling.txt"]
        assert skips[".hidden.md"] == "hidden file or folder"
        assert skips["empty-folder"] == "empty folder"
        hit = col.search("Café crème brûlée", k=1, mode="keyword")[0]
        assert hit.source.endswith("latin1.md")
        assert "Café crème brûlée" in hit.text
        assert col.search("frontend lock", k=1, mode="keyword")[0].source.endswith("utf16.txt")
        assert all(not h.source.startswith(str(outside)) for h in col.search("frontend", k=50))
        assert col.info().skipped  # kept for `fireside docs show`
        assert col._store.integrity_check() == []
        skips = _skips(col.add(locked))  # larger than this collection's cap
    with Collection("locked", embedder=str(embedder_path), n_threads=1) as col:
        skips = _skips(col.add(locked))
        assert "encrypted PDF" in skips["encrypted.pdf"] and "password" in skips["encrypted.pdf"]


def test_a_file_that_turns_bad_drops_its_old_version(tmp_path: Path, embedder_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    doc = folder / "api.txt"
    shutil.copy2(real_file("frontend-api.txt"), doc)
    with Collection("x", embedder=str(embedder_path), n_threads=1) as col:
        assert col.add(folder).added == [str(doc)]
        shutil.copy2("/bin/true", doc)
        report = col.update()
        assert report.removed == [str(doc)]
        assert "binary" in _skips(report)["api.txt"]
        assert col.info().n_documents == 0


def test_vanished_paths_and_empty_input(tmp_path: Path, embedder_path: Path) -> None:
    with Collection("v", embedder=str(embedder_path), n_threads=1) as col:
        with pytest.raises(FileNotFoundError):
            col.add(tmp_path / "missing")
        with pytest.raises(ValueError, match="at least one"):
            col.add()
        report = col.add(str(tmp_path / "nothing-*.md"))
        assert report.skipped[0].reason == "the pattern matches nothing"
        one = tmp_path / "one.md"
        shutil.copy2(real_file("zstd-TESTING.md"), one)
        assert col.add(one).added == [str(one)]
        one.unlink()
        report = col.update()
        assert report.removed == [str(one)]
        assert col.info().n_documents == 0
        for bad in ("", 0, None):
            with pytest.raises((ValueError, TypeError)):
                col.search(bad, k=1)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="mode"):
            col.search("x", mode="fuzzy")
        with pytest.raises(ValueError, match="k must"):
            col.search("x", k=0)
