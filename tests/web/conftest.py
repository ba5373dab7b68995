"""Browser fixtures: a real fireside server on loopback and Debian's Chromium, headless.

The server is the real app (``create_app``) with the real test model, run by uvicorn in a
thread on a random port. Chromium is the system one (never a downloaded browser); where it or
Playwright is missing the tests are skipped and say so.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
N_CTX = 2048  # tokens per request: small, so "context too long" is cheap to provoke


@dataclass
class LiveServer:
    """A fireside server running in this process; ``stop()`` shuts it down for real."""

    url: str
    model_id: str
    _server: Any = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        if self._thread.is_alive():
            raise RuntimeError("the test server did not shut down within 30 s")


def start_server(model_path: Path, **options: Any) -> LiveServer:
    """Start the real app on 127.0.0.1 with a free port and wait until it answers.
    ``options`` go to ``create_app`` (``api_key``, ...)."""
    import httpx
    import uvicorn
    from fireside.server.app import create_app

    app = create_app(model_path, **{"ctx_size": N_CTX, "parallel": 2, **options})
    headers = {"Authorization": f"Bearer {options['api_key']}"} if "api_key" in options else {}
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            response = httpx.get(f"{url}/v1/models", headers=headers, timeout=5)
            if response.status_code == 200:
                break
        except httpx.TransportError:
            pass
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fireside test server did not start")
        time.sleep(0.1)
    model_id = response.json()["data"][0]["id"]
    return LiveServer(url=url, model_id=model_id, _server=server, _thread=thread)


@pytest.fixture(scope="session", autouse=True)
def empty_model_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Servers serve every downloaded model (fireside.server.model_manager): these tests
    see an empty model store, not this machine's (tests that need one set their own)."""
    store = tmp_path_factory.mktemp("empty-model-store")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FIRESIDE_MODELS_DIR", str(store))
        yield store


@pytest.fixture(scope="session")
def live_server(model_path: Path) -> Iterator[LiveServer]:
    """One real server for the whole browser session."""
    server = start_server(model_path)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless system Chromium driven by Playwright."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("no system Chromium (Debian: apt-get install chromium); browser tests skipped")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        yield browser
        browser.close()


@dataclass
class PageWatch:
    """What a page did that a test may want to assert on."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    chat_requests: list[dict[str, Any]] = field(default_factory=list)
    chat_request_headers: list[dict[str, str]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def watch() -> PageWatch:
    return PageWatch()


@pytest.fixture
def page(browser: Any, watch: PageWatch) -> Iterator[Any]:
    """A fresh page in its own context (so its own localStorage)."""
    context = browser.new_context(viewport={"width": 1280, "height": 820})
    page = context.new_page()
    page.set_default_timeout(60_000)

    def on_request(request: Any) -> None:
        watch.requests.append(request.url)
        if request.url.endswith("/v1/chat/completions") and request.method == "POST":
            watch.chat_requests.append(request.post_data_json)
            watch.chat_request_headers.append(request.headers)

    def on_dialog(dialog: Any) -> None:
        watch.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("console", lambda m: m.type == "error" and watch.console_errors.append(m.text))
    page.on("pageerror", lambda e: watch.page_errors.append(str(e)))
    page.on("dialog", on_dialog)
    page.on("request", on_request)
    yield page
    context.close()
    # Whatever a test checks, an uncaught exception in the page is a failure.
    assert not watch.page_errors, f"the page raised: {watch.page_errors}"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Folder for screenshots (git-ignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
