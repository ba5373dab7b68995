"""``fireside ui [MODEL]``: ``fireside serve`` that also opens the chat page in a browser.

It takes exactly ``serve``'s options (the signature is built from ``serve``'s, so the two
never drift apart) plus ``--no-browser``. A watcher thread polls ``/health`` and opens the
page once the server answers, however long the model takes to download and load.
"""

from __future__ import annotations

import inspect
import sys
import threading
from collections.abc import Callable
from typing import Annotated, Any

import typer

from fireside.cli import serve as serve_command
from fireside.cli.listen import listen

POLL_SECONDS = 0.2


def page_url(host: str, port: int) -> str:
    """The address a browser on this machine uses for a server listening on ``host:port``."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"  # "every interface" includes loopback
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def _claim_port(host: str, port: int) -> int:
    """Check the port is free now (a clear error before the model loads); for port 0,
    choose a free one, since the browser must be told where to go."""
    sock = listen(host, port)
    try:
        return int(sock.getsockname()[1])
    finally:
        sock.close()


def open_when_ready(
    url: str,
    stop: threading.Event,
    *,
    opener: Callable[[str], bool] | None = None,
) -> bool:
    """Wait until ``url``'s server answers ``/health``, then open ``url`` with ``opener``
    (default: :func:`webbrowser.open`).

    Returns False without opening anything if ``stop`` is set first (the server failed or
    exited). When no browser can be started, says where the page is instead.
    """
    import urllib.error
    import urllib.request
    import webbrowser

    health = url + "health"
    while not stop.is_set():
        try:
            with urllib.request.urlopen(health, timeout=2) as response:
                if response.status == 200:
                    break
        except (urllib.error.URLError, OSError):
            pass  # not listening yet, or still loading the model
        stop.wait(POLL_SECONDS)
    else:
        return False
    print(f"fireside: opening {url}", file=sys.stderr, flush=True)
    if not (opener or webbrowser.open)(url):
        print(f"fireside: no browser found; open {url} yourself", file=sys.stderr, flush=True)
    return True


def ui(**options: Any) -> None:
    """Serve a model and open the chat page in your browser."""
    no_browser = options.pop("no_browser")
    options["port"] = _claim_port(options["host"], options["port"])
    stop = threading.Event()
    if not no_browser:
        url = page_url(options["host"], options["port"])
        watcher = threading.Thread(
            target=open_when_ready, args=(url, stop), name="fireside-ui-browser", daemon=True
        )
        watcher.start()
    try:
        serve_command.serve(**options)
    finally:
        stop.set()  # the watcher gives up if the server never came up


def _ui_signature() -> inspect.Signature:
    serve_signature = inspect.signature(serve_command.serve, eval_str=True)
    no_browser = inspect.Parameter(
        "no_browser",
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        default=False,
        annotation=Annotated[
            bool, typer.Option("--no-browser", help="Only serve; do not open a browser.")
        ],
    )
    return serve_signature.replace(parameters=[*serve_signature.parameters.values(), no_browser])


_signature = _ui_signature()
ui.__signature__ = _signature  # type: ignore[attr-defined]
ui.__annotations__ = {name: p.annotation for name, p in _signature.parameters.items()}


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)
