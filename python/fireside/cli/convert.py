"""``fireside convert``: a Hugging Face model directory to a GGUF file, without torch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

_TYPES = ("f16", "f32", "q8_0")


def convert(
    directory: Annotated[
        Path,
        typer.Argument(
            metavar="DIR",
            help="A Hugging Face model directory (config.json, *.safetensors, tokenizer.json).",
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="The GGUF to write (default: DIR/NAME-TYPE.gguf).",
        ),
    ] = None,
    out_type: Annotated[
        str,
        typer.Option("--type", "-t", metavar="f16|f32|q8_0", help="Type of the weight matrices."),
    ] = "f16",
) -> None:
    """Convert a BERT-family embedding model (MiniLM, BGE, E5 ...) to GGUF."""
    from fireside.errors import ConversionError
    from fireside.hub.convert import convert_model

    if out_type.lower() not in _TYPES:
        raise ConversionError(f"--type must be one of {', '.join(_TYPES)}, got {out_type!r}")
    path = convert_model(directory, output, out_type=out_type.lower(), progress=True)
    print(path)


def register(app: typer.Typer) -> None:
    app.command("convert")(convert)
