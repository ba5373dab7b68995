"""Many models from one server: loaded on first use, unloaded by limits and keep-alive.

A fresh model store holds the two real test models (SmolLM2-135M as the catalog's file,
Gemma 3 270M as a plain downloaded file); servers start with no model loaded and are
driven by the official ``ollama`` client, plain HTTP and the ``fireside`` command.
Waiting for an unload that a timer does is a poll of ``/api/ps`` until the condition
holds, with a generous deadline (never a fixed sleep).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest
from fireside.hub import config, get_entry, store
from fireside.server import create_app

from tests.stores import fresh_store, place

from .conftest import LiveServer, parse_metrics, serve

SMOL = "smollm2-135m-instruct"
GEMMA = "gemma-3-270m-q4_k_m"
ENTRY = get_entry(SMOL)
assert ENTRY is not None
OPTIONS = {"temperature": 0, "num_predict": 12}
MESSAGES = [{"role": "user", "content": "Name a fruit."}]


@pytest.fixture(scope="module")
def models_store(
    tmp_path_factory: pytest.TempPathFactory, model_path: Path, gemma_path: Path
) -> Iterator[Callable[[], None]]:
    """A fresh store with both test models; calling the fixture's value puts back any
    that a test deleted."""
    with fresh_store(tmp_path_factory.mktemp("models")):

        def fill() -> None:
            place(model_path, store.hub_path(ENTRY.repo, ENTRY.file))
            place(gemma_path, store.hub_path("fireside-tests/gemma", f"{GEMMA}.gguf"))

        fill()
        yield fill


def _app(**options: Any) -> Any:
    settings = {"parallel": 2, "ctx_size": 256, "n_threads": 1, "keep_alive": -1.0}
    return create_app(None, **{**settings, **options})


@pytest.fixture(scope="module")
def live(models_store: Callable[[], None]) -> Iterator[LiveServer]:
    """A server with no model loaded at start, room for both."""
    with serve(_app(max_models=2)) as server:
        yield server


@pytest.fixture(scope="module")
def single(models_store: Callable[[], None]) -> Iterator[LiveServer]:
    """A server that holds one model at a time."""
    with serve(_app(max_models=1)) as server:
        yield server


def _client(live: LiveServer) -> ollama.Client:
    return ollama.Client(host=live.url, timeout=120)


def loaded(live: LiveServer, downloaded: tuple[str, ...] = (SMOL, GEMMA)) -> list[str]:
    """What /api/ps says is loaded, checked against /v1/models' ``loaded`` marks."""
    running = sorted(m["name"] for m in httpx.get(live.url + "/api/ps").json()["models"])
    cards = httpx.get(live.url + "/v1/models").json()["data"]
    assert sorted(c["id"] for c in cards if c["loaded"]) == running
    assert {c["id"] for c in cards} == set(downloaded)  # every downloaded model is listed
    return running


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not true within {timeout} s")
        time.sleep(0.05)


def unload_all(live: LiveServer) -> None:
    for name in loaded(live):
        _client(live).generate(model=name, keep_alive=0)
    assert loaded(live) == []


def answer(live: LiveServer, model: str, content: str = "Name a fruit.", **kw: Any) -> str:
    reply = _client(live).chat(
        model=model, messages=[{"role": "user", "content": content}], options=OPTIONS, **kw
    )
    return reply.message.content or ""


# -- two models at once --------------------------------------------------------------------


