"""Web pages cannot use the server unless allowed: Host names (DNS rebinding), Origins,
JSON-only bodies, and OpenAI-shaped answers even to malformed HTTP. A real server on
loopback, run the way ``fireside serve`` runs it (``conftest.serve``: with
:func:`fireside.server.http11.uvicorn_config`)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fireside.server import create_app

from .conftest import LiveServer, chat_body, serve

API_KEY = "sk-security-test"
ALLOWED_ORIGIN = "http://tools.example:3000"
ALLOWED_HOST = "fireside.test"


@pytest.fixture(scope="module")
def live(model_path: Path) -> Iterator[LiveServer]:
    app = create_app(
        model_path,
        parallel=2,
        ctx_size=256,
        n_threads=1,
        api_key=API_KEY,
        allowed_hosts=[ALLOWED_HOST],
        allowed_origins=[ALLOWED_ORIGIN],
    )
    with serve(app, API_KEY) as server:
        yield server


def port_of(live: LiveServer) -> int:
    port = urlsplit(live.url).port
    assert port is not None
    return port


def send(
    live: LiveServer,
    method: str,
    path: str,
    *,
    body: Any = None,
    content_type: str | None = "application/json",
    auth: bool = True,
    **headers: str,
) -> httpx.Response:
    """One request with exactly these headers (``Host`` and ``Origin`` among them)."""
    sent = {name.replace("_", "-"): value for name, value in headers.items()}
    if auth:
        sent["Authorization"] = f"Bearer {API_KEY}"
    if content_type is not None:
        sent["Content-Type"] = content_type
    data = json.dumps(body).encode() if body is not None else None
    return httpx.request(method, live.url + path, content=data, headers=sent, timeout=120)


def error_of(response: httpx.Response, status: int, code: str) -> str:
    """The message of an OpenAI-shaped error answer with ``status`` and ``code``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["code"] == code
    return str(error["message"])


def no_cors(response: httpx.Response) -> None:
    assert not [h for h in response.headers if h.lower().startswith("access-control-")]


def generated(live: LiveServer) -> tuple[float, float]:
    """(chat requests routed, prompt tokens admitted): both stay put if nothing generated."""
    values = live.metrics()
    return (
        values.get('fireside_requests_total{endpoint="chat.completions"}', 0.0),
        values["fireside_prompt_tokens_total"],
    )


# -- JSON bodies only: a page's "simple request" cannot make the model generate -----------


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
     "multipart/form-data; boundary=x", None],
)  # fmt: skip
def test_a_body_that_is_not_json_is_415_and_generates_nothing(
    live: LiveServer, content_type: str | None
) -> None:
    before = generated(live)
    response = send(
        live, "POST", "/v1/chat/completions",
        body=chat_body(live, "Hi", max_tokens=4), content_type=content_type,
    )  # fmt: skip
    message = error_of(response, 415, "unsupported_media_type")
    assert "application/json" in message
    assert (content_type or "no Content-Type") in message
    assert generated(live) == before


