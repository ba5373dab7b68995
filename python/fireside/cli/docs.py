"""``fireside docs add | update | list | show | search | rm``: LocalDocs collections."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fireside.cli.errors import CLIError

if TYPE_CHECKING:
    from fireside.docs.collection import Collection
    from fireside.docs.report import IndexProgress, IndexReport

docs_app = typer.Typer(
    name="docs",
    help="Index your documents and search them (LocalDocs).",
    no_args_is_help=True,
)

NameArgument = Annotated[str, typer.Argument(help="The collection's name.")]
EmbedderOption = Annotated[
    str | None,
    typer.Option(
        "--embedder",
        "-e",
        help="Embedding model (catalog name or .gguf path); default: the collection's own.",
    ),
]
ThreadsOption = Annotated[
    int | None, typer.Option("--threads", min=1, help="CPU threads for embedding.")
]


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _open(name: str, *, create: bool, **options: Any) -> Collection:
    from fireside.docs.collection import Collection

    # pypdf reports every repaired PDF object on the "pypdf" logger: a skip reason is enough
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    return Collection(name, create=create, **{k: v for k, v in options.items() if v is not None})


@contextmanager
def _progress_bar(verb: str) -> Iterator[Callable[[IndexProgress], None] | None]:
    """A progress bar on stderr when it is a terminal (logs get none)."""
    if not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(desc=verb, unit="file", file=sys.stderr, leave=False)

    def progress(event: IndexProgress) -> None:
        bar.total = event.total
        bar.n = event.done
        bar.set_postfix_str(event.path[-40:], refresh=False)
        bar.refresh()

    try:
        yield progress
    finally:
        bar.close()


def _print_report(report: IndexReport, as_json: bool, verbose: bool) -> None:
    if as_json:
        _print_json(report.to_dict())
        return
    print(report.summary())
    shown = report.skipped if verbose else report.skipped[:10]
    for item in shown:
        print(f"  skipped {item.path}: {item.reason}")
    if len(shown) < len(report.skipped):
        print(f"  ... and {len(report.skipped) - len(shown)} more (--all lists them)")


def add(
    name: NameArgument,
    paths: Annotated[
        list[str], typer.Argument(help="Folders (recursively), files or quoted glob patterns.")
    ],
    embedder: EmbedderOption = None,
    chunk_size: Annotated[
        int | None, typer.Option("--chunk-size", help="Characters per chunk (new collections).")
    ] = None,
    chunk_overlap: Annotated[
        int | None, typer.Option("--chunk-overlap", help="Characters shared by neighbours.")
    ] = None,
    threads: ThreadsOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    all_skipped: Annotated[bool, typer.Option("--all", help="List every skipped file.")] = False,
) -> None:
    """Add folders or files to a collection (created if new) and index them."""
    with (
        _open(
            name,
            create=True,
            embedder=embedder,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            n_threads=threads,
        ) as col,
        _progress_bar(f"indexing {name}") as progress,
    ):
        report = col.add(*paths, progress=progress)
    _print_report(report, as_json, all_skipped)


def update(
    name: NameArgument,
    embedder: EmbedderOption = None,
    threads: ThreadsOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    all_skipped: Annotated[bool, typer.Option("--all", help="List every skipped file.")] = False,
) -> None:
    """Re-scan a collection: index new and changed files, drop deleted ones."""
    with (
        _open(name, create=False, embedder=embedder, n_threads=threads) as col,
        _progress_bar(f"updating {name}") as progress,
    ):
        report = col.update(progress=progress)
    _print_report(report, as_json, all_skipped)


def list_(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the collections."""
    from fireside.docs.collection import list_collections

    infos = []
    for name in list_collections():
        with _open(name, create=False) as col:
            infos.append(col.info())
    if as_json:
        _print_json([{k: v for k, v in info.to_dict().items() if k != "skipped"} for info in infos])
        return
    if not infos:
        print("no collections (make one with `fireside docs add NAME PATH...`)")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("NAME", "DOCUMENTS", "CHUNKS", "EMBEDDER", "FOLDERS AND FILES"):
        table.add_column(column, overflow="fold")
    for info in infos:
        table.add_row(
            info.name, str(info.n_documents), str(info.n_chunks), info.embedder,
            ", ".join(info.roots),
        )  # fmt: skip
    Console(soft_wrap=False).print(table)


def show(
    name: NameArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a collection: settings, embedder, folders, documents and skipped files."""
    with _open(name, create=False) as col:
        info = col.info()
        documents = col.documents()
    if as_json:
        _print_json({**info.to_dict(), "documents": documents})
        return
    for key, value in (
        ("name", info.name),
        ("database", info.path),
        ("documents", info.n_documents),
        ("chunks", info.n_chunks),
        ("embedder", info.embedder),
        ("embedder sha256", info.embedder_sha256 or "-"),
        ("dimensions", info.vector_dim or "-"),
        ("chunk size", f"{info.chunk_size} characters, {info.chunk_overlap} overlap"),
    ):
        print(f"{key:16} {value}")
    for root in info.roots:
        print(f"{'added':16} {root}")
    for doc in documents:
        print(f"  {doc['path']}  ({doc['format']}, {doc['n_chunks']} chunks)")
    for path, reason in info.skipped:
        print(f"  skipped {path}: {reason}")


def search(
    name: NameArgument,
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", "--top", min=1, max=1000, help="Results.")] = 5,
    mode: Annotated[
        str, typer.Option("--mode", help="hybrid (default), vector or keyword.")
    ] = "hybrid",
    embedder: EmbedderOption = None,
    threads: ThreadsOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array of hits.")] = False,
) -> None:
    """Search a collection."""
    from fireside.docs.retrieval import MODES

    if mode not in MODES:
        raise CLIError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}", exit_code=2)
    with _open(name, create=False, embedder=embedder, n_threads=threads) as col:
        hits = col.search(query, k=k, mode=mode)
    if as_json:
        _print_json([hit.to_dict() for hit in hits])
        return
    if not hits:
        print("no results")
    for rank, hit in enumerate(hits, start=1):
        print(f"{rank}. {hit.source} ({hit.location}) score {hit.score:.4g} [{hit.retriever}]")
        excerpt = " ".join(hit.text.split())
        print(f"   {excerpt[:300]}{'...' if len(excerpt) > 300 else ''}")


def rm(name: NameArgument) -> None:
    """Delete a collection (the indexed copy only; your files are not touched)."""
    from fireside.docs.collection import Collection

    Collection.delete(name)
    print(f"removed collection {name}")


docs_app.command("add", no_args_is_help=True)(add)
docs_app.command("update", no_args_is_help=True)(update)
docs_app.command("list")(list_)
docs_app.command("show", no_args_is_help=True)(show)
docs_app.command("search", no_args_is_help=True)(search)
docs_app.command("rm", no_args_is_help=True)(rm)


def register(app: typer.Typer) -> None:
    app.add_typer(docs_app, name="docs")
