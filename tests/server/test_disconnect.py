"""A client that goes away cancels its generation and frees its slot at once."""

from __future__ import annotations

import json
import socket
import time

import httpx

from .conftest import LiveServer, chat_body

CANCELLED = 'fireside_generations_total{reason="cancelled"}'


def test_disconnect_mid_stream_frees_the_slot(server: LiveServer) -> None:
    before = server.wait_idle()
    body = chat_body(server, "Write a long story about a dragon.", max_tokens=200, stream=True)
    chunks = 0
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=120) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: {"):
                chunks += 1
            if chunks == 3:
                break  # leaving the block closes the connection mid-stream
    after = server.wait_idle(timeout=30)
    assert after["fireside_slots_active"] == 0
    assert after.get(CANCELLED, 0) == before.get(CANCELLED, 0) + 1
    generated = (
        after["fireside_completion_tokens_total"] - before["fireside_completion_tokens_total"]
    )
    assert generated < 200


def test_disconnect_while_waiting_for_a_plain_answer_frees_the_slot(server: LiveServer) -> None:
    before = server.wait_idle()
    host, port = server.url.removeprefix("http://").split(":")
    payload = json.dumps(
        chat_body(server, "Write a long story about a dragon.", max_tokens=200)
    ).encode()
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        deadline = time.monotonic() + 60
        while server.metrics()["fireside_slots_active"] == 0:
            assert time.monotonic() < deadline, "the generation never started"
            time.sleep(0.02)
    after = server.wait_idle(timeout=30)
    assert after.get(CANCELLED, 0) == before.get(CANCELLED, 0) + 1
    generated = (
        after["fireside_completion_tokens_total"] - before["fireside_completion_tokens_total"]
    )
    assert generated < 200
