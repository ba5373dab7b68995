"""The Host/Origin/Content-Type policy for connections a loopback test server cannot
receive: a server bound to a LAN interface, to every interface (IPv4-mapped addresses), to
IPv6, or to a Unix socket; and the canonical forms of ``allowed_hosts``/``allowed_origins``.
(``test_security.py`` runs the same rules on a real server.)"""

from __future__ import annotations

from typing import Any

import pytest
from fireside.server import ServerConfig
from fireside.server.origins import OriginPolicy


async def _app(scope: Any, receive: Any, send: Any) -> None:  # never called by check()
    raise AssertionError


def scope(
    host: str | None,
    *,
    local: str | None = "127.0.0.1",
    origin: str | None = None,
    method: str = "GET",
    content_type: str | None = None,
    kind: str = "http",
    scheme: str = "http",
) -> dict[str, Any]:
    headers = []
    for name, value in (("host", host), ("origin", origin), ("content-type", content_type)):
        if value is not None:
            headers.append((name.encode(), value.encode()))
    return {
        "type": kind,
        "scheme": scheme,
        "method": method,
        "headers": headers,
        "server": None if local is None else (local, 8080),
    }


def refusal(policy: OriginPolicy, request: dict[str, Any]) -> str | None:
    """The code of the error refusing ``request``, or None."""
    error, _ = policy.check(request)
    return None if error is None else error.code


DEFAULT = OriginPolicy(_app)


@pytest.mark.parametrize(
    ("local", "host", "code"),
    [
        ("192.168.7.5", "192.168.7.5:8080", None),  # bound to the interface, or to every one
        ("192.168.7.5", "192.168.7.5", None),
        ("192.168.7.5", "localhost:8080", None),
        ("192.168.7.5", "192.168.7.6:8080", "host_not_allowed"),
        ("192.168.7.5", "mybox.lan:8080", "host_not_allowed"),  # names need --allowed-hosts
        ("::ffff:192.168.7.5", "192.168.7.5:8080", None),  # "::" bound, dual-stack
        ("fd00::5", "[fd00:0::5]:8080", None),
        ("fd00::5", "[fd00::6]:8080", "host_not_allowed"),
        ("fe80::1%eth0", "[fe80::1]:8080", None),
        (None, "localhost", None),  # a Unix socket: no local address
        (None, "192.168.7.5", "host_not_allowed"),
        (None, None, None),  # no Host at all: HTTP/1.0, no browser
    ],
)
def test_the_address_a_connection_arrived_at_names_the_server(
    local: str | None, host: str | None, code: str | None
) -> None:
    assert refusal(DEFAULT, scope(host, local=local)) == code


def test_the_own_page_of_a_lan_address_is_its_origin() -> None:
    lan = {"local": "192.168.7.5", "method": "POST", "content_type": "application/json"}
    own = scope("192.168.7.5:8080", origin="http://192.168.7.5:8080", **lan)
    assert refusal(DEFAULT, own) is None
    other_port = scope("192.168.7.5:8080", origin="http://192.168.7.5:8081", **lan)
    assert refusal(DEFAULT, other_port) == "origin_not_allowed"
    default_port = scope("192.168.7.5:80", origin="http://192.168.7.5", **lan)
    assert refusal(DEFAULT, default_port) is None
    tls = scope("box.test:443", origin="https://box.test", scheme="https", **lan)
    assert refusal(OriginPolicy(_app, allowed_hosts=["box.test"]), tls) is None


def test_allowed_host_entries() -> None:
    policy = OriginPolicy(_app, allowed_hosts=[".example.org", "10.0.0.9", "[FD00::9]", "Box"])
    for host in ("example.org", "a.b.example.org:1", "10.0.0.9", "[fd00:0::9]", "BOX:80"):
        assert refusal(policy, scope(host)) is None, host
    for host in ("badexample.org", "example.org.evil", "10.0.0.8", "box.evil"):
        assert refusal(policy, scope(host)) == "host_not_allowed", host
    anything = OriginPolicy(_app, allowed_hosts=["*"])
    assert refusal(anything, scope("evil.example")) is None


def test_allowed_origin_entries() -> None:
    policy = OriginPolicy(
        _app, allowed_origins=["http://localhost:*", "null", "HTTPS://Tools.Example:443/"]
    )

    def cors(origin: str) -> str | None:
        error, allowed = policy.check(scope("127.0.0.1:8080", origin=origin))
        assert error is None, origin
        return allowed

    assert cors("http://localhost:5173") == "http://localhost:5173"
    assert cors("http://localhost") == "http://localhost"
    assert cors("null") == "null"
    assert cors("https://tools.example") == "https://tools.example"
    assert cors("http://127.0.0.1:8080") is None  # its own page: no CORS needed
    for origin in ("https://localhost:5173", "http://tools.example", "http://localhost.evil"):
        assert refusal(policy, scope("127.0.0.1", origin=origin)) == "origin_not_allowed"
    anyone = OriginPolicy(_app, allowed_origins=["*"])
    assert anyone.check(scope("127.0.0.1", origin="http://evil.example"))[1] == (
        "http://evil.example"
    )


def test_a_websocket_page_is_checked_like_a_page() -> None:
    ws = {"kind": "websocket", "scheme": "ws", "method": "GET"}
    assert refusal(DEFAULT, scope("127.0.0.1:8080", origin="http://127.0.0.1:8080", **ws)) is None
    evil = scope("127.0.0.1:8080", origin="http://evil.example", **ws)
    assert refusal(DEFAULT, evil) == "origin_not_allowed"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_every_body_must_be_json(method: str) -> None:
    assert refusal(DEFAULT, scope("localhost", method=method)) == "unsupported_media_type"
    plain = scope("localhost", method=method, content_type="text/plain")
    assert refusal(DEFAULT, plain) == "unsupported_media_type"
    json = scope("localhost", method=method, content_type="Application/JSON; charset=utf-8")
    assert refusal(DEFAULT, json) is None
    assert refusal(DEFAULT, scope("localhost", method="GET")) is None


def test_the_config_keeps_canonical_entries_and_names_bad_ones() -> None:
    config = ServerConfig(
        allowed_hosts=["MyBox.lan.", "[::1]", ".Example.org", "mybox.lan"],
        allowed_origins=["HTTP://LocalHost:80/", "http://[::1]:3000", "http://x:*", "null"],
    )
    assert config.allowed_hosts == ("mybox.lan", "::1", ".example.org")
    assert config.allowed_origins == ("http://localhost", "http://[::1]:3000", "http://x:*", "null")
    for bad in ("http://mybox.lan", "mybox.lan:8080", "my box", "", "a/b"):
        with pytest.raises(ValueError, match="allowed host") as caught:
            ServerConfig(allowed_hosts=[bad])
        assert repr(bad) in str(caught.value)
    for bad in ("localhost:3000", "http://x/path", "http://", "ftp//x", "http://x:99999"):
        with pytest.raises(ValueError, match="allowed origin") as caught:
            ServerConfig(allowed_origins=[bad])
        assert repr(bad) in str(caught.value)
    with pytest.raises(TypeError, match="allowed_hosts must be a list"):
        ServerConfig(allowed_hosts="mybox.lan")  # type: ignore[arg-type]


def test_two_hosts_are_refused_even_where_the_http_layer_lets_them_through() -> None:
    request = scope("127.0.0.1")
    request["headers"].append((b"host", b"evil.example"))
    assert refusal(DEFAULT, request) == "host_not_allowed"
