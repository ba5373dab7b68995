"""LoRA adapters: loading, applying with scales, removing, lifetimes and bad files.

The adapter is written here with the ``gguf`` package in the layout llama.cpp's
``llama-adapter.cpp`` reads: ``general.type = "adapter"``, ``adapter.type = "lora"``,
``adapter.lora.alpha``, and for each adapted base tensor ``W`` (ggml shape ``[n_in, n_out]``)
a pair ``W.lora_a`` ``[n_in, rank]`` and ``W.lora_b`` ``[rank, n_out]``, both F32.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from pathlib import Path

import gguf
import numpy as np
import numpy.typing as npt
import pytest
from fireside import _core
from fireside.errors import ClosedError, ModelLoadError

from .conftest import make_context

PROMPT = "The capital of France is"
TARGETS = ("blk.0.attn_q.weight", "blk.0.attn_v.weight")
RANK = 8
ALPHA = 16.0


def write_adapter(
    path: Path,
    base: Path,
    *,
    arch: str = "llama",
    targets: Sequence[str] = TARGETS,
    rank_of_b: int = RANK,
    seed: int = 0,
) -> Path:
    """Write a random LoRA adapter for the tensors ``targets`` of the base model ``base``."""
    shapes = {t.name: [int(n) for n in t.shape] for t in gguf.GGUFReader(base).tensors}
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(path, arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, ALPHA)
    for name in targets:
        n_in, n_out = shapes[name]  # ggml order: ne[0] is the input dimension
        # numpy shapes are ggml shapes reversed.
        a = rng.normal(0.0, 0.2, size=(RANK, n_in)).astype(np.float32)
        b = rng.normal(0.0, 0.2, size=(n_out, rank_of_b)).astype(np.float32)
        writer.add_tensor(f"{name}.lora_a", a)
        writer.add_tensor(f"{name}.lora_b", b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def adapter_path(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_adapter(tmp_path_factory.mktemp("lora") / "adapter.gguf", model_path)


def prompt_logits(
    ctx: _core.Context, tokens: Sequence[int] | None = None
) -> npt.NDArray[np.float32]:
    """Logits of the last prompt token (``tokens``, default the context's model's), from empty."""
    ctx.memory_clear()
    ctx.decode(ctx.model.tokenize(PROMPT) if tokens is None else tokens)
    return ctx.logits()


@pytest.fixture(scope="module")
def base_logits(model: _core.Model) -> npt.NDArray[np.float32]:
    with make_context(model) as ctx:
        return prompt_logits(ctx)


@pytest.fixture(scope="module")
def lora_logits(model: _core.Model, adapter_path: Path) -> npt.NDArray[np.float32]:
    adapter = model.load_lora(adapter_path)
    with make_context(model) as ctx:
        ctx.set_lora([(adapter, 1.0)])
        logits = prompt_logits(ctx)
    adapter.close()
    return logits


def assert_changed(logits: npt.NDArray[np.float32], base: npt.NDArray[np.float32]) -> None:
    assert np.abs(logits - base).max() > 0.1


def test_load_and_metadata(model: _core.Model, adapter_path: Path) -> None:
    adapter = model.load_lora(adapter_path)
    assert adapter.path == str(adapter_path)
    assert not adapter.closed
    meta = adapter.metadata
    assert meta["general.type"] == "adapter"
    assert meta["adapter.type"] == "lora"
    assert float(meta["adapter.lora.alpha"]) == ALPHA
    assert meta["general.architecture"] == "llama"
    adapter.close()
    adapter.close()  # idempotent
    assert adapter.closed
    with pytest.raises(ClosedError):
        _ = adapter.metadata


def test_adapter_changes_logits(
    lora_logits: npt.NDArray[np.float32], base_logits: npt.NDArray[np.float32]
) -> None:
    assert np.isfinite(lora_logits).all()
    assert_changed(lora_logits, base_logits)


def test_scale_zero_and_removal_give_base_logits(
    model: _core.Model,
    adapter_path: Path,
    ctx: _core.Context,
    base_logits: npt.NDArray[np.float32],
    lora_logits: npt.NDArray[np.float32],
) -> None:
    adapter = model.load_lora(adapter_path)
    ctx.set_lora([(adapter, 0.0)])
    np.testing.assert_allclose(prompt_logits(ctx), base_logits, atol=1e-4)
    ctx.set_lora([(adapter, 0.5)])
    half = prompt_logits(ctx)
    assert_changed(half, base_logits)
    assert_changed(half, lora_logits)
    ctx.set_lora([(adapter, 1.0)])
    np.testing.assert_allclose(prompt_logits(ctx), lora_logits, atol=1e-4)
    ctx.set_lora([])
    np.testing.assert_allclose(prompt_logits(ctx), base_logits, atol=1e-4)
    adapter.close()


def test_adapter_outlives_closed_model(
    model_path: Path,
    adapter_path: Path,
    lora_logits: npt.NDArray[np.float32],
    base_logits: npt.NDArray[np.float32],
) -> None:
    own = _core.Model(model_path)
    adapter = own.load_lora(adapter_path)
    ctx = make_context(own)
    prompt = own.tokenize(PROMPT)
    own.close()
    del own
    gc.collect()
    # The adapter and the context keep the weights they were made for.
    assert adapter.metadata["adapter.type"] == "lora"
    ctx.set_lora([(adapter, 1.0)])
    np.testing.assert_allclose(prompt_logits(ctx, prompt), lora_logits, atol=1e-4)
    ctx.set_lora([])
    np.testing.assert_allclose(prompt_logits(ctx, prompt), base_logits, atol=1e-4)
    # Released in the "wrong" order: context, then adapter (the model's last owner).
    ctx.close()
    adapter.close()
    gc.collect()


def test_closed_model_cannot_load_adapters(model_path: Path, adapter_path: Path) -> None:
    own = _core.Model(model_path, vocab_only=True)
    own.close()
    with pytest.raises(ClosedError):
        own.load_lora(adapter_path)


def test_closing_applied_adapter(
    model: _core.Model,
    adapter_path: Path,
    ctx: _core.Context,
    base_logits: npt.NDArray[np.float32],
    lora_logits: npt.NDArray[np.float32],
) -> None:
    adapter = model.load_lora(adapter_path)
    ctx.set_lora([(adapter, 1.0)])
    adapter.close()
    del adapter
    gc.collect()
    # The context holds the adapter: still applied, nothing freed under it.
    np.testing.assert_allclose(prompt_logits(ctx), lora_logits, atol=1e-4)
    ctx.set_lora([])
    np.testing.assert_allclose(prompt_logits(ctx), base_logits, atol=1e-4)


def test_closed_adapter_cannot_be_applied(
    model: _core.Model, adapter_path: Path, ctx: _core.Context
) -> None:
    adapter = model.load_lora(adapter_path)
    adapter.close()
    with pytest.raises(ClosedError):
        ctx.set_lora([(adapter, 1.0)])


def test_two_adapters_together(
    model: _core.Model,
    model_path: Path,
    adapter_path: Path,
    tmp_path: Path,
    ctx: _core.Context,
    lora_logits: npt.NDArray[np.float32],
) -> None:
    other_path = write_adapter(tmp_path / "other.gguf", model_path, seed=1)
    first, other = model.load_lora(adapter_path), model.load_lora(other_path)
    ctx.set_lora([(other, 1.0)])
    alone = prompt_logits(ctx)
    ctx.set_lora([(first, 1.0), (other, 1.0)])
    both = prompt_logits(ctx)
    assert_changed(both, lora_logits)
    assert_changed(both, alone)
    ctx.set_lora([(first, 1.0), (other, 0.0)])
    np.testing.assert_allclose(prompt_logits(ctx), lora_logits, atol=1e-4)
    first.close()
    other.close()


def test_base_model_is_not_an_adapter(model: _core.Model, model_path: Path) -> None:
    with pytest.raises(ModelLoadError) as info:
        model.load_lora(model_path)
    reason = info.value.reason or ""
    assert "general.type" in reason and "adapter" in reason, reason
    assert info.value.path == str(model_path)


def test_random_bytes_are_not_an_adapter(model: _core.Model, tmp_path: Path) -> None:
    path = tmp_path / "noise.gguf"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelLoadError) as info:
        model.load_lora(path)
    assert info.value.reason


@pytest.mark.parametrize(
    ("options", "reason_part"),
    [
        ({"arch": "gemma3"}, "arch"),
        ({"targets": ["blk.0.attn_q.weight"], "rank_of_b": RANK + 1}, "transposed"),
    ],
    ids=["wrong-architecture", "rank-mismatch"],
)
def test_mismatched_adapter_is_refused(
    model: _core.Model,
    model_path: Path,
    tmp_path: Path,
    options: dict[str, object],
    reason_part: str,
) -> None:
    path = write_adapter(tmp_path / "bad.gguf", model_path, **options)  # type: ignore[arg-type]
    with pytest.raises(ModelLoadError) as info:
        model.load_lora(path)
    assert reason_part in (info.value.reason or ""), info.value.reason


def test_missing_file(model: _core.Model, tmp_path: Path) -> None:
    """Like a missing model: FileNotFoundError naming the path."""
    path = tmp_path / "absent.gguf"
    with pytest.raises(FileNotFoundError) as info:
        model.load_lora(path)
    assert info.value.filename == str(path)
