"""``fireside version`` and ``fireside devices``: what this installation can do."""

from __future__ import annotations

import typer

from fireside.cli.common import RpcOption


def _memory(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n else "-"


def version() -> None:
    """Show fireside's version and the llama.cpp it was built with."""
    import platform

    from fireside import __version__, _core

    print(f"fireside {__version__}")
    print(f"llama.cpp {_core.LLAMA_CPP_COMMIT}")
    print(f"python {platform.python_version()} ({platform.system()} {platform.machine()})")


def devices(rpc: RpcOption = None) -> None:
    """List the compute devices llama.cpp can use (with --rpc: those workers' too)."""
    from rich.console import Console
    from rich.table import Table

    from fireside import _core
    from fireside.rpc import connect, split_endpoints

    if rpc:
        connect(split_endpoints(rpc))
    found = _core.devices()
    table = Table(box=None, pad_edge=False)
    for column in ("NAME", "TYPE", "BACKEND", "DESCRIPTION", "FREE", "TOTAL"):
        table.add_column(column)
    for device in found:
        table.add_row(
            device.name,
            device.type,
            device.backend,
            device.description,
            _memory(device.memory_free),
            _memory(device.memory_total),
        )
    console = Console(soft_wrap=False)
    console.print(table)
    # llama.cpp counts a compiled-in RPC backend as "GPU offload": report what is really there.
    from fireside.placement import local_gpus

    gpus = local_gpus()  # where layers go by default, as Model decides
    offload = ", ".join(gpus) if gpus else "none (CPU only)"
    rpc = "yes" if _core.supports_rpc() else "no"
    console.print(f"\nGPU devices: {offload}; RPC backend compiled in: {rpc}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("version")(version)
    app.command("devices")(devices)
