"""The server side of the benchmark: ``fireside serve`` in its own process, driven by
concurrent streaming clients (:mod:`fireside.bench.clients`).

The server runs as a separate process, as users run it, so the clients' Python work does
not share its interpreter. Requests mirror ``llama-batched-bench``: each client sends its
own prompt of random token ids (``prompt_tokens`` long, never reused from the cache),
generates exactly ``max_tokens`` tokens greedily (end-of-generation tokens biased away,
like ``--ignore-eos``), and each of the ``parallel`` slots gets the same per-sequence
context as batched-bench's ``-c`` divided by its sequences. Speculation is off, as in the
references (and the parallel section's ``Model``).
"""

from __future__ import annotations

import http.client
import json
import random
import re
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from fireside.bench.clients import RoundResult, run_round

_SERVING = re.compile(r"at http://\[?([^\]\s/]+)\]?:(\d+)")


class ServerError(RuntimeError):
    """The server process did not start or died."""


class ServerBench:
    """A ``fireside serve`` process and the requests that measure it (``threads=None``:
    the server's default, ``"auto"``)."""

    def __init__(
        self,
        model: Path,
        *,
        threads: int | None,
        parallel: int,
        n_ctx: int,
        prompt_tokens: int,
        max_tokens: int,
        startup_timeout: float = 300,
    ) -> None:
        self.model = model
        self.threads = threads
        self.parallel = parallel
        self.ctx_per_slot = n_ctx // parallel
        self.prompt_token_count = prompt_tokens
        self.max_tokens = max_tokens
        self.startup_timeout = startup_timeout
        self.host = "127.0.0.1"
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None
        self._log: deque[str] = deque(maxlen=200)
        self._rng = random.Random(4321)
        self._vocab: tuple[int, list[int]] | None = None  # (n_vocab, end-of-generation ids)

    # -- process -----------------------------------------------------------------------

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "fireside.cli",
            "serve",
            str(self.model),
            "--host",
            self.host,
            "--port",
            "0",
            "--parallel",
            str(self.parallel),
            "--ctx-size",
            str(self.ctx_per_slot),
            # the engine's batching against references that never draft: a lone stream
            # would otherwise draft by prompt lookup (the speculative section measures that)
            "--no-speculative",
            *(["--threads", str(self.threads)] if self.threads is not None else []),
        ]

    def start(self) -> None:
        """Start the server and wait until ``/health`` answers 200."""
        self._load_vocab()
        self._proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        address = threading.Event()
        threading.Thread(target=self._drain, args=(address,), daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout
        while not address.wait(0.1):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ServerError("the server did not start:\n" + "\n".join(self._log))
        while not self._healthy():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ServerError("the server never became healthy:\n" + "\n".join(self._log))
            time.sleep(0.1)

    def _drain(self, address: threading.Event) -> None:
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        for line in proc.stderr:
            self._log.append(line.rstrip())
            if not address.is_set() and (m := _SERVING.search(line)):
                self.port = int(m.group(2))
                address.set()

    def _healthy(self) -> bool:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
        try:
            conn.request("GET", "/health")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def pids(self) -> list[int]:
        """The server's process id, while it runs (for the contention monitor)."""
        proc = self._proc
        return [proc.pid] if proc is not None and proc.poll() is None else []

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)

    # -- requests ----------------------------------------------------------------------

    def _load_vocab(self) -> None:
        from fireside import _core

        with _core.Model(self.model, vocab_only=True) as vocab:
            eog = [t for t in range(vocab.n_vocab) if vocab.is_eog(t)]
            self._vocab = (vocab.n_vocab, eog)

    def request(self, max_tokens: int | None = None) -> dict[str, Any]:
        """One request: a fresh random prompt, greedy, end-of-generation banned."""
        assert self._vocab is not None
        n_vocab, eog = self._vocab
        prompt = [self._rng.randrange(n_vocab) for _ in range(self.prompt_token_count)]
        return {
            "model": self.model.name,
            "prompt": prompt,
            "max_tokens": max_tokens or self.max_tokens,
            "temperature": 0.0,
            "logit_bias": {str(t): -100.0 for t in eog},
        }

    def warm_up(self) -> None:
        """Every slot once, with a few tokens (allocations, graphs, page cache)."""
        run_round(self.host, self.port, [self.request(8) for _ in range(self.parallel)])

    def counters(self) -> dict[str, float]:
        """The server's ``/metrics`` counters (name without the ``fireside_`` prefix)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", "replace")
        except OSError:
            return {}
        finally:
            conn.close()
        if resp.status != 200:
            return {}
        out = {}
        for line in text.splitlines():
            if line.startswith("fireside_") and "{" not in line:
                name, _, value = line.partition(" ")
                try:
                    out[name.removeprefix("fireside_")] = float(value)
                except ValueError:
                    continue
        return out

    def round(self, n: int) -> tuple[RoundResult, float | None]:
        """``n`` concurrent streams of ``max_tokens`` tokens each; the result and the mean
        number of sequences per decode step during the round (from ``/metrics``)."""
        if self._proc is None or self._proc.poll() is not None:
            raise ServerError("the server is not running:\n" + "\n".join(self._log))
        before = self.counters()
        result = run_round(self.host, self.port, [self.request() for _ in range(n)])
        after = self.counters()
        per_step = None
        steps = after.get("decode_steps_total", 0) - before.get("decode_steps_total", 0)
        if steps > 0:
            seqs = after.get("decode_sequences_total", 0) - before.get("decode_sequences_total", 0)
            per_step = seqs / steps
        short = [t for t in result.tokens if t != self.max_tokens]
        if short:
            raise ServerError(
                f"streams returned {short} tokens instead of {self.max_tokens}: "
                + json.dumps(result.tokens)
            )
        return result, per_step
