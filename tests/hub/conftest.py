"""Fixtures for the hub tests: an isolated cache per test and a local fake Hub.

No test here reaches the real Hugging Face Hub: ``HF_ENDPOINT`` points at a closed
local port unless a test starts the fake Hub (``fake_hub``), which sets it to itself.
fireside reads ``HF_ENDPOINT`` at each call, so setting it per test is enough; child
processes get it through their environment.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fireside.hub import config

from tests.stores import OUTSIDE_SETTINGS

from .fakehub import FakeHub


def closed_port() -> int:
    """A local port nothing listens on (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def isolated_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Fresh fireside and huggingface_hub caches, online, nothing reachable by default."""
    cache = tmp_path / "fireside-cache"
    monkeypatch.setenv("FIRESIDE_CACHE_DIR", str(cache))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("FIRESIDE_HUB_TIMEOUT", "5")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for var in OUTSIDE_SETTINGS:
        monkeypatch.delenv(var, raising=False)
    config.set_offline(None)
    yield cache
    config.set_offline(None)


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A running fake Hub; ``HF_ENDPOINT`` points at it."""
    hub = FakeHub().start()
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    yield hub
    hub.stop()


@pytest.fixture(scope="session")
def small_gguf(llama_cpp_dir: Path) -> bytes:
    """A real (vocabulary-only) GGUF file of about 0.7 MB."""
    return (llama_cpp_dir / "models" / "ggml-vocab-llama-spm.gguf").read_bytes()


@pytest.fixture(scope="session")
def large_gguf(llama_cpp_dir: Path) -> bytes:
    """A real GGUF of about 15 MB: more than one of huggingface_hub's 10 MiB write chunks,
    so a transfer cut after the first chunk leaves bytes to resume from."""
    data = (llama_cpp_dir / "models" / "ggml-vocab-gemma-4.gguf").read_bytes()
    assert len(data) > 12 * 1024 * 1024
    return data


def store_files(cache: Path) -> list[Path]:
    """Every file under the fireside cache (to check nothing is left behind)."""
    return sorted(p for p in cache.rglob("*") if p.is_file()) if cache.exists() else []
