"""The command tree and the one place where failures become a line on stderr."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import typer

from fireside.cli import bench, chat, convert, docs, info, models, ps, rpc_server, run, serve, ui
from fireside.cli.errors import describe
from fireside.cli.settings import settings

app = typer.Typer(
    name="fireside",
    help="Run open large language models locally.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root = logging.getLogger("fireside")
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    # llama.cpp's own messages only when asked: a failure is reported once, by fireside
    logging.getLogger("fireside.llama").setLevel(logging.INFO if verbose else logging.CRITICAL + 1)
    if verbose:
        from fireside import _core

        _core.set_log_level(logging.INFO)


@app.callback()
def _root(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Show llama.cpp's log and full tracebacks."
    ),
    offline: bool = typer.Option(False, "--offline", help="Never download anything."),
) -> None:
    """Run open large language models locally."""
    settings.verbose = verbose
    _setup_logging(verbose)
    if offline:
        from fireside.hub import set_offline

        set_offline(True)


run.register(app)
chat.register(app)
serve.register(app)
ps.register(app)
ui.register(app)
models.register(app)
info.register(app)
rpc_server.register(app)
bench.register(app)
docs.register(app)
convert.register(app)


def run_cli(argv: Sequence[str] | None = None) -> None:
    """Run the command line; exit with its status. Errors are one line on stderr
    (``--verbose``: with the traceback)."""
    try:
        app(args=list(argv) if argv is not None else None, prog_name="fireside")
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print(file=sys.stderr)
        sys.exit(130)
    except BaseException as error:  # noqa: BLE001 - the last resort: one line, no traceback
        if settings.verbose:
            import traceback

            traceback.print_exception(error)
        message = describe(error).replace("\n", " ")
        print(f"error: {message}", file=sys.stderr)
        sys.exit(getattr(error, "exit_code", 1))
