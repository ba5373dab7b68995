"""Split models: the first shard of a gguf-split style model loads every shard.

The shards are written here from the real SmolLM2 file with the ``gguf`` package, named and
keyed the way llama.cpp's gguf-split names and keys them (``NAME-00001-of-00002.gguf``;
``split.no``, ``split.count``, ``split.tensors.count``).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np
import pytest
from fireside import _core
from fireside.errors import ModelLoadError

PROMPT = "The capital of France is"
N_SHARDS = 2
# Fields the reader reports about the file itself, and the one the writer adds on its own.
NOT_COPIED = {"GGUF.version", "GGUF.tensor_count", "GGUF.kv_count", "general.architecture"}


def shard_path(directory: Path, name: str, index: int) -> Path:
    """llama.cpp's name for shard ``index`` (0-based) of ``name``."""
    return directory / f"{name}-{index + 1:05d}-of-{N_SHARDS:05d}.gguf"


def copy_metadata(reader: gguf.GGUFReader, writer: gguf.GGUFWriter) -> None:
    """Copy every key/value of ``reader`` (scalars and arrays) into ``writer``."""
    for key, field in reader.fields.items():
        if key in NOT_COPIED:
            continue
        vtype = field.types[0]
        sub_type = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), vtype, sub_type)


def write_shard(
    path: Path,
    reader: gguf.GGUFReader,
    index: int,
    tensors: list[gguf.ReaderTensor],
    n_tensors: int,
    *,
    metadata: bool,
) -> None:
    """Write shard ``index`` holding ``tensors`` (and all metadata when ``metadata``)."""
    arch = str(reader.fields["general.architecture"].contents())
    writer = gguf.GGUFWriter(path, arch)
    if metadata:
        copy_metadata(reader, writer)
    writer.add_uint16(gguf.Keys.Split.LLM_KV_SPLIT_NO, index)
    writer.add_uint16(gguf.Keys.Split.LLM_KV_SPLIT_COUNT, N_SHARDS)
    writer.add_int32(gguf.Keys.Split.LLM_KV_SPLIT_TENSORS_COUNT, n_tensors)
    for tensor in tensors:
        # Quantised data comes as raw bytes; raw_dtype gives the writer the real type.
        writer.add_tensor(tensor.name, tensor.data, raw_dtype=tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture(scope="module")
def shards(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The real model split into two shards: metadata and half the tensors, then the rest."""
    directory = tmp_path_factory.mktemp("split")
    reader = gguf.GGUFReader(model_path)
    tensors = list(reader.tensors)
    half = len(tensors) // 2
    paths = [shard_path(directory, "smollm2", i) for i in range(N_SHARDS)]
    write_shard(paths[0], reader, 0, tensors[:half], len(tensors), metadata=True)
    write_shard(paths[1], reader, 1, tensors[half:], len(tensors), metadata=False)
    return paths


def test_split_keys_match_llama_cpp(shards: list[Path]) -> None:
    # The names llama.cpp reads (LLM_KV_SPLIT_* in llama-arch.cpp).
    for index, path in enumerate(shards):
        fields = gguf.GGUFReader(path).fields
        assert fields["split.no"].contents() == index
        assert fields["split.count"].contents() == N_SHARDS
        assert fields["split.tensors.count"].contents() == 272


def test_first_shard_loads_all_shards(
    model: _core.Model,
    shards: list[Path],
    new_context: Callable[..., _core.Context],
    run_greedy: Callable[..., list[int]],
) -> None:
    with _core.Model(shards[0]) as split:
        assert split.metadata["split.count"] == str(N_SHARDS)
        assert split.n_params == model.n_params
        assert split.size == model.size
        assert split.n_layer == model.n_layer

        prompt = model.tokenize(PROMPT)
        assert split.tokenize(PROMPT) == prompt
        results = []
        for m in (model, split):
            ctx = new_context(m)
            ctx.decode(prompt)
            logits = ctx.logits()
            results.append((logits, run_greedy(ctx, 8)))
        (base_logits, base_tokens), (split_logits, split_tokens) = results
        # Same weights, same computation: the same numbers.
        np.testing.assert_allclose(split_logits, base_logits, rtol=0, atol=1e-5)
        assert split_tokens == base_tokens


def test_later_shard_is_refused(shards: list[Path]) -> None:
    with pytest.raises(ModelLoadError) as info:
        _core.Model(shards[1])
    assert info.value.reason


def test_missing_second_shard(shards: list[Path], tmp_path: Path) -> None:
    first = tmp_path / shards[0].name
    shutil.copyfile(shards[0], first)
    missing = tmp_path / shards[1].name
    with pytest.raises(ModelLoadError) as info:
        _core.Model(first)
    reason = info.value.reason or ""
    assert missing.name in reason, reason
    assert info.value.path == str(first)
