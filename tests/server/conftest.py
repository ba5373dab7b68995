"""A real server on loopback for the server tests: uvicorn in a background thread, the
real test model, small slots and one decode thread, so the tests stay fast on two shared
cores (more threads than free cores make llama.cpp spin-wait: many times slower)."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from fireside.generation.chunking import Chunking
from fireside.generation.engine import CHUNK
from fireside.model import Model
from fireside.server import create_app
from fireside.server.http11 import uvicorn_config

PARALLEL = 8
SLOT_CTX = 256


@dataclass
class LiveServer:
    """A running server: its base URL and app (``app.state.service`` is the Service)."""

    url: str
    app: Any
    api_key: str | None = None

    @property
    def model_id(self) -> str:
        return self.app.state.service.model_id

    def client(self, **options: Any) -> openai.OpenAI:
        options.setdefault("max_retries", 0)
        options.setdefault("timeout", 120)
        return openai.OpenAI(base_url=self.url + "/v1", api_key=self.api_key or "unused", **options)

    def async_client(self, **options: Any) -> openai.AsyncOpenAI:
        options.setdefault("max_retries", 0)
        options.setdefault("timeout", 120)
        return openai.AsyncOpenAI(
            base_url=self.url + "/v1", api_key=self.api_key or "unused", **options
        )

    def metrics(self) -> dict[str, float]:
        """``/metrics`` as ``{"name{labels}": value}``."""
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        text = httpx.get(self.url + "/metrics", headers=headers, timeout=30).text
        return parse_metrics(text)

    def wait_idle(self, timeout: float = 60.0) -> dict[str, float]:
        """Metrics once no slot is active and nothing waits (or fail after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            values = self.metrics()
            if values["fireside_slots_active"] == 0 and values["fireside_queue_depth"] == 0:
                return values
            if time.monotonic() > deadline:
                pytest.fail(f"the server still has active slots after {timeout} s: {values}")
            time.sleep(0.05)


_SAMPLE = re.compile(r"^(fireside_[a-z_]+(?:\{[^}]*\})?) (\S+)$")


def parse_metrics(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            values[match.group(1)] = float(match.group(2))
    return values


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server(uvicorn.Server):
    """uvicorn's server, with an event set once its startup is over (bound or failed)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.startup_over = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self.startup_over.set()


@pytest.fixture(scope="session", autouse=True)
def empty_model_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Servers serve every downloaded model (fireside.server.model_manager): these tests
    see an empty model store, not this machine's (tests that need one set their own)."""
    store = tmp_path_factory.mktemp("empty-model-store")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FIRESIDE_MODELS_DIR", str(store))
        yield store


@contextmanager
def serve(app: Any, api_key: str | None = None) -> Iterator[LiveServer]:
    """Run ``app`` on a free loopback port until the block ends, the way ``fireside serve``
    runs it (:func:`fireside.server.http11.uvicorn_config`: its HTTP/1.1 protocol with
    JSON errors, no WebSockets)."""
    port = free_port()
    config = uvicorn_config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = _Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    if not server.startup_over.wait(120) or not server.started:
        server.should_exit = True
        thread.join(60)
        pytest.fail("the test server did not start")
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", app, api_key)
    finally:
        server.should_exit = True
        thread.join(60)


@pytest.fixture(scope="module")
def server(model_path: Path) -> Iterator[LiveServer]:
    """The shared server: 8 slots of 256 tokens, 2 threads."""
    app = create_app(model_path, parallel=PARALLEL, ctx_size=SLOT_CTX, n_threads=1, max_queue=32)
    with serve(app) as live:
        yield live


class ChatPrompts:
    """The prompt tokens the server renders for chat messages (the library's template, as
    the server's), and where the engine's prompt chunks end in them
    (:mod:`fireside.generation.chunking`)."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.chunking = Chunking(CHUNK, model.core.eog_tokens)

    def tokens(self, messages: list[dict[str, str]]) -> list[int]:
        return self.model.tokenize_rendered(self.model.chat_template.render(messages))

    def reusable(self, messages: list[dict[str, str]]) -> int:
        """The longest prefix of the prompt a cache can give it: its last chunk boundary
        short of its last token."""
        tokens = self.tokens(messages)
        return self.chunking.floor(tokens, len(tokens) - 1)

    def boundaries(self, messages: list[dict[str, str]]) -> list[int]:
        return self.chunking.boundaries(self.tokens(messages))


@pytest.fixture(scope="session")
def chat_prompts(model_path: Path) -> Iterator[ChatPrompts]:
    model = Model(model_path, n_ctx=256, n_threads=1)
    yield ChatPrompts(model)
    model.close()


def chat_body(live: LiveServer, content: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": live.model_id,
        "messages": [{"role": "user", "content": content}],
    }
    body.update(extra)
    return body
