"""The ``fireside`` command line: run, chat, serve, models and machine info.

Only :mod:`typer` is imported to build the command tree; each command imports what it
needs when it runs, so ``fireside --help`` answers at once.
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``fireside`` script."""
    from fireside.cli.app import run_cli

    run_cli(argv)


__all__ = ["main"]
