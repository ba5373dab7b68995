"""``fireside ps`` and ``fireside stop MODEL``: the loaded models of a running server.

Both talk to ``fireside serve`` over its Ollama API (``GET /api/ps``; ``POST
/api/generate`` with ``keep_alive: 0`` and no prompt, Ollama's way to unload), so they
work against Ollama too.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

import typer

from fireside.cli.errors import CLIError

HostOption = Annotated[str, typer.Option("--host", help="Address of the running fireside serve.")]
PortOption = Annotated[int, typer.Option("--port", "-p", min=1, max=65535, help="Its port.")]
KeyOption = Annotated[
    str | None,
    typer.Option("--api-key", envvar="FIRESIDE_API_KEY", help="Its API key, if it has one."),
]


def _request(method: str, host: str, port: int, path: str, key: str | None, **kw: Any) -> Any:
    import httpx

    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}{path}"
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        reply = httpx.request(method, url, headers=headers, timeout=60, **kw)
    except httpx.TransportError as e:
        raise CLIError(
            f"no fireside server at {shown}:{port} ({e.__class__.__name__}); start one with "
            "`fireside serve` or give --host/--port"
        ) from e
    try:
        body = reply.json()
    except ValueError:
        body = None
    if reply.status_code != 200:
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            error = error.get("message")
        raise CLIError(f"the server answered {reply.status_code}: {error or reply.text[:200]}")
    return body


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}" if unit == "GB" else f"{n / scale:.0f} {unit}"
    return f"{n} B"


def _until(expires_at: str, now: datetime) -> str:
    when = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    if when.year >= 9999:
        return "Forever"
    seconds = (when - now).total_seconds()
    if seconds <= 1:
        return "Now"
    if seconds < 90:
        return f"{seconds:.0f} seconds from now"
    if seconds < 5400:
        return f"{seconds / 60:.0f} minutes from now"
    return f"{seconds / 3600:.0f} hours from now"


def ps(host: HostOption = "127.0.0.1", port: PortOption = 8080, api_key: KeyOption = None) -> None:
    """The models a running fireside serve has loaded: memory, requests, when unloaded."""
    body = _request("GET", host, port, "/api/ps", api_key)
    models = body.get("models", []) if isinstance(body, dict) else []
    now = datetime.now(timezone.utc)
    rows = [("NAME", "SIZE", "CONTEXT", "REQUESTS", "UNTIL")]
    for m in models:
        busy = m.get("in_flight")
        rows.append(
            (
                str(m.get("name", "")),
                _size(int(m.get("size", 0))),
                str(m.get("context_length", "")),
                "" if busy is None else str(busy),
                _until(str(m.get("expires_at", "9999-12-31T23:59:59Z")), now),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("    ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def stop(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="The model to unload.")],
    host: HostOption = "127.0.0.1",
    port: PortOption = 8080,
    api_key: KeyOption = None,
) -> None:
    """Unload MODEL from a running fireside serve (it loads again on its next request)."""
    body = {"model": model, "keep_alive": 0, "stream": False}
    _request("POST", host, port, "/api/generate", api_key, json=body)


def register(app: typer.Typer) -> None:
    app.command("ps")(ps)
    app.command("stop")(stop)