def test_json_with_a_charset_is_json(live: LiveServer) -> None:
    response = send(
        live, "POST", "/v1/chat/completions", body=chat_body(live, "Hi", max_tokens=2),
        content_type="application/json; charset=utf-8",
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"]


# -- Host: DNS rebinding ---------------------------------------------------------------------


def test_a_page_rebound_to_loopback_is_403(live: LiveServer) -> None:
    """The page at http://evil.example:PORT whose name now resolves to 127.0.0.1: the
    browser sends its own name as Host and its own origin, so only Host can tell."""
    port = port_of(live)
    rebound = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    before = generated(live)
    refused = live.metrics().get('fireside_request_errors_total{status="403"}', 0.0)
    response = send(
        live, "POST", "/v1/chat/completions", body=chat_body(live, "Hi", max_tokens=4), **rebound
    )
    message = error_of(response, 403, "host_not_allowed")
    assert f"evil.example:{port}" in message and "--allowed-hosts" in message
    no_cors(response)
    assert generated(live) == before
    assert live.metrics()['fireside_request_errors_total{status="403"}'] == refused + 1
    for path in ("/", "/v1/models", "/health", "/static/app.js"):
        error_of(send(live, "GET", path, content_type=None, **rebound), 403, "host_not_allowed")


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:{port}", "127.0.0.1", "127.8.9.10:{port}", "localhost:{port}", "LocalHost",
     "localhost.:{port}", "[::1]:{port}", "[::1]", "[0:0:0:0:0:0:0:1]", "0.0.0.0:{port}", "[::]", "chat.localhost:{port}",
     "fireside.test:{port}", "FIRESIDE.TEST", socket.gethostname()],
)  # fmt: skip
def test_the_names_of_this_server_are_accepted(live: LiveServer, host: str) -> None:
    response = send(
        live, "GET", "/v1/models", content_type=None, Host=host.format(port=port_of(live))
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example:{port}",
     "localhost.evil.example", "sub.fireside.test", "fireside.test.evil.example", "10.1.2.3",
     "[::2]:{port}", "[::ffff:10.0.0.1]", "", "local host", "[::1",
     "127.0.0.1:99999", "user@127.0.0.1"],
)  # fmt: skip
def test_other_hosts_are_403(live: LiveServer, host: str) -> None:
    value = host.format(port=port_of(live))
    response = send(live, "GET", "/v1/models", content_type=None, Host=value)
    assert repr(value) in error_of(response, 403, "host_not_allowed")


