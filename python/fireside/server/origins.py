"""Who may use the server: its own Host names, its own page's Origin, and JSON bodies only.

A server on loopback is reachable by every web page the user opens. Without checks, a page
on any site can POST a ``text/plain`` "simple request" (no CORS preflight) and make the
model generate, and a page whose name is rebound to 127.0.0.1 (DNS rebinding) can even read
the answers, since the browser then thinks the server is that page's own. So every request
passes these checks, in this order, before anything else reads it:

1. **Host** must name this server: a loopback name (``localhost``, ``*.localhost``) or
   address (``127.0.0.0/8``, ``[::1]``), ``0.0.0.0`` and ``[::]`` (browsers that allow them
   reach this machine), the address the connection arrived at (so a server bound to an
   interface, or to every interface, answers to its IP addresses), this machine's host name, or an entry of ``allowed_hosts`` (``"mybox.lan"``; ``".example.org"``
   for it and its subdomains; ``"*"`` turns the check off, e.g. behind a reverse proxy that
   checks names itself). The port is not compared. A request without Host (HTTP/1.0) is no
   browser's and passes. This check does not depend on the API key: the chat page and
   ``/health`` need none.
2. **Origin**, which browsers send on cross-site requests and on their own non-GET ones,
   must be the server's own page (same scheme, host and port as the Host it was sent to)
   or an entry of ``allowed_origins`` (``"http://localhost:3000"``, ``"http://localhost:*"``
   for any port, ``"null"`` for sandboxed and ``file:`` pages, ``"*"`` for any). Requests
   without Origin (``curl``, the ``openai`` client, any program) pass. Only allowed origins
   get CORS headers, and only their preflight ``OPTIONS`` requests are answered.
3. **Content-Type** of a request with a body (``POST``, ``PUT``, ``PATCH``) must be
   ``application/json``: every endpoint that takes a body takes JSON, and the content types
   a page may send without a preflight are not JSON.

A refused request gets OpenAI's error shape: 403 naming the Host or Origin, or 415 naming
the content type.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fireside.netaddr import is_loopback
from fireside.server.errors import APIError

_NAME = r"[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?\.?"
_HOST = re.compile(rf"(?:\[(?P<v6>[0-9a-f:.]+)\]|(?P<name>{_NAME}))(?::(?P<port>[0-9]{{1,5}}))?")
_ORIGIN = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<rest>[^/?#@\s]+)/?")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_PAGE_SCHEMES = {"ws": "http", "wss": "https"}  # a WebSocket's page has the HTTP scheme
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_TOKEN_LIST = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+(?:\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*")
ALLOW_METHODS = "GET, POST, DELETE, OPTIONS"  # DELETE: Ollama's /api/delete
PREFLIGHT_MAX_AGE = 600


@dataclass(frozen=True)
class HostPort:
    """A parsed ``Host`` value or origin authority: a lowercase host without brackets or
    trailing dot, and the port when one was given."""

    host: str
    port: int | None


def parse_host(value: str) -> HostPort:
    """``"Example.ORG:8080"`` -> ``HostPort("example.org", 8080)``, ``"[::1]"`` -> ``::1``.

    Raises ValueError unless ``value`` is a host name, an IPv4 address or a bracketed IPv6
    address, with an optional port.
    """
    match = _HOST.fullmatch(value.strip().lower())
    if match is None:
        raise ValueError(f"{value!r} is not a host name or address")
    port = int(match["port"]) if match["port"] else None
    if port is not None and port > 65535:
        raise ValueError(f"{value!r} has a port out of range")
    if match["v6"] is not None:
        try:
            host = ipaddress.IPv6Address(match["v6"]).compressed
        except ValueError:
            raise ValueError(f"{value!r} is not a valid IPv6 address") from None
    else:
        host = match["name"].removesuffix(".")
    return HostPort(host, port)


def normalize_allowed_host(entry: str) -> str:
    """One ``allowed_hosts`` entry in canonical form: ``"*"``, a lowercase name or address
    (IPv6 without brackets), or ``".domain"`` for a domain and its subdomains.

    Raises ValueError naming the entry when it is none of these (a URL, a port, spaces).
    """
    if not isinstance(entry, str):
        raise TypeError(f"allowed hosts must be strings, got {entry!r}")
    text = entry.strip().lower()
    if text == "*":
        return text
    try:
        return ipaddress.IPv6Address(text.removeprefix("[").removesuffix("]")).compressed
    except ValueError:
        pass
    wildcard = text.startswith(".")
    try:
        parsed = parse_host(text[1:] if wildcard else text)
    except ValueError:
        parsed = None
    if parsed is None or parsed.port is not None or not parsed.host:
        raise ValueError(
            f"allowed host {entry!r} is not a host name or address: give names like "
            "'mybox.lan' or '.example.org' (it and its subdomains), without scheme or port"
        )
    return "." + parsed.host if wildcard else parsed.host


@dataclass(frozen=True)
class Origin:
    """A parsed origin: scheme, host and port, the port ``None`` when it is the scheme's
    default (or ``"*"`` in an ``allowed_origins`` entry: any port)."""

    scheme: str
    host: str
    port: int | str | None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}" + ("" if self.port is None else f":{self.port}")


def parse_origin(value: str, *, any_port: bool = False) -> Origin:
    """``"HTTP://LocalHost:80"`` -> ``http://localhost``. ``any_port`` accepts ``:*``.

    Raises ValueError unless ``value`` is ``scheme://host[:port]`` (an optional final ``/``).
    """
    match = _ORIGIN.fullmatch(value.strip().lower())
    if match is None:
        raise ValueError(f"{value!r} is not an origin (scheme://host[:port])")
    scheme, rest = match["scheme"], match["rest"]
    wildcard = any_port and rest.endswith(":*")
    where = parse_host(rest[:-2] if wildcard else rest)
    if not where.host:
        raise ValueError(f"{value!r} has no host")
    port: int | str | None = "*" if wildcard else where.port
    if port is not None and port == _DEFAULT_PORTS.get(scheme):
        port = None
    return Origin(scheme, where.host, port)


def normalize_allowed_origin(entry: str) -> str:
    """One ``allowed_origins`` entry in canonical form: ``"*"``, ``"null"``, or
    ``scheme://host[:port]`` (lowercase, no default port; ``:*`` for any port).

    Raises ValueError naming the entry when it is not an origin (a path, a bare name).
    """
    if not isinstance(entry, str):
        raise TypeError(f"allowed origins must be strings, got {entry!r}")
    text = entry.strip().lower()
    if text in ("*", "null"):
        return text
    try:
        return str(parse_origin(text, any_port=True))
    except ValueError:
        raise ValueError(
            f"allowed origin {entry!r} is not an origin: give scheme://host[:port] like "
            "'http://localhost:3000' (':*' for any port), 'null' or '*'"
        ) from None


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``text`` as an IP address (an IPv4-mapped IPv6 address as its IPv4 one), or None."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class OriginPolicy:
    """ASGI middleware enforcing this module's Host, Origin and Content-Type rules.

    Args:
        app: the application behind it.
        allowed_hosts: more Host names to answer to (canonical entries, see
            :func:`normalize_allowed_host`).
        allowed_origins: web origins that may call the server besides its own page
            (canonical entries, see :func:`normalize_allowed_origin`).
        on_error: called with the HTTP status of each refused request (for metrics).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed_hosts: Iterable[str] = (),
        allowed_origins: Iterable[str] = (),
        on_error: Callable[[int], None] | None = None,
    ) -> None:
        self.app = app
        hosts = {normalize_allowed_host(h) for h in allowed_hosts}
        self.any_host = "*" in hosts
        self.domains = tuple(h for h in hosts if h.startswith("."))
        self.hosts = {h for h in hosts if not h.startswith(".")}
        self.hosts.add(socket.gethostname().lower())
        origins = {normalize_allowed_origin(o) for o in allowed_origins}
        self.any_origin = "*" in origins
        self.origins = {o for o in origins if not o.endswith(":*")}
        self.origin_any_port = {o.removesuffix(":*") for o in origins if o.endswith(":*")}
        self.on_error = on_error

    # -- the rules --------------------------------------------------------------------------

    def host_allowed(self, host: str, local_address: str | None) -> bool:
        """Whether ``host`` (a parsed Host) names this server, for a connection that
        arrived at ``local_address``."""
        if self.any_host or is_loopback(host) or host.endswith(".localhost"):
            return True
        address = _ip(host)
        if address is not None:
            local = _ip(local_address) if local_address else None
            if address.is_loopback or address.is_unspecified or address == local:
                return True
            return address.compressed in self.hosts
        return host in self.hosts or any(
            host.endswith(domain) or host == domain[1:] for domain in self.domains
        )

    def origin_allowed(self, origin: str) -> bool:
        """Whether ``origin`` is in ``allowed_origins`` (the server's own page aside)."""
        if self.any_origin:
            return True
        if origin.strip().lower() == "null":
            return "null" in self.origins
        try:
            parsed = parse_origin(origin)
        except ValueError:
            return False
        return str(parsed) in self.origins or (
            str(Origin(parsed.scheme, parsed.host, None)) in self.origin_any_port
        )

    @staticmethod
    def is_own_origin(origin: str, host: HostPort | None, scheme: str) -> bool:
        """Whether ``origin`` is the page this request's Host and scheme name."""
        if host is None:
            return False
        try:
            parsed = parse_origin(origin)
        except ValueError:
            return False
        port = None if host.port == _DEFAULT_PORTS.get(scheme) else host.port
        return (parsed.scheme, parsed.host, parsed.port) == (scheme, host.host, port)

    def check(self, scope: Scope) -> tuple[APIError | None, str | None]:
        """The error refusing this request (or None) and the origin that gets CORS
        headers (or None)."""
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            key, text = name.decode("latin-1").lower(), value.decode("latin-1")
            if key in headers and key in ("host", "origin"):  # which one would count?
                error = _host_error if key == "host" else _origin_error
                return error(f"{headers[key]}, {text}"), None
            headers[key] = text
        raw_host = headers.get("host")
        host: HostPort | None = None
        if raw_host is not None:
            server = scope.get("server")
            local = server[0] if isinstance(server, (tuple, list)) and server else None
            try:
                host = parse_host(raw_host)
            except ValueError:
                pass
            if host is None or not self.host_allowed(host.host, local):
                return _host_error(raw_host), None
        origin = headers.get("origin")
        cors = None
        if origin is not None:
            scheme = str(scope.get("scheme") or "http")
            if self.origin_allowed(origin):
                cors = origin
            elif not self.is_own_origin(origin, host, _PAGE_SCHEMES.get(scheme, scheme)):
                return _origin_error(origin), None
        if scope["type"] == "http" and scope["method"] in _BODY_METHODS:
            kind = headers.get("content-type")
            if kind is None or kind.split(";", 1)[0].strip().lower() != "application/json":
                return _content_type_error(kind), cors
        return None, cors

    # -- ASGI -------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        error, cors = self.check(scope)
        if error is not None:
            if self.on_error is not None:
                self.on_error(error.status)
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": error.message})
            else:
                await error.response()(scope, receive, send)
            return
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            requested = _header(scope, b"access-control-request-method")
            if requested is not None and _header(scope, b"origin") is not None:
                await self._preflight(scope, receive, send, cors)
                return
        if cors is None:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", ()), *_cors_headers(cors)]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(
        self, scope: Scope, receive: Receive, send: Send, cors: str | None
    ) -> None:
        """Answer a CORS preflight of an allowed (or the server's own) origin."""
        origin = cors or _header(scope, b"origin") or ""
        headers = dict(_cors_headers(origin))
        headers[b"access-control-allow-methods"] = ALLOW_METHODS.encode()
        asked = _header(scope, b"access-control-request-headers")
        if asked and _TOKEN_LIST.fullmatch(asked.strip()):
            headers[b"access-control-allow-headers"] = asked.strip().encode("latin-1")
        else:
            headers[b"access-control-allow-headers"] = b"Authorization, Content-Type"
        headers[b"access-control-max-age"] = str(PREFLIGHT_MAX_AGE).encode()
        headers[b"vary"] = b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
        await send({"type": "http.response.start", "status": 204, "headers": list(headers.items())})
        await send({"type": "http.response.body", "body": b""})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _cors_headers(origin: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"vary", b"Origin"),
    ]


def _host_error(value: str) -> APIError:
    return APIError(
        403,
        f"The Host header {value!r} does not name this server, so the request was refused "
        "(a web page may be reaching this server under its own name: DNS rebinding). To "
        "serve under this name, allow it with --allowed-hosts (ServerConfig.allowed_hosts).",
        code="host_not_allowed",
    )


def _origin_error(value: str) -> APIError:
    return APIError(
        403,
        f"Requests from the web page at {value!r} are not allowed: this server answers only "
        "its own chat page and the origins given with --allowed-origins "
        "(ServerConfig.allowed_origins).",
        code="origin_not_allowed",
    )


def _content_type_error(value: str | None) -> APIError:
    got = "no Content-Type" if value is None else f"Content-Type {value!r}"
    return APIError(
        415,
        f"The request body must be JSON sent with 'Content-Type: application/json' "
        f"(this request has {got}).",
        code="unsupported_media_type",
    )
