"""The GGUF magic is known in one place (``hub.formats``): the hub's local-file check and
the server's header reader (``server.model_memory``) tell files apart through it."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from fireside.errors import ModelLoadError
from fireside.hub.formats import GGUF_MAGIC, file_format, magic_format
from fireside.hub.resolve import check_local
from fireside.server.model_memory import Shape, read_shape


def test_the_magics() -> None:
    assert magic_format(GGUF_MAGIC + b"\3\0\0\0") == "gguf"
    for ggml in (0x67676D6C, 0x67676D66, 0x67676A74, 0x67676C61):  # ggml ggmf ggjt ggla
        assert magic_format(struct.pack("<I", ggml)) == "ggml"
    assert magic_format(b"<htm") == magic_format(b"GG") == magic_format(b"") == "unknown"


def test_the_header_reader_and_the_local_check_agree(tmp_path: Path, model_path: Path) -> None:
    assert file_format(model_path) == "gguf" and check_local(model_path) == model_path
    assert read_shape(model_path).n_layer == 30  # SmolLM2-135M
    for name, head in (("old.bin", struct.pack("<I", 0x67676A74)), ("page.gguf", b"<html>")):
        path = tmp_path / name
        path.write_bytes(head + bytes(64))
        assert read_shape(path) == Shape()
        with pytest.raises(ModelLoadError):
            check_local(path)
