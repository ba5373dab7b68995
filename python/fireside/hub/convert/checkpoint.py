"""Reading a Hugging Face model directory: its JSON files and its safetensors weights.

Everything here comes from a stranger, so each JSON file has a size cap and must hold an
object, and the weights are read only from ``*.safetensors`` files (never pickles) with
the ``safetensors`` package's numpy API, as float32.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fireside.errors import ConversionError

MAX_JSON_BYTES = 64 * 1024 * 1024
"""The largest JSON file read (``tokenizer.json`` of a big vocabulary is a few MB)."""

_FLOAT_DTYPES = ("F32", "F16", "F64")


def read_json(path: Path, *, required: bool = True, kind: type = dict) -> Any:
    """The JSON value (a ``kind``: object or list) in ``path``; ``None`` when it is absent
    and not ``required``."""
    if not path.is_file():
        if required:
            raise ConversionError(f"{path.parent}: no {path.name} (is this a model directory?)")
        return None
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise ConversionError(f"{path}: {size:,} bytes is too large for a model's JSON file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ConversionError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, kind):
        expected = "a JSON object" if kind is dict else "a JSON list"
        raise ConversionError(f"{path}: expected {expected}, got {type(data).__name__}")
    return data


class Weights:
    """The tensors of the ``*.safetensors`` files in one directory, by name."""

    def __init__(self, folder: Path) -> None:
        from safetensors import safe_open

        files = sorted(folder.glob("*.safetensors"))
        if not files:
            found = sorted(p.name for p in folder.glob("*.bin")) + sorted(
                p.name for p in folder.glob("*.pt*")
            )
            hint = f" (found {', '.join(found)}: PyTorch pickles are not read)" if found else ""
            raise ConversionError(f"{folder}: no .safetensors weights{hint}")
        self._where: dict[str, Any] = {}
        self._handles: list[Any] = []
        for file in files:
            try:
                handle = safe_open(str(file), framework="np")
            except Exception as e:
                raise ConversionError(f"{file}: not a readable safetensors file ({e})") from e
            self._handles.append(handle)
            for name in handle.keys():  # noqa: SIM118 - a safetensors handle, not a dict
                if name in self._where:
                    raise ConversionError(f"{folder}: tensor {name!r} is in two files")
                self._where[name] = (file, handle)

    def names(self) -> list[str]:
        """Every tensor name, sorted."""
        return sorted(self._where)

    def shape(self, name: str) -> tuple[int, ...]:
        """The shape of tensor ``name`` (without reading it)."""
        _, handle = self._where[name]
        return tuple(handle.get_slice(name).get_shape())

    def dtype(self, name: str) -> str:
        """The safetensors dtype of ``name`` (``"F32"``, ``"F16"``, ``"I64"``...)."""
        _, handle = self._where[name]
        return str(handle.get_slice(name).get_dtype())

    def float32(self, name: str) -> npt.NDArray[np.float32]:
        """Tensor ``name`` as a C-contiguous float32 array."""
        file, handle = self._where[name]
        dtype = self.dtype(name)
        if dtype not in _FLOAT_DTYPES:
            raise ConversionError(
                f"{file.name}: tensor {name!r} is {dtype}; supported: {', '.join(_FLOAT_DTYPES)}"
            )
        try:
            data = handle.get_tensor(name)
        except Exception as e:
            raise ConversionError(f"{file.name}: tensor {name!r} cannot be read ({e})") from e
        out = np.ascontiguousarray(data, dtype=np.float32)
        if not np.isfinite(out).all():
            raise ConversionError(f"{file.name}: tensor {name!r} holds NaN or infinite values")
        return out

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
