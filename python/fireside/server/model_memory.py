"""How much memory a model will take once loaded, estimated before loading it.

A loaded model holds its weights (about the file's size: they are memory-mapped) and the
KV cache of every slot (``parallel * n_ctx`` tokens, f16). The hyper-parameters the
cache size depends on are read from the GGUF header without loading anything: the
reader walks the header's key/value pairs, skips short arrays and stops at the
vocabulary (which comes after the hyper-parameters in files written by llama.cpp's
converters) or after :data:`MAX_KEYS` keys, so a hostile or huge header costs a bounded
read.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

from fireside.defaults import default_n_ctx, kv_bytes_per_token
from fireside.hub.formats import magic_format

MAX_KEYS = 256
"""Header keys read at most before giving up on the hyper-parameters."""
_MAX_STRING = 1 << 16
_MAX_SHORT_ARRAY = 1024
_SCALARS = {  # GGUF value type -> struct format
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
OVERHEAD = 64 << 20
"""Compute buffers and the rest of a context, added to every estimate (bytes)."""


@dataclass(frozen=True)
class Shape:
    """The hyper-parameters the KV cache depends on (0 where the header does not say)."""

    n_layer: int = 0
    n_embd: int = 0
    n_head: int = 0
    n_head_kv: int = 0
    n_ctx_train: int = 0

    def kv_bytes_per_token(self) -> int:
        if not (self.n_layer and self.n_embd):
            return 0
        return kv_bytes_per_token(
            self.n_layer, self.n_embd, self.n_head or 1, self.n_head_kv or self.n_head or 1
        )


def _read(f: BinaryIO, fmt: str) -> object:
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise EOFError
    return struct.unpack(fmt, data)[0]


def _string(f: BinaryIO) -> str:
    n = _read(f, "<Q")
    assert isinstance(n, int)
    if n > _MAX_STRING:
        raise ValueError("a header string is too long")
    return f.read(n).decode("utf-8", "replace")


def _skip_array(f: BinaryIO) -> None:
    kind = _read(f, "<I")
    n = _read(f, "<Q")
    assert isinstance(n, int)
    if n > _MAX_SHORT_ARRAY:
        raise ValueError("a long array before the hyper-parameters")
    for _ in range(n):
        if kind == _STRING:
            _string(f)
        elif kind in _SCALARS:
            _read(f, _SCALARS[kind])  # type: ignore[index]
        else:
            raise ValueError("a nested array")


def read_shape(path: str | os.PathLike[str]) -> Shape:
    """The KV-relevant hyper-parameters in ``path``'s GGUF header (zeros if unreadable)."""
    values: dict[str, object] = {}
    try:
        with open(path, "rb") as f:
            if magic_format(f.read(4)) != "gguf":
                return Shape()
            _read(f, "<I")  # version
            _read(f, "<Q")  # tensors
            n_keys = _read(f, "<Q")
            assert isinstance(n_keys, int)
            for _ in range(min(n_keys, MAX_KEYS)):
                key = _string(f)
                kind = _read(f, "<I")
                if kind == _STRING:
                    values[key] = _string(f)
                elif kind in _SCALARS:
                    values[key] = _read(f, _SCALARS[kind])  # type: ignore[index]
                elif kind == _ARRAY and not key.startswith("tokenizer."):
                    _skip_array(f)  # a short list (general.languages, ...)
                else:  # the vocabulary (or garbage): the hyper-parameters came first
                    break
    except (OSError, EOFError, ValueError, struct.error):
        pass
    arch = values.get("general.architecture")
    if not isinstance(arch, str):
        return Shape()

    def number(key: str) -> int:
        value = values.get(f"{arch}.{key}")
        return int(value) if isinstance(value, (int, float)) else 0

    return Shape(
        n_layer=number("block_count"),
        n_embd=number("embedding_length"),
        n_head=number("attention.head_count"),
        n_head_kv=number("attention.head_count_kv"),
        n_ctx_train=number("context_length"),
    )


def slot_context(shape: Shape, parallel: int, ctx_size: int | None) -> int:
    """Tokens per slot: ``ctx_size`` when given, else the default context for the whole KV
    budget split between the slots (as the server chooses it once loaded)."""
    if ctx_size is not None:
        return ctx_size
    return default_n_ctx(shape.n_ctx_train, shape.kv_bytes_per_token() * parallel)


def estimate(path: str | os.PathLike[str], parallel: int, ctx_size: int | None) -> int:
    """Bytes model ``path`` needs with ``parallel`` slots: file + KV cache + overhead."""
    shape = read_shape(path)
    kv = shape.kv_bytes_per_token() * slot_context(shape, parallel, ctx_size) * parallel
    return os.path.getsize(path) + kv + OVERHEAD
