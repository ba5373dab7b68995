"""``fireside rpc-server``: lend this machine's CPU to models run elsewhere (ggml RPC)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from fireside.rpc import DEFAULT_PORT


def rpc_server(
    host: Annotated[
        str,
        typer.Option(
            "--host", help="Address to listen on (anything but loopback is unauthenticated!)."
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", "-p", min=1, max=65535, help="Port to listen on.")
    ] = DEFAULT_PORT,
    mem: Annotated[
        int | None,
        typer.Option(
            "--mem",
            "-m",
            min=1,
            metavar="MB",
            help="Memory to offer clients, in MiB (they split layers by it; default: the free RAM).",
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option("--threads", "-t", min=1, help="CPU threads (default: the physical cores)."),
    ] = None,
    cache: Annotated[
        str | None,
        typer.Option(
            "--cache",
            metavar="DIR",
            help="Keep large tensors here so clients need not send them again.",
        ),
    ] = None,
) -> None:
    """Run a ggml RPC worker: clients started with --rpc HOST:PORT put model layers here."""
    from fireside.rpc import serve

    print(
        f"fireside: RPC worker on {host}:{port}; Ctrl-C to stop",
        file=sys.stderr,
        flush=True,
    )
    serve(host, port, threads=threads, mem_mb=mem, cache_dir=cache)
    print("fireside: RPC worker stopped", file=sys.stderr, flush=True)


def register(app: typer.Typer) -> None:
    app.command("rpc-server")(rpc_server)
