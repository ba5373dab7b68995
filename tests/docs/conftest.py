"""LocalDocs fixtures: real documents that Debian packages (and the vendored llama.cpp tree)
ship, copied into a temporary folder, and the all-MiniLM-L6-v2 embedder converted to GGUF.

The Debian packages are in `.ci/run`'s apt-get line: dpkg (its spec/*.txt), python3-yaml,
zstd, libjansson4, shared-mime-info (its spec as PDF and HTML), distro-info-data (a CSV).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import obtain_minilm

DOC = Path("/usr/share/doc")
REAL_FILES = {
    # name in the corpus: where the file comes from
    "frontend-api.txt": DOC / "dpkg/spec/frontend-api.txt",
    "protected-field.txt": DOC / "dpkg/spec/protected-field.txt",
    "rootless-builds.txt": DOC / "dpkg/spec/rootless-builds.txt",
    "pyyaml-README.md": DOC / "python3-yaml/README.md",
    "zstd-TESTING.md": DOC / "zstd/TESTING.md",
    "jansson-README.rst": DOC / "libjansson4/README.rst",
    "mime-references.html": DOC / "shared-mime-info/shared-mime-info-spec.html/b518.html",
    "shared-mime-info-spec.pdf": DOC / "shared-mime-info/shared-mime-info-spec.pdf",
    "ubuntu.csv": Path("/usr/share/distro-info/ubuntu.csv"),
}


def real_file(name: str) -> Path:
    """A real document by its corpus name; fails (never skips) when it is missing."""
    path = REAL_FILES[name]
    if not path.is_file():
        pytest.fail(f"{path} is missing: install the Debian package that ships it (.ci/run)")
    return path


@pytest.fixture(scope="session")
def example_pdf(llama_cpp_dir: Path) -> Path:
    """USENIX's example paper, a 3-page PDF in llama.cpp's UI test fixtures."""
    path = llama_cpp_dir / "tools/ui/tests/stories/fixtures/assets/example.pdf"
    if not path.is_file():
        pytest.fail(f"{path} is missing from the llama.cpp tree")
    return path


@pytest.fixture(scope="session")
def embedder_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """all-MiniLM-L6-v2 (the default embedder), converted to an f16 GGUF."""
    from fireside.hub.convert import convert_model

    out = tmp_path_factory.mktemp("minilm") / "all-MiniLM-L6-v2-F16.gguf"
    return convert_model(obtain_minilm(), out, out_type="f16")


@pytest.fixture(scope="session")
def corpus_master(tmp_path_factory: pytest.TempPathFactory, example_pdf: Path) -> Path:
    folder = tmp_path_factory.mktemp("corpus-master")
    for name in REAL_FILES:
        shutil.copy2(real_file(name), folder / name)
    shutil.copy2(example_pdf, folder / "usenix-example.pdf")
    return folder


@pytest.fixture
def corpus(corpus_master: Path, tmp_path: Path) -> Path:
    """A fresh copy of the real documents (this test may change it)."""
    folder = tmp_path / "corpus"
    shutil.copytree(corpus_master, folder)
    return folder


@pytest.fixture(autouse=True)
def docs_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own collections folder."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("FIRESIDE_CACHE_DIR", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.fixture(scope="module")
def indexed(
    corpus_master: Path, embedder_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[object]:
    """The whole corpus indexed once per module, in its own cache folder."""
    from fireside.docs.collection import Collection

    cache = tmp_path_factory.mktemp("indexed-cache")
    saved = os.environ.get("FIRESIDE_CACHE_DIR")
    os.environ["FIRESIDE_CACHE_DIR"] = str(cache)
    try:
        col = Collection("corpus", embedder=str(embedder_path), n_threads=1)
        report = col.add(corpus_master)
        assert not report.skipped, report.skipped
        yield col
        col.close()
    finally:
        if saved is None:
            os.environ.pop("FIRESIDE_CACHE_DIR", None)
        else:
            os.environ["FIRESIDE_CACHE_DIR"] = saved
