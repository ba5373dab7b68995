"""Where layers go: one owner (``fireside.placement``) for Model, Embedder, the facade and
``fireside devices``; driven by a faked device list (this machine has no GPU)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from fireside import _core, placement
from fireside.compat.gpt4all import GPT4All
from fireside.embeddings import Embedder
from fireside.model import Model


def fake(monkeypatch: pytest.MonkeyPatch, *devices: tuple[str, str, bool]) -> None:
    listed = [SimpleNamespace(name=n, type=t, remote=r) for n, t, r in devices]
    monkeypatch.setattr(_core, "devices", lambda: listed)
    monkeypatch.setattr(_core, "supports_gpu_offload", lambda: True)


def test_discrete_gpus_first_and_never_a_worker_unasked(monkeypatch: pytest.MonkeyPatch) -> None:
    fake(
        monkeypatch,
        ("CPU", "cpu", False),
        ("iGPU0", "igpu", False),
        ("GPU0", "gpu", False),
        ("GPU1", "gpu", False),
        ("RPC[10.0.0.2:50052]", "gpu", True),
    )
    assert placement.local_gpus() == ["GPU0", "GPU1"]
    assert placement.pick_devices(None, []) == (["GPU0", "GPU1"], True)
    assert placement.pick_devices("gpu", []) == (["GPU0"], True)
    assert placement.pick_devices("iGPU0", []) == (["iGPU0"], True)
    assert placement.pick_devices("cpu", []) == ([], False)
    # the model's own workers first (the output layer stays local)
    assert placement.pick_devices(None, ["RPC[w]"]) == (["RPC[w]", "GPU0", "GPU1"], True)
    assert placement.pick_devices("cpu", ["RPC[w]"]) == (["RPC[w]"], True)
    assert GPT4All.list_gpus() == ["GPU0", "GPU1"]
    assert placement.gpu_layers(None, True) == -1 and placement.gpu_layers(None, False) == 0
    assert placement.gpu_layers(7, False) == 7  # a number is used as given


def test_integrated_gpus_when_there_is_no_discrete_one(monkeypatch: pytest.MonkeyPatch) -> None:
    fake(monkeypatch, ("CPU", "cpu", False), ("iGPU0", "igpu", False))
    assert placement.pick_devices(None, []) == (["iGPU0"], True)
    fake(monkeypatch, ("CPU", "cpu", False))
    assert placement.pick_devices(None, []) == ([], False)
    assert not placement.offloads_by_default()
    with pytest.raises(ValueError, match="no GPU is available"):
        placement.pick_devices("gpu", [])
    with pytest.raises(ValueError, match=r"unknown device 'CUDA7'; available: CPU"):
        placement.pick_devices("CUDA7", [])
    with pytest.raises(TypeError, match="device must be a device name"):
        placement.pick_devices(0, [])  # type: ignore[arg-type]


def test_model_loads_onto_the_devices_the_owner_picks(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Model names the owner's GPUs to the loader (not the loader's own default): a GPU
    that only the faked list has reaches llama.cpp, which does not know it."""
    fake(monkeypatch, ("CPU", "cpu", False), ("NoSuchGPU0", "gpu", False))
    with pytest.raises(ValueError, match="unknown device: NoSuchGPU0"):
        Model(model_path, n_ctx=64, n_threads=1, embedding=True)
    with pytest.raises(ValueError, match="unknown device: NoSuchGPU0"):
        Embedder(model_path)  # an Embedder that loads its own model decides alike
    # device="cpu": nothing named, the model loads
    with Model(model_path, n_ctx=64, n_threads=1, embedding=True, device="cpu") as model:
        assert model.core.n_layer > 0
