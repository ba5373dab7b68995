"""``fireside bench``: measure fireside against llama.cpp's own tools on this machine."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from fireside.cli.errors import CLIError


def bench(
    quick: bool = typer.Option(
        False, "--quick", help="A short smoke run: small sizes, one measured run."
    ),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Model name or .gguf path (default: the test model)."
    ),
    threads: int | None = typer.Option(
        None, "--threads", min=1, help="CPU threads (default: the physical cores)."
    ),
    out: str | None = typer.Option(
        None, "--out", help="Output directory (default: benchmarks/results/<time>)."
    ),
    runs: int | None = typer.Option(
        None, "--runs", min=1, help="Measured runs per figure (default 5, --quick 1)."
    ),
    reference_dir: str | None = typer.Option(
        None,
        "--reference-dir",
        help="Where llama-bench, llama-completion, llama-batched-bench are "
        "(default: build/reference/bin, or FIRESIDE_REFERENCE_BIN).",
    ),
    no_reference: bool = typer.Option(
        False, "--no-reference", help="Measure fireside only, even if the tools are built."
    ),
    sections: str | None = typer.Option(
        None,
        "--sections",
        help="Comma-separated subset of import,load,decode,generate,chat,server (the "
        "default); busy and docs.index,docs.search,docs.update only when named.",
    ),
    embedder: str | None = typer.Option(
        None,
        "--embedder",
        help="Embedding model of the docs.* sections (default: all-MiniLM-L6-v2).",
    ),
    pool: Annotated[
        list[str] | None,
        typer.Option(
            "--pool",
            metavar="BENCH_JSON",
            help="Measure nothing: pool the rounds of earlier runs into one report "
            "(repeat: --pool a/bench.json --pool b/bench.json).",
        ),
    ] = None,
) -> None:
    """Benchmark fireside against llama.cpp's own tools (same model and threads).

    Writes bench.json, bench.md and, with matplotlib, concurrency.png. Build the
    reference tools first with `python benchmarks/build_reference.py`.
    """
    from fireside.bench import pool_runs, run
    from fireside.bench.__main__ import summary

    try:
        if pool:
            results, paths = pool_runs(pool, out=out)
        else:
            results, paths = run(
                model=model,
                threads=threads,
                out=out,
                quick=quick,
                runs=runs,
                reference_dir=reference_dir,
                use_reference=not no_reference,
                sections=sections.split(",") if sections else None,
                embedder=embedder,
                progress=lambda message: print(message, file=sys.stderr, flush=True),
            )
    except (ValueError, FileNotFoundError) as e:
        raise CLIError(str(e), exit_code=2) from e
    print(summary(results))
    for kind, path in paths.items():
        print(f"{kind}: {path}")


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
