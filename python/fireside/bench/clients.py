"""Concurrent streaming HTTP clients of an OpenAI-compatible server (standard library only).

Each client is a thread that posts one streaming ``/v1/completions`` request and records
when each ``data:`` event arrives. Chunks are not JSON-parsed except the ones that carry
``usage``, so the clients take as little CPU from the server as possible.

Two aggregates come out of one round of ``n`` clients:

* ``steady``: the generation throughput while all ``n`` streams are generating: the
  tokens that arrived between the last stream's first token and the first stream's last
  token, over that window. This is what ``llama-batched-bench``'s ``S_TG`` measures
  (``n`` sequences decoding in lock-step, prompt processing excluded).
* ``wall``: all completion tokens over the time from sending the requests to the last
  event (prompts, HTTP and stragglers included): what users see.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any


class ClientError(RuntimeError):
    """A request failed (status, connection or protocol)."""


@dataclass
class StreamRecord:
    """What one streaming client saw."""

    t_start: float
    times: list[float] = field(default_factory=list)
    completion_tokens: int | None = None
    t_end: float = 0.0
    error: str | None = None

    @property
    def tokens(self) -> int:
        return self.completion_tokens if self.completion_tokens is not None else len(self.times)


def _stream_one(
    host: str, port: int, body: bytes, record: StreamRecord, start: threading.Barrier
) -> None:
    conn = http.client.HTTPConnection(host, port, timeout=600)
    try:
        conn.connect()
        start.wait()
        record.t_start = time.perf_counter()
        conn.request(
            "POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"}
        )
        resp = conn.getresponse()
        if resp.status != 200:
            record.error = f"HTTP {resp.status}: {resp.read()[:500]!r}"
            return
        times = record.times
        while True:
            line = resp.readline()
            if not line:
                break
            if not line.startswith(b"data:"):
                continue
            now = time.perf_counter()
            payload = line[5:].strip()
            if payload == b"[DONE]":
                break
            if b'"usage"' in payload:
                data = json.loads(payload)
                usage = data.get("usage")
                if usage:
                    record.completion_tokens = int(usage.get("completion_tokens", 0))
                if not any(c.get("text") for c in data.get("choices") or ()):
                    continue
            times.append(now)
        record.t_end = time.perf_counter()
    except (OSError, http.client.HTTPException, ValueError) as e:  # reported by the caller
        record.error = f"{type(e).__name__}: {e}"
    finally:
        conn.close()


@dataclass
class RoundResult:
    """One round of ``n`` concurrent streams."""

    n: int
    steady_tokens_per_second: float
    wall_tokens_per_second: float
    tokens: list[int]


def run_round(
    host: str, port: int, requests: list[dict[str, Any]], *, timeout: float = 600
) -> RoundResult:
    """Send these streaming ``/v1/completions`` requests at once, one client each; their
    aggregate throughputs."""
    n = len(requests)
    bodies = [
        json.dumps({**r, "stream": True, "stream_options": {"include_usage": True}}).encode()
        for r in requests
    ]
    records = [StreamRecord(t_start=0.0) for _ in range(n)]
    barrier = threading.Barrier(n)
    threads = [
        threading.Thread(target=_stream_one, args=(host, port, body, rec, barrier), daemon=True)
        for body, rec in zip(bodies, records)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        raise ClientError(f"{n} concurrent streams did not finish within {timeout:.0f} s")
    errors = [r.error for r in records if r.error]
    if errors:
        raise ClientError(f"{len(errors)} of {n} streams failed: {errors[0]}")
    if any(not r.times for r in records):
        raise ClientError("a stream returned no text")
    return RoundResult(
        n=n,
        steady_tokens_per_second=steady_rate(records),
        wall_tokens_per_second=wall_rate(records),
        tokens=[r.tokens for r in records],
    )


def steady_rate(records: list[StreamRecord]) -> float:
    """Tokens per second while every stream was generating (see the module docstring).

    Events are counted as tokens, scaled by each stream's usage count when the server
    merged tokens into fewer events.
    """
    t0 = max(r.times[0] for r in records)
    t1 = min(r.times[-1] for r in records)
    if t1 <= t0:  # one event per stream, or no overlap: fall back to the whole span
        t0 = min(r.times[0] for r in records)
        t1 = max(r.times[-1] for r in records)
        if t1 <= t0:
            return 0.0
    tokens = 0.0
    for r in records:
        inside = sum(1 for t in r.times if t0 < t <= t1)
        scale = r.tokens / len(r.times) if r.times else 1.0
        tokens += inside * scale
    return tokens / (t1 - t0)


def wall_rate(records: list[StreamRecord]) -> float:
    t0 = min(r.t_start for r in records)
    t1 = max(r.t_end for r in records)
    return sum(r.tokens for r in records) / (t1 - t0) if t1 > t0 else 0.0
