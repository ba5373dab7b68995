"""Hugging Face model directories to GGUF, without torch.

``convert_model(folder)`` turns a BERT-family checkpoint (``config.json`` with
``BertModel``, ``*.safetensors`` weights, a WordPiece ``tokenizer.json`` or ``vocab.txt``,
and optionally sentence-transformers' ``modules.json`` pooling) into a GGUF file that
llama.cpp loads as its ``bert`` architecture: all-MiniLM-L6-v2, BGE, E5 and the like.
Weights are read with the ``safetensors`` package's numpy API and written with the
``gguf`` package; ``out_type`` is ``"f16"`` (default), ``"f32"`` or ``"q8_0"``.

Every input is checked before anything is written (architecture, hyperparameters,
each tensor's name and shape against ``config.json``); a failure raises
:class:`~fireside.errors.ConversionError` naming what was wrong. The output appears
under its final name only once it is complete.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from fireside.errors import ConversionError

from ..progress import ProgressSpec
from . import bert
from .checkpoint import Weights, read_json
from .write import OUTPUT_TYPES, Loader, write_gguf

SUPPORTED_ARCHITECTURES = bert.ARCHITECTURES
"""The Hugging Face architectures :func:`convert_model` supports."""

__all__ = ["OUTPUT_TYPES", "SUPPORTED_ARCHITECTURES", "ConversionError", "convert_model"]


def _describe(config: dict[str, object]) -> str:
    architectures = config.get("architectures")
    if isinstance(architectures, list) and architectures:
        return ", ".join(str(a) for a in architectures)
    kind = config.get("model_type")
    return f"model_type {kind!r}" if kind is not None else "an unnamed architecture"


def default_output(folder: Path, name: str, out_type: str) -> Path:
    """Where :func:`convert_model` writes without ``output``: inside the model directory."""
    return folder / f"{name}-{out_type.upper()}.gguf"


def convert_model(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    out_type: str = "f16",
    name: str | None = None,
    progress: ProgressSpec = False,
) -> Path:
    """Convert the model directory ``source`` to GGUF; return the file written.

    ``output`` defaults to ``<source>/<model name>-<TYPE>.gguf``; an existing file there
    is replaced (atomically). ``name`` is the model's name in the file (default: the
    directory's name). ``progress`` as in :mod:`fireside.hub.progress` (counted in
    float32 bytes of weights converted).
    """
    if out_type not in OUTPUT_TYPES:
        raise ConversionError(
            f"unknown output type {out_type!r}; choose one of {', '.join(OUTPUT_TYPES)}"
        )
    folder = Path(source)
    if not folder.is_dir():
        if folder.is_file() and folder.suffix == ".gguf":
            raise ConversionError(f"{folder} is already a GGUF file")
        what = "not a directory" if folder.exists() else "no such directory"
        raise ConversionError(f"{folder}: {what} (give a Hugging Face model directory)")
    config = read_json(folder / "config.json")
    if not bert.is_bert(config):
        raise ConversionError(
            f"{folder}: {_describe(config)} is not supported; fireside converts "
            f"{', '.join(SUPPORTED_ARCHITECTURES)} models (the BERT family: MiniLM, BGE, E5 ...)"
        )
    weights = Weights(folder)
    planned = bert.plan(folder, config, weights, name=name)
    target = Path(output) if output is not None else default_output(folder, planned.name, out_type)
    if target.is_dir():
        raise ConversionError(f"{target} is a directory; give the output file's name")
    tensors: list[tuple[str, tuple[int, ...], Loader]] = [
        (tensor, weights.shape(src), functools.partial(weights.float32, src))
        for tensor, src in planned.tensors
    ]
    return write_gguf(
        target,
        arch="bert",
        out_type=out_type,
        add_metadata=planned.add_metadata,
        tensors=tensors,
        progress=progress,
    )
