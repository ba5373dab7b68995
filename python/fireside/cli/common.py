"""What several commands share: loading a model with a progress bar, writing text."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fireside.cli.errors import CLIError

if TYPE_CHECKING:
    from fireside.model import Model


RpcOption = Annotated[
    str | None,
    typer.Option(
        "--rpc",
        metavar="HOST:PORT,...",
        help="ggml RPC workers to spread the model's layers across (see `fireside rpc-server`).",
    ),
]


def model_name(name: str | None) -> str:
    """``name``, or the catalog's default model when none was given."""
    if name:
        return name
    from fireside.hub import default_model

    return default_model()


def _load_bar(label: str) -> Callable[[float], None] | None:
    """A progress bar for loading the weights (only on a terminal: it would litter logs)."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    bar = tqdm(
        total=100, desc=f"loading {label}", file=sys.stderr, leave=False, bar_format="{l_bar}{bar}"
    )

    def progress(fraction: float) -> None:
        bar.n = int(fraction * 100)
        bar.refresh()
        if fraction >= 1.0:
            bar.close()

    return progress


def load_model(name: str | None, **options: Any) -> Model:
    """Load ``name`` (default model when ``None``), downloading it if needed."""
    from fireside.model import Model

    name = model_name(name)
    label = os.path.basename(name)
    progress = _load_bar(label)
    return Model(name, progress=progress, **options)


def read_text_file(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise CLIError(f"{what}: cannot read {path}: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise CLIError(f"{what}: {path} is not UTF-8 text") from e


def writer() -> Callable[[str], None]:
    """Write text to stdout at once (characters the terminal cannot show become '?')."""
    out = sys.stdout
    try:
        out.reconfigure(errors="replace")  # type: ignore[union-attr]
    except (AttributeError, ValueError):
        pass

    def write(text: str) -> None:
        out.write(text)
        out.flush()

    return write
