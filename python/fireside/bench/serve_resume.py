"""The ``serve-resume`` section: a restarted ``fireside serve --prompt-cache DIR``
answering the next turn of a long conversation (its prefix restored from disk,
:mod:`fireside.generation.prompt_cache`) against a server evaluating it all (asked for by
name only).

Each round: a server with an empty cache directory answers the conversation and stops
(its prefix is written); a server without the cache answers the next turn (the
re-evaluation time: its time to first token, streamed); a new server on the cache
directory answers the same turn (the resumed time). Ratio
``serve_resume.ttft_vs_reevaluate`` (target <= 0.2); ``serve_resume.identical`` is 1 when
the two replies are equal, ``serve_resume.restored_tokens`` is the resumed server's
``/metrics`` count of prompt tokens restored from disk (0: the cache was not used).
Process start-up and model loading are not timed (``fireside serve MODEL`` loads the model
before it answers ``/health``).
"""

from __future__ import annotations

import http.client
import json
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fireside.bench.resume import context_size, conversation
from fireside.bench.serving import ServerBench, ServerError

if TYPE_CHECKING:
    from fireside.bench.suite import Suite

FIRST = "Which of these has the most trees?"
NEXT = "Which of these did we talk about first?"


class _Server(ServerBench):
    """``fireside serve`` with one slot, speculation off, and optionally a prompt cache."""

    def __init__(self, model: Path, cache: Path | None, **options: Any) -> None:
        super().__init__(model, parallel=1, prompt_tokens=1, max_tokens=8, **options)
        self.cache = cache

    def command(self) -> list[str]:
        extra = ["--no-speculative"]
        if self.cache is not None:
            extra += ["--prompt-cache", str(self.cache)]
        return [*super().command(), *extra]

    def chat(self, messages: list[dict[str, str]]) -> tuple[str, float]:
        """Stream one greedy reply: its text and the seconds to its first content."""
        body = json.dumps(
            {
                "model": self.model.name,
                "messages": messages,
                "max_tokens": 8,
                "temperature": 0.0,
                "stream": True,
            }
        )
        conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
        try:
            t0 = time.perf_counter()
            conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            if resp.status != 200:
                raise ServerError(f"the server answered {resp.status}: {resp.read()[:300]!r}")
            text, first = "", None
            for raw in resp:
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                for choice in json.loads(line[6:]).get("choices", []):
                    piece = (choice.get("delta") or {}).get("content") or ""
                    if piece and first is None:
                        first = time.perf_counter() - t0
                    text += piece
            return text, first if first is not None else time.perf_counter() - t0
        finally:
            conn.close()


def run_serve_resume(suite: Suite) -> None:
    from fireside.model import Model

    cfg = suite.config
    n_ctx = context_size(cfg.resume_tokens)
    with Model(cfg.model, n_ctx=n_ctx, n_threads=1) as counter:
        history = conversation(counter, cfg.resume_tokens)
    history.append({"role": "user", "content": FIRST})
    options: dict[str, Any] = {"threads": cfg.threads, "n_ctx": n_ctx}
    full = suite.fig("serve_resume.reevaluate_s", "s", higher_is_better=False)
    resumed = suite.fig("serve_resume.resumed_s", "s", higher_is_better=False)
    restored = suite.fig("serve_resume.restored_tokens", "tokens")
    same = True

    def one(
        cache: Path | None, messages: list[dict[str, str]]
    ) -> tuple[str, float, dict[str, float]]:
        server = _Server(cfg.model, cache, **options)
        server.start()
        try:
            text, ttft = server.chat(messages)
            return text, ttft, server.counters()
        finally:
            server.stop()

    def measure() -> Any:
        nonlocal same
        with tempfile.TemporaryDirectory() as tmp:
            cache = Path(tmp) / "prompt-cache"
            answer, _, _ = one(cache, history)
            turn = [*history, {"role": "assistant", "content": answer}]
            turn.append({"role": "user", "content": NEXT})
            expected, t_full, _ = one(None, turn)
            reply, t_resumed, counters = one(cache, turn)
            same = same and reply == expected
            n_restored = counters.get("prompt_cache_tokens_restored_total", 0.0)

        def commit() -> None:
            full.add(t_full)
            resumed.add(t_resumed)
            restored.add(n_restored)

        return commit

    for i in suite.rounds():
        suite.gated(i, "serve-resume", measure)
    suite.fig("serve_resume.identical", "bool").add(1.0 if same else 0.0)
    suite.compare("serve_resume.ttft_vs_reevaluate", resumed, full)