def raw_exchange(live: LiveServer, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send ``request`` on a fresh socket; the status line, headers and body of the answer
    (read until the server closes the connection)."""
    port = port_of(live)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status, headers, body


def test_two_hosts_or_two_origins_are_refused(live: LiveServer) -> None:
    port = port_of(live)
    for name, value, status, code in (
        ("Host", "evil.example", 400, "invalid_http_request"),  # h11 refuses these itself
        ("Origin", f"http://127.0.0.1:{port}", 403, "origin_not_allowed"),
    ):
        line, _, body = raw_exchange(
            live,
            f"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}"
            f"\r\n{name}: {value}\r\nAuthorization: Bearer {API_KEY}\r\nConnection: close"
            "\r\n\r\n".encode(),
        )
        assert line.startswith(f"HTTP/1.1 {status}"), (line, body)
        assert json.loads(body)["error"]["code"] == code


def test_a_request_without_host_is_no_browser_and_passes(live: LiveServer) -> None:
    status, _, body = raw_exchange(
        live, f"GET /v1/models HTTP/1.0\r\nAuthorization: Bearer {API_KEY}\r\n\r\n".encode()
    )
    assert status.startswith("HTTP/1.1 200"), (status, body)
    assert json.loads(body)["data"][0]["id"] == live.model_id


# -- Origin ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    ["http://evil.example", "https://evil.example:{port}", "null", "http://127.0.0.1:1",
     "http://localhost:{port}", "https://127.0.0.1:{port}", "http://tools.example:3001",
     "https://tools.example:3000", "http://tools.example", "file://", "not an origin"],
)  # fmt: skip
def test_a_page_of_another_origin_is_403_without_cors_headers(
    live: LiveServer, origin: str
) -> None:
    origin = origin.format(port=port_of(live))
    before = generated(live)
    response = send(
        live,
        "POST",
        "/v1/chat/completions",
        body=chat_body(live, "Hi", max_tokens=4),
        Origin=origin,
    )
    message = error_of(response, 403, "origin_not_allowed")
    assert repr(origin) in message and "--allowed-origins" in message
    no_cors(response)
    assert generated(live) == before
    preflight = send(
        live, "OPTIONS", "/v1/chat/completions", content_type=None, auth=False, Origin=origin,
        Access_Control_Request_Method="POST", Access_Control_Request_Headers="content-type",
    )  # fmt: skip
    error_of(preflight, 403, "origin_not_allowed")
    no_cors(preflight)


def test_the_servers_own_page_is_its_origin(live: LiveServer) -> None:
    port = port_of(live)
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
        origin = f"http://{host}"
        response = send(
            live, "POST", "/v1/chat/completions", body=chat_body(live, "Hi", max_tokens=2),
            Host=host, Origin=origin.upper(),
        )  # fmt: skip
        assert response.status_code == 200, (host, response.text)
        no_cors(response)  # same-origin: nothing to allow


def test_an_allowed_origin_works_with_cors_headers(live: LiveServer) -> None:
    preflight = send(
        live, "OPTIONS", "/v1/chat/completions", content_type=None, auth=False,
        Origin=ALLOWED_ORIGIN, Access_Control_Request_Method="POST",
        Access_Control_Request_Headers="authorization, content-type, x-stainless-lang",
    )  # fmt: skip
    assert preflight.status_code == 204, preflight.text
    assert preflight.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "POST" in preflight.headers["access-control-allow-methods"]
    allowed_headers = preflight.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed_headers and "content-type" in allowed_headers
    assert "origin" in preflight.headers["vary"].lower()

    response = send(
        live, "POST", "/v1/chat/completions", body=chat_body(live, "Hi", max_tokens=2),
        Origin=ALLOWED_ORIGIN,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "origin" in response.headers["vary"].lower()
    assert response.json()["choices"][0]["message"]["content"]

    streamed = send(
        live, "POST", "/v1/chat/completions",
        body=chat_body(live, "Hi", max_tokens=2, stream=True), Origin=ALLOWED_ORIGIN,
    )  # fmt: skip
    assert streamed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert streamed.text.rstrip().endswith("data: [DONE]")

    # errors reach the page too (it can read why), but the API key still applies
    refused = send(live, "GET", "/v1/models", content_type=None, auth=False, Origin=ALLOWED_ORIGIN)
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == ALLOWED_ORIGIN


# -- the official client, and malformed HTTP -------------------------------------------------


def test_the_openai_client_keeps_working(live: LiveServer) -> None:
    client = live.client()
    assert [m.id for m in client.models.list()] == [live.model_id]
    reply = client.chat.completions.create(
        model=live.model_id, messages=[{"role": "user", "content": "Hi"}], max_tokens=3
    )
    assert reply.choices[0].message.content
    chunks = client.chat.completions.create(
        model=live.model_id,
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=3,
        stream=True,
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    embedded = client.embeddings.create(model=live.model_id, input=["a", "b"])
    assert len(embedded.data) == 2


@pytest.mark.parametrize(
    ("request_head", "words"),
    [
        ((b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
          b"Content-Type: application/json\r\nContent-Length: -1\r\n\r\n"), "Content-Length"),
        ((b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
          b"Content-Length: 12abc\r\n\r\n"), "Content-Length"),
        (b"GET /health HTTP/1.1\r\n\r\n", "Host"),
        (b"NOT AN HTTP REQUEST\r\n\r\n", "request line"),
    ],
)  # fmt: skip
def test_malformed_http_gets_an_openai_error(
    live: LiveServer, request_head: bytes, words: str
) -> None:
    status, headers, body = raw_exchange(live, request_head)
    assert status == "HTTP/1.1 400 Bad Request", (status, body)
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "invalid_http_request" and error["type"] == "invalid_request_error"
    assert words.lower() in error["message"].lower(), error["message"]


def test_a_request_head_over_the_limit_is_431_json(live: LiveServer) -> None:
    """h11 refuses a head still unfinished after its size limit (16 KiB)."""
    head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100_000
    status, _, body = raw_exchange(live, head)
    assert status == "HTTP/1.1 431 Request Header Fields Too Large", (status, body)
    assert json.loads(body)["error"]["code"] == "invalid_http_request"
