"""``fireside pull | list | rm | show``: the models on this machine and in the catalog."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from fireside.cli.errors import CLIError


def _size(n: int | None) -> str:
    if not n:
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit in ("B", "KB") else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def pull(
    name: Annotated[
        str, typer.Argument(help="Catalog name, hf:owner/repo/file.gguf, owner/repo:QUANT or URL.")
    ],
    force: Annotated[bool, typer.Option("--force", help="Download again even if present.")] = False,
) -> None:
    """Download a model (verified by sha256) so it can be used offline."""
    from fireside.hub import pull as hub_pull

    path = hub_pull(name, progress=True, force=force)
    print(path)


def list_(
    kind: Annotated[
        str | None, typer.Option("--kind", help="Only 'chat' or 'embedding' models.")
    ] = None,
    downloaded: Annotated[
        bool, typer.Option("--downloaded", "-d", help="Only models on disk.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the catalog's models and the downloaded ones."""
    from fireside.hub import list_models

    rows = list_models(kind=kind, downloaded=True if downloaded else None)
    if as_json:
        _print_json([row.to_dict() for row in rows])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("NAME", "KIND", "SIZE", "ON DISK"):  # never wrapped: names are copied
        table.add_column(column, no_wrap=True)
    table.add_column("DESCRIPTION", overflow="fold", ratio=1)  # takes what width is left
    for row in rows:
        entry = row.entry
        size = entry.size if entry else (row.path.stat().st_size if row.path else None)
        table.add_row(
            row.name,
            row.kind or "-",
            _size(size),
            "yes" if row.downloaded else "",
            entry.description if entry else str(row.path or ""),
        )
    Console(soft_wrap=False).print(table)


def rm(name: str = typer.Argument(..., help="A downloaded model.")) -> None:
    """Delete a downloaded model."""
    from fireside.hub import remove

    for path in remove(name):
        print(f"removed {path}")


def show(
    name: Annotated[str, typer.Argument(help="Model name or path.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show what the catalog and the file say about a model."""
    from fireside.hub import show as hub_show

    details = hub_show(name)
    data = details.to_dict()
    if as_json:
        _print_json(data)
        return
    lines: list[tuple[str, Any]] = [("name", details.name)]
    entry = details.entry
    if entry is not None:
        lines += [
            ("description", entry.description),
            ("kind", entry.kind),
            ("parameters", f"{entry.parameters:,}"),
            ("quantization", entry.quantization),
            ("context", entry.context_length),
            ("size", _size(entry.size)),
            ("RAM", f"about {entry.ram_gb} GB"),
            ("license", entry.license),
            ("source", entry.hf_name),
        ]
    lines.append(("downloaded", "yes" if details.downloaded else "no"))
    if details.path is not None:
        lines.append(("path", details.path))
    if details.sha256:
        lines.append(("sha256", details.sha256))
    gguf = details.gguf
    if gguf is not None:
        lines += [
            ("architecture", gguf.architecture),
            ("trained context", gguf.context_length),
            ("layers", gguf.n_layer),
            ("vocabulary", f"{gguf.n_vocab} ({gguf.vocab_type})"),
            ("chat template", "yes" if gguf.has_chat_template else "no"),
        ]
    if not lines:
        raise CLIError(f"nothing is known about {name}")
    width = max(len(key) for key, _ in lines)
    for key, value in lines:
        if value is not None:
            print(f"{key:<{width}}  {value}")


def register(app: typer.Typer) -> None:
    app.command("pull", no_args_is_help=True)(pull)
    app.command("list")(list_)
    app.command("rm", no_args_is_help=True)(rm)
    app.command("show", no_args_is_help=True)(show)
