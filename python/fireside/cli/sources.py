"""``--docs`` for ``fireside run`` and ``fireside chat``: the option, and the numbered
sources printed after a grounded answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from fireside.cli.errors import CLIError

if TYPE_CHECKING:
    from fireside.chat.grounding import Grounding, Reference

DocsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--docs",
        metavar="NAME[,NAME]",
        help="Answer from these LocalDocs collections (see `fireside docs`) and list the "
        "sources used.",
    ),
]
DocsKOption = Annotated[
    int | None,
    typer.Option("--docs-k", min=1, max=50, help="Excerpts per message with --docs (default 4)."),
]


def collection_names(values: Sequence[str] | None) -> list[str]:
    """The collection names of ``--docs`` options (each may list several, comma-separated)."""
    names = [part.strip() for value in values or () for part in value.split(",")]
    if values and not all(names):
        raise CLIError("--docs: empty collection name (use --docs NAME[,NAME])", exit_code=2)
    return list(dict.fromkeys(names))


def open_grounding(values: Sequence[str] | None, k: int | None) -> Grounding | None:
    """The collections named by ``--docs`` (``None`` without it); unknown names are a
    one-line error."""
    names = collection_names(values)
    if not names:
        if k is not None:
            raise CLIError("--docs-k needs --docs NAME", exit_code=2)
        return None
    from fireside.chat.grounding import DEFAULT_K, Grounding

    return Grounding(names, k=DEFAULT_K if k is None else k)


def format_sources(references: Sequence[Reference]) -> str:
    """The numbered sources of an answer, as printed after it::

        Sources:
          [1] rootless-builds.txt (lines 14-26) - /usr/share/doc/dpkg/spec/rootless-builds.txt

    An empty string without references.
    """
    if not references:
        return ""
    lines = ["Sources:"]
    lines.extend(f"  {ref.header()} - {ref.source}" for ref in references)
    return "\n".join(lines) + "\n"
