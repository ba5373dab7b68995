"""Writing a GGUF file with the ``gguf`` package: tensor types chosen as llama.cpp does, and
the file renamed into place only once it is complete.

Vectors, norms, biases, position and token-type embeddings stay float32 (llama.cpp's
kernels expect that); the other weight matrices take the requested type. ``q8_0`` needs
rows that are a multiple of 32 values; a matrix whose rows are not stays ``f16``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path

import gguf
import numpy as np
import numpy.typing as npt

from ..progress import Progress, ProgressSpec

Q = gguf.GGMLQuantizationType
OUTPUT_TYPES: dict[str, tuple[gguf.LlamaFileType, gguf.GGMLQuantizationType]] = {
    "f32": (gguf.LlamaFileType.ALL_F32, Q.F32),
    "f16": (gguf.LlamaFileType.MOSTLY_F16, Q.F16),
    "q8_0": (gguf.LlamaFileType.MOSTLY_Q8_0, Q.Q8_0),
}
"""The ``--type`` values: the file type recorded and the type of the weight matrices."""

_ALWAYS_F32 = ("position_embd.", "token_types.")

Loader = Callable[[], npt.NDArray[np.float32]]


def tensor_type(name: str, shape: tuple[int, ...], out_type: str) -> gguf.GGMLQuantizationType:
    """The GGML type tensor ``name`` (numpy ``shape``) is stored as for ``out_type``."""
    wanted = OUTPUT_TYPES[out_type][1]
    if (
        len(shape) <= 1
        or name.endswith("_norm.weight")
        or not name.endswith(".weight")
        or name.startswith(_ALWAYS_F32)
    ):
        return Q.F32
    if wanted == Q.Q8_0 and shape[-1] % gguf.GGML_QUANT_SIZES[Q.Q8_0][0]:
        return Q.F16
    return wanted


def _encode(data: npt.NDArray[np.float32], kind: gguf.GGMLQuantizationType) -> np.ndarray:
    if kind == Q.F32:
        return data
    if kind == Q.F16:
        return data.astype(np.float16)
    return gguf.quants.quantize(data, kind)


def write_gguf(
    path: Path,
    *,
    arch: str,
    out_type: str,
    add_metadata: Callable[[gguf.GGUFWriter], None],
    tensors: Sequence[tuple[str, tuple[int, ...], Loader]],
    progress: ProgressSpec = False,
) -> Path:
    """Write ``tensors`` (name, shape, loader) and metadata to ``path``, atomically.

    The file is written beside ``path`` under a temporary name, synced, then renamed:
    an interrupted conversion leaves no file at ``path`` (an older one stays whole).
    """
    file_type, _ = OUTPUT_TYPES[out_type]
    path.parent.mkdir(parents=True, exist_ok=True)
    # a fresh name opened exclusively, with the umask's permissions (mkstemp's are 0600)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.partial")
    tmp.open("xb").close()
    try:
        writer = gguf.GGUFWriter(tmp, arch)
        writer.add_file_type(int(file_type))
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        add_metadata(writer)
        total = sum(int(np.prod(shape)) * 4 for _, shape, _ in tensors)
        with Progress(progress, desc=path.name, total=total) as bar:
            for name, shape, load in tensors:
                kind = tensor_type(name, shape, out_type)
                encoded = _encode(load(), kind)
                raw = kind if kind not in (Q.F32, Q.F16) else None
                writer.add_tensor(name, encoded, raw_dtype=raw)
                bar.update(int(np.prod(shape)) * 4)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path
