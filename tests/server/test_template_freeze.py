"""A chat template that never finishes one step cannot freeze the server: its request
fails at the template time limit while ``/health`` and other requests are answered."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fireside.chat.template_pool import TemplatePool, shared_pool
from fireside.server import create_app

from .conftest import LiveServer, chat_body, serve

# On the cue "freeze", compare two structures of 2**40 shared parts: one C call.
FREEZE_ON_CUE = (
    "{% if messages[-1].content == 'freeze' %}"
    "{% set ns = namespace(a=[0], b=[0]) %}{% for i in range(40) %}"
    "{% set ns.a = [ns.a, ns.a] %}{% set ns.b = [ns.b, ns.b] %}{% endfor %}"
    "{{ ns.a == ns.b }}{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "<|im_start|>assistant\n"
)
TIME_LIMIT = 3.0


@pytest.fixture(scope="module")
def pool() -> Iterator[TemplatePool]:
    pool = shared_pool()
    saved = pool.time_limit
    pool.time_limit = TIME_LIMIT
    yield pool
    pool.time_limit = saved


@pytest.fixture(scope="module")
def frozen_server(model_path: Path, pool: TemplatePool) -> Iterator[LiveServer]:
    app = create_app(model_path, parallel=2, ctx_size=256, n_threads=1, chat_template=FREEZE_ON_CUE)
    with serve(app) as live:
        yield live


@pytest.mark.timeout(120)
def test_a_hostile_template_does_not_freeze_the_server(
    frozen_server: LiveServer, pool: TemplatePool
) -> None:
    url = frozen_server.url
    killed, busy = pool.killed, pool.busy
    replies: list[httpx.Response] = []

    def hostile() -> None:
        body = chat_body(frozen_server, "freeze", max_tokens=2)
        replies.append(httpx.post(url + "/v1/chat/completions", json=body, timeout=120))

    thread = threading.Thread(target=hostile)
    thread.start()
    deadline = time.monotonic() + 60
    while pool.busy == busy:  # until the hostile render is running
        assert time.monotonic() < deadline, "the hostile request never reached its template"
        time.sleep(0.01)

    # meanwhile the server answers everything else
    assert httpx.get(url + "/health", timeout=10).status_code == 200
    body = chat_body(frozen_server, "hello", max_tokens=2, temperature=0)
    normal = httpx.post(url + "/v1/chat/completions", json=body, timeout=60)
    assert normal.status_code == 200, normal.text
    assert normal.json()["choices"][0]["message"]["content"] is not None
    assert httpx.get(url + "/health", timeout=10).status_code == 200
    assert thread.is_alive(), "the requests above should have overlapped the hostile one"

    thread.join(60)
    [reply] = replies
    assert reply.status_code == 400, reply.text
    message = reply.json()["error"]["message"]
    assert "did not finish rendering within the chat template time limit (3 s)" in message
    assert pool.killed == killed + 1

    # and afterwards, on a fresh worker
    again = httpx.post(url + "/v1/chat/completions", json=body, timeout=60)
    assert again.status_code == 200, again.text
