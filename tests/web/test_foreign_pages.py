"""Other web pages against the real server, in headless Chromium: a page of another origin
cannot make the model generate, a page reaching the server by DNS rebinding gets nothing,
and a page the server was told to allow (``allowed_origins``) can use the API."""

from __future__ import annotations

import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import LiveServer, start_server

REBOUND = "rebound.example"  # the attacker's name, resolved by the browser to 127.0.0.1


def prompt_tokens(server: LiveServer) -> float:
    """Prompt tokens the engine admitted so far (it only grows when the model generates)."""
    for line in httpx.get(server.url + "/metrics", timeout=30).text.splitlines():
        if line.startswith("fireside_prompt_tokens_total "):
            return float(line.split()[1])
    raise AssertionError("no fireside_prompt_tokens_total in /metrics")


@pytest.fixture(scope="module")
def other_site() -> Iterator[str]:
    """Another origin on loopback: a blank page served from another port."""

    class Blank(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><title>another site</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Blank)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{site.server_address[1]}"
    site.shutdown()
    site.server_close()


def chat_request(server: LiveServer) -> str:
    messages = [{"role": "user", "content": "Hi"}]
    return json.dumps({"model": server.model_id, "max_tokens": 4, "messages": messages})


SIMPLE_REQUEST = """async ([url, body]) => {
  // no preflight: a no-cors POST with a CORS-safelisted content type, as any page may send
  await fetch(url, {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"},
                    body});
  return "sent";
}"""

READ_JSON = """async ([url, body]) => {
  try {
    const response = await fetch(url, {method: "POST", body,
                                       headers: {"Content-Type": "application/json"}});
    return {status: response.status, body: await response.json()};
  } catch (err) {
    return {error: String(err)};
  }
}"""


def test_another_site_cannot_make_the_model_generate(
    browser: Any, live_server: LiveServer, other_site: str
) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(other_site + "/")
        target = live_server.url + "/v1/chat/completions"
        before = prompt_tokens(live_server)
        assert page.evaluate(SIMPLE_REQUEST, [target, chat_request(live_server)]) == "sent"
        read = page.evaluate(READ_JSON, [target, chat_request(live_server)])
        assert "error" in read, read  # the preflight is refused: nothing to read
        assert prompt_tokens(live_server) == before
    finally:
        context.close()


def test_a_page_rebound_to_the_server_gets_nothing(browser: Any, live_server: LiveServer) -> None:
    """DNS rebinding: the browser resolves the attacker's name to 127.0.0.1, so the page at
    http://rebound.example:PORT/ is, to the browser, the server's own origin."""
    port = live_server.url.rsplit(":", 1)[1]
    rebound = f"http://{REBOUND}:{port}"
    fooled = browser.browser_type.launch(
        executable_path=shutil.which("chromium") or shutil.which("chromium-browser"),
        headless=True,
        args=[f"--host-resolver-rules=MAP {REBOUND} 127.0.0.1"],
    )
    try:
        page = fooled.new_page()
        before = prompt_tokens(live_server)
        response = page.goto(rebound + "/")
        assert response is not None and response.status == 403
        assert response.json()["error"]["code"] == "host_not_allowed"
        read = page.evaluate(
            READ_JSON, [rebound + "/v1/chat/completions", chat_request(live_server)]
        )
        assert read["status"] == 403, read
        assert read["body"]["error"]["code"] == "host_not_allowed"
        assert prompt_tokens(live_server) == before
    finally:
        fooled.close()


def test_an_allowed_origin_can_use_the_api(browser: Any, model_path: Path, other_site: str) -> None:
    server = start_server(model_path, allowed_origins=[other_site], parallel=1, ctx_size=256)
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(other_site + "/")
        read = page.evaluate(READ_JSON, [server.url + "/v1/chat/completions", chat_request(server)])
        assert read.get("status") == 200, read
        assert read["body"]["choices"][0]["message"]["content"]
    finally:
        context.close()
        server.stop()
