"""``fireside serve --allowed-hosts/--allowed-origins``: the flags reach the server, bad
entries are one-line errors before anything loads, and the served HTTP layer answers even
malformed requests in OpenAI's shape."""

from __future__ import annotations

import json
import re
import select
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from .conftest import CLI

ORIGIN = "http://tools.example:3000"


def _read_line(stream, timeout: float) -> str:  # type: ignore[no-untyped-def]
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, "the server printed nothing"
    return stream.readline()


def test_serve_applies_the_flags(cli_env: dict[str, str], model_path: Path) -> None:
    cli_env["FIRESIDE_ALLOWED_HOSTS"] = "from-env.test"  # the flag wins over the variable
    process = subprocess.Popen(
        [*CLI, "serve", str(model_path), "--port", "0", "--parallel", "1", "--ctx-size", "256",
         "--threads", "1", "--allowed-hosts", "Fireside.Test, .lan.test",
         "--allowed-origins", ORIGIN],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        line = _read_line(process.stderr, 120)
        match = re.search(r"serving \S+ at (http://127\.0\.0\.1:(\d+))", line)
        assert match, line
        url, port = match[1], int(match[2])

        def status(**headers: str) -> int:
            return httpx.get(url + "/v1/models", headers=headers, timeout=30).status_code

        assert status() == 200
        assert status(Host=f"fireside.test:{port}") == 200
        assert status(Host="box.lan.test") == 200
        assert status(Host="from-env.test") == 403
        assert status(Host=f"evil.example:{port}") == 403
        assert status(Origin="http://evil.example") == 403
        preflight = httpx.options(
            url + "/v1/chat/completions",
            headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
            timeout=30,
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == ORIGIN

        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: -5\r\n\r\n"
            )
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 "), received
        assert json.loads(body)["error"]["code"] == "invalid_http_request"

        process.send_signal(2)  # Ctrl-C
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize(
    ("flag", "value", "words"),
    [
        ("--allowed-origins", "localhost:3000", "scheme://host[:port]"),
        ("--allowed-origins", "http://localhost:3000/chat", "scheme://host[:port]"),
        ("--allowed-hosts", "http://mybox.lan", "without scheme or port"),
        ("--allowed-hosts", "mybox.lan:8080", "without scheme or port"),
    ],
)
def test_a_bad_entry_is_a_one_line_error_before_loading(
    cli_env: dict[str, str], flag: str, value: str, words: str
) -> None:
    good = "http://ok.test" if flag == "--allowed-origins" else "ok.test"
    done = subprocess.run(
        [*CLI, "serve", "/no/such/model.gguf", "--port", "0", flag, f"{good},{value}"],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: {flag}: ") and repr(value) in lines[0], lines[0]
    assert words in lines[0] and "/no/such/model.gguf" not in lines[0]


def test_any_origin_without_a_key_is_warned_about(cli_env: dict[str, str]) -> None:
    done = subprocess.run(
        [*CLI, "serve", "/no/such/model.gguf", "--port", "0", "--allowed-origins", "*"],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=120,
        check=False,
    )
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("warning: --allowed-origins '*' without --api-key"), done.stderr
    assert lines[-1].startswith("error: ") and done.returncode == 1
