"""The source distribution: it carries the pinned, patched llama.cpp tree (so installing it
needs no network) and none of llama.cpp's docs, tests, tools, web UI or models."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sdist")
    # the tree the sdist carries: already there after any build, fetched (or copied) otherwise
    subprocess.run(
        [sys.executable, str(ROOT / "vendor" / "fetch_llama_cpp.py")],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (archive,) = out.glob("fireside-*.tar.gz")
    return archive


def test_contents(sdist: Path) -> None:
    with tarfile.open(sdist) as tar:
        names = [name.split("/", 1)[1] for name in tar.getnames() if "/" in name]
    tree = [n for n in names if n.startswith("vendor/llama.cpp/")]
    for needed in (
        "vendor/llama.cpp/CMakeLists.txt",
        "vendor/llama.cpp/include/llama.h",
        "vendor/llama.cpp/src/llama.cpp",
        "vendor/llama.cpp/ggml/src/ggml-rpc/ggml-rpc.cpp",
        "vendor/llama.cpp/.fireside-stamp",
        "vendor/patches/ggml-rpc-recoverable.patch",
        "vendor/cpu-kernels.cmake",
        "csrc/module.cpp",
        "python/fireside/__init__.py",
    ):
        assert needed in names, needed
    for unwanted in ("docs/", "tests/", "tools/", "examples/", "models/", "gguf-py/", "scripts/"):
        assert not any(n.startswith(f"vendor/llama.cpp/{unwanted}") for n in tree), unwanted
    assert not any(n.endswith(".gguf") for n in names)
    assert not any(n.startswith(("build/", "benchmarks/results/")) for n in names)
    assert sdist.stat().st_size < 15 * 1024 * 1024, sdist.stat().st_size


def test_patched_tree_inside(sdist: Path) -> None:
    with tarfile.open(sdist) as tar:
        (member,) = [
            m
            for m in tar.getmembers()
            if m.name.endswith("vendor/llama.cpp/ggml/include/ggml-rpc.h")
        ]
        header = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
    assert "GGML_RPC_FIRESIDE_RECOVERABLE" in header


def test_installs_offline_in_a_fresh_venv(sdist: Path, tmp_path: Path, model_path: Path) -> None:
    """A fresh venv, no package index (only a folder of the wheels pip needs), an empty
    fireside cache: the llama.cpp source can only come from the sdist itself."""
    wheels = tmp_path / "wheels"
    build_tools = ["scikit-build-core>=0.10", "pybind11>=2.13", "pip", "cmake>=3.21", "ninja"]
    for what in (build_tools, [str(sdist)]):
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "-d", str(wheels), *what],
            check=True,
            capture_output=True,
            timeout=900,
        )
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    env = dict(
        os.environ,
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(wheels),
        FIRESIDE_CACHE_DIR=str(tmp_path / "empty-cache"),
        CCACHE_BASEDIR=str(tmp_path),
    )
    env.pop("FIRESIDE_LLAMA_CPP_DIR", None)
    install = subprocess.run(
        [python, "-m", "pip", "install", str(sdist)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
        check=False,
        cwd=tmp_path,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    assert not (tmp_path / "empty-cache" / "llama.cpp-src").exists()
    check = (
        "import sys, fireside; from fireside import Model\n"
        "assert fireside.__file__.startswith(sys.prefix), fireside.__file__\n"
        f"m = Model({str(model_path)!r}, n_ctx=128, n_threads=1)\n"
        "print(m.generate('Hello', max_tokens=4, temperature=0).tokens)\n"
    )
    run = subprocess.run(
        [python, "-c", check],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.startswith("[")