def test_two_models_answer_interleaved_requests(live: LiveServer) -> None:
    unload_all(live)
    prompts = ["Name a fruit.", "Name a color.", "Name an animal."]
    alone = {(m, p): answer(live, m, p) for m in (SMOL, GEMMA) for p in prompts}
    assert loaded(live) == sorted([GEMMA, SMOL])
    assert alone[(SMOL, prompts[0])] != alone[(GEMMA, prompts[0])]  # really two models
    got: dict[tuple[str, str], str] = {}
    errors: list[BaseException] = []

    def run(model: str, prompt: str) -> None:
        try:
            got[(model, prompt)] = answer(live, model, prompt)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    turn_waits = _turn_waits(live)
    # interleaved: the models' requests alternate, all of them in flight together
    threads = [
        threading.Thread(target=run, args=(m, p)) for p in prompts for m in ("smollm2:135m", GEMMA)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    for prompt in prompts:
        assert got[("smollm2:135m", prompt)] == alone[(SMOL, prompt)]
        assert got[(GEMMA, prompt)] == alone[(GEMMA, prompt)]
    running = httpx.get(live.url + "/api/ps").json()["models"]
    assert all(m["in_flight"] == 0 for m in running)
    assert all(m["size"] > 0 and m["expires_at"].startswith("9999") for m in running)
    # the compute thread stepped both models in the same rounds, one after the other
    assert _turn_waits(live) > turn_waits


def _turn_waits(live: LiveServer) -> float:
    """``fireside_step_turn_waits_total`` from /metrics."""
    return parse_metrics(httpx.get(live.url + "/metrics").text)["fireside_step_turn_waits_total"]


def test_concurrent_requests_for_a_model_share_one_load(live: LiveServer) -> None:
    unload_all(live)
    manager = live.app.state.models
    before = manager.n_loads
    replies: list[str] = []
    threads = [
        threading.Thread(target=lambda: replies.append(answer(live, GEMMA))) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(replies) == 3 and len(set(replies)) == 1
    assert manager.n_loads == before + 1
    assert live.metrics()["fireside_model_loads_total"] == before + 1
    assert live.metrics()["fireside_models_loaded"] == 1
    assert loaded(live) == [GEMMA]


def test_keep_alive_zero_unloads_right_after_the_reply(live: LiveServer) -> None:
    unload_all(live)
    text = answer(live, SMOL, keep_alive=0)
    assert text
    assert loaded(live) == []  # gone by the time the reply is read
    answer(live, SMOL)
    assert loaded(live) == [SMOL]
    # a stream holds its model to its end, then keep_alive 0 takes it
    stream = _client(live).chat(
        model=SMOL, messages=MESSAGES, options=OPTIONS, stream=True, keep_alive=0
    )
    assert next(stream).done is False
    assert loaded(live) == [SMOL]
    assert list(stream)[-1].done
    assert loaded(live) == []
    # OpenAI's API takes the same field as an extra
    openai_client = live.client()
    reply = openai_client.chat.completions.create(
        model=GEMMA, messages=MESSAGES, max_tokens=4, extra_body={"keep_alive": 0}
    )
    assert reply.choices[0].message.content
    assert loaded(live) == []
    bad = httpx.post(
        live.url + "/v1/completions",
        json={"model": SMOL, "prompt": "Hi", "keep_alive": "soon"},
        timeout=30,
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "keep_alive"
    assert "'soon' is not a duration" in bad.json()["error"]["message"]


def test_a_keep_alive_timer_unloads_an_idle_model(live: LiveServer) -> None:
    unload_all(live)
    answer(live, GEMMA, keep_alive="1h")
    (running,) = httpx.get(live.url + "/api/ps").json()["models"]
    expires = datetime.fromisoformat(running["expires_at"].replace("Z", "+00:00"))
    left = (expires - datetime.now(timezone.utc)).total_seconds()
    assert 3000 < left <= 3600
    answer(live, GEMMA, keep_alive="1s")  # the latest request's keep_alive counts
    wait_until(lambda: httpx.get(live.url + "/api/ps").json()["models"] == [])
    assert loaded(live) == []  # and /v1/models agrees


def test_load_and_unload_without_a_prompt(live: LiveServer) -> None:
    unload_all(live)
    client = _client(live)
    assert client.generate(model=GEMMA).done_reason == "load"
    assert loaded(live) == [GEMMA]
    assert client.chat(model=GEMMA, messages=[], keep_alive=0).done_reason == "unload"
    assert loaded(live) == []


# -- limits --------------------------------------------------------------------------------


def test_max_models_1_unloads_the_first_for_the_second_and_reloads_it(
    single: LiveServer,
) -> None:
    first = answer(single, SMOL)
    assert loaded(single) == [SMOL]
    second = answer(single, GEMMA)
    assert loaded(single) == [GEMMA]
    assert answer(single, SMOL) == first  # loaded again, the same answer
    assert loaded(single) == [SMOL]
    assert answer(single, GEMMA) == second


def test_a_model_that_can_never_fit_is_a_clear_503(models_store: Callable[[], None]) -> None:
    with serve(_app(memory_budget=20 << 20)) as small:
        reply = httpx.post(
            small.url + "/v1/chat/completions",
            json={"model": SMOL, "messages": MESSAGES, "max_tokens": 4},
            timeout=60,
        )
        assert reply.status_code == 503
        message = reply.json()["error"]["message"]
        assert SMOL in message and "memory budget of 20 MiB" in message
        assert httpx.get(small.url + "/api/ps").json()["models"] == []


# -- names, deletion -----------------------------------------------------------------------


def test_unknown_models_are_404_naming_close_matches(live: LiveServer) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        _client(live).chat(model="gemma-3-270m", messages=MESSAGES)
    assert caught.value.status_code == 404
    assert "'gemma-3-270m' not found" in caught.value.error and GEMMA in caught.value.error
    reply = httpx.post(
        live.url + "/v1/chat/completions", json={"model": "smollm3", "messages": MESSAGES}
    )
    assert reply.status_code == 404
    error = reply.json()["error"]
    assert error["code"] == "model_not_found" and SMOL in error["message"]
    missing = httpx.get(live.url + "/v1/models/nope-model")
    assert missing.status_code == 404
    with pytest.raises(ollama.ResponseError) as caught:  # in the catalog, not downloaded
        _client(live).generate(model="qwen2.5:0.5b", prompt="Hi")
    assert caught.value.status_code == 404
    assert "(qwen2.5-0.5b-instruct) is not downloaded" in caught.value.error


def test_delete_while_serving_is_refused_then_unloads_and_deletes(
    live: LiveServer, models_store: Callable[[], None]
) -> None:
    client = _client(live)
    stream = client.chat(model=GEMMA, messages=MESSAGES, options=OPTIONS, stream=True)
    assert next(stream).done is False
    with pytest.raises(ollama.ResponseError) as caught:
        client.delete(GEMMA)
    assert caught.value.status_code == 409 and "serving requests" in caught.value.error
    assert list(stream)[-1].done
    assert GEMMA in loaded(live)
    assert client.delete(GEMMA).status == "success"  # idle: unloaded, then deleted
    assert loaded(live, downloaded=(SMOL,)) == []
    assert [m.model for m in client.list().models] == [SMOL]
    models_store()  # put it back for the other tests


# -- the command line ----------------------------------------------------------------------


def _fireside(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fireside.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_fireside_ps_and_stop_against_a_real_server(live: LiveServer) -> None:
    unload_all(live)
    answer(live, SMOL)
    port = live.url.rsplit(":", 1)[1]
    shown = _fireside("ps", "--port", port)
    assert shown.returncode == 0, shown.stderr
    header, row = shown.stdout.strip().splitlines()
    assert header.split() == ["NAME", "SIZE", "CONTEXT", "REQUESTS", "UNTIL"]
    assert row.split()[0] == SMOL and row.endswith("Forever")
    stopped = _fireside("stop", "smollm2:135m", "--port", port)
    assert stopped.returncode == 0, stopped.stderr
    assert loaded(live) == []
    unknown = _fireside("stop", "no-such-model", "--port", port)
    assert unknown.returncode == 1 and "404" in unknown.stderr and "no-such-model" in unknown.stderr


def test_fireside_ps_without_a_server_is_one_line() -> None:
    from .conftest import free_port

    done = _fireside("ps", "--port", str(free_port()))
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: no fireside server at 127.0.0.1:")


def test_a_load_waits_for_the_busy_model_it_must_replace(single: LiveServer) -> None:
    """--max-models 1: a request for another model waits while the loaded one streams,
    then replaces it; the streaming reply is never cut."""
    answer(single, SMOL)
    client = _client(single)
    stream = client.chat(
        model=SMOL, messages=MESSAGES, options={"temperature": 0, "num_predict": 48}, stream=True
    )
    assert next(stream).done is False
    finished: dict[str, float] = {}

    def other() -> None:
        answer(single, GEMMA)
        finished["gemma"] = time.monotonic()

    thread = threading.Thread(target=other)
    thread.start()
    assert loaded(single) == [SMOL]  # still serving the stream: not unloaded for GEMMA
    parts = list(stream)
    finished["stream"] = time.monotonic()
    assert parts[-1].done and parts[-1].done_reason in ("length", "stop")
    thread.join(120)
    assert finished["gemma"] > finished["stream"]
    assert loaded(single) == [GEMMA]


def test_a_model_that_fails_to_load_is_a_clear_error(
    live: LiveServer, models_store: Callable[[], None]
) -> None:
    broken = config.models_dir() / "local" / "broken.gguf"
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 64)
    try:
        before = loaded(live, downloaded=(SMOL, GEMMA, "broken"))
        reply = httpx.post(
            live.url + "/v1/chat/completions",
            json={"model": "broken", "messages": MESSAGES},
            timeout=60,
        )
        assert reply.status_code == 500
        assert "model 'broken' could not be loaded" in reply.json()["error"]["message"]
        assert loaded(live, downloaded=(SMOL, GEMMA, "broken")) == before
    finally:
        broken.unlink()


def test_the_management_routes_need_the_api_key(models_store: Callable[[], None]) -> None:
    with serve(_app(api_key="sesame"), api_key="sesame") as keyed:
        for method, path, body in (
            ("GET", "/fireside/models", None),
            ("POST", "/fireside/models/unload", {"model": SMOL}),
            ("GET", "/api/ps", None),
            ("POST", "/api/generate", {"model": SMOL, "keep_alive": 0}),
        ):
            refused = httpx.request(method, keyed.url + path, json=body, timeout=30)
            assert refused.status_code == 401, (path, refused.text)
        auth = {"Authorization": "Bearer sesame"}
        listing = httpx.get(keyed.url + "/fireside/models", headers=auth, timeout=30).json()
        assert {m["id"] for m in listing["models"]} == {SMOL, GEMMA}
        assert all(not m["loaded"] for m in listing["models"])
        smol = next(e for e in listing["catalog"] if e["name"] == SMOL)
        assert smol["downloaded"] is True and smol["license"] and smol["description"]
        unloaded = httpx.post(
            keyed.url + "/fireside/models/unload", json={"model": SMOL}, headers=auth, timeout=30
        )
        assert unloaded.json() == {"model": SMOL, "unloaded": False}
