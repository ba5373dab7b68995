"""The ``models`` section: serving several models from one ``fireside serve``.

Two measurements, each against the same server process run as users run it (no model
loaded at start, the models found in a model store of their own, ``FIRESIDE_MODELS_DIR``):

* **cold first token**: the time from sending a ``/v1/completions`` request for a model
  that is not loaded (``--keep-alive 0`` unloads it after each reply) to its first
  token, against a bare load of the same file in this process (``_core.Model`` plus a
  ``_core.Context`` of the same size, the prompt decoded, one greedy token sampled).
  Rounds alternate the sides; ratio ``models.cold_ttft_vs_bare`` (target <= 1.10).
* **two models at once**: steady tokens/s of model A with ``k`` clients alone, model B
  with ``k`` clients alone, then both with ``k`` clients each at the same time. Each
  model's together rate over its alone rate, summed, is ``models.two_vs_alone``: 1.0
  means sharing the machine between two models wastes nothing (target >= 0.9). Model B
  is Gemma 3 270M when the test suite cached it, else a second copy of model A (a second
  engine all the same).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

from fireside.bench.clients import StreamRecord, _stream_one, steady_rate

if TYPE_CHECKING:
    from fireside.bench.suite import Suite

PROMPT = "The history of the printing press begins"
CLIENTS_PER_MODEL = 2
_SERVING = re.compile(r"at http://\[?([^\]\s/]+)\]?:(\d+)")


def _link(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


def _second_model(first: Path) -> Path:
    base = os.environ.get("FIRESIDE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "fireside"
    )
    gemma = Path(base) / "test-models" / "gemma-3-270m-q4_k_m.gguf"
    return gemma if gemma.is_file() else first


class _Server:
    """``fireside serve`` with no model loaded, serving the files of ``models_dir``."""

    def __init__(self, models_dir: Path, args: list[str]) -> None:
        env = {**os.environ, "FIRESIDE_MODELS_DIR": str(models_dir), "HF_HUB_OFFLINE": "1"}
        command = [sys.executable, "-m", "fireside.cli", "serve", "--port", "0", *args]
        self.log: deque[str] = deque(maxlen=100)
        self.proc = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        self.port = 0
        found = threading.Event()

        def drain() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.log.append(line.rstrip())
                if not found.is_set() and (m := _SERVING.search(line)):
                    self.port = int(m.group(2))
                    found.set()

        threading.Thread(target=drain, daemon=True).start()
        deadline = time.monotonic() + 120
        while not found.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("fireside serve did not start:\n" + "\n".join(self.log))

    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc.poll() is None else []

    def first_token(self, model: str, max_tokens: int = 1) -> float:
        """Seconds from sending a streamed completion to its first text event."""
        body = json.dumps(
            {
                "model": model,
                "prompt": PROMPT,
                "max_tokens": max_tokens,
                "temperature": 0,
                "stream": True,
            }
        ).encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        try:
            conn.connect()
            t0 = time.perf_counter()
            conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:300]!r}")
            while line := resp.readline():
                if line.startswith(b"data:") and b'"text":"' in line and b'"text":""' not in line:
                    elapsed = time.perf_counter() - t0
                    resp.read()
                    return elapsed
            raise RuntimeError("the stream ended without text")
        finally:
            conn.close()

    def unloaded(self, timeout: float = 60) -> None:
        """Wait until /api/ps lists nothing."""
        deadline = time.monotonic() + timeout
        while True:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                conn.request("GET", "/api/ps")
                if not json.loads(conn.getresponse().read())["models"]:
                    return
            finally:
                conn.close()
            if time.monotonic() > deadline:
                raise RuntimeError("the model was not unloaded")
            time.sleep(0.02)

    def streams(
        self, models: list[str], tokens: int, banned: dict[str, dict[str, float]]
    ) -> dict[str, float]:
        """Steady tokens/s per model, with one streaming client per entry of ``models``
        (``banned``: each model's end-of-generation tokens, as a logit bias)."""
        records = [StreamRecord(t_start=0.0) for _ in models]
        barrier = threading.Barrier(len(models))
        threads = []
        for i, (model, record) in enumerate(zip(models, records)):
            body = json.dumps(
                {
                    "model": model,
                    "prompt": f"{PROMPT} ({i})",
                    "max_tokens": tokens,
                    "temperature": 0,
                    "stream": True,
                    "logit_bias": banned[model],
                    "stream_options": {"include_usage": True},
                }
            ).encode()
            args = ("127.0.0.1", self.port, body, record, barrier)
            threads.append(threading.Thread(target=_stream_one, args=args, daemon=True))
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        errors = [r.error for r in records if r.error]
        if errors:
            raise RuntimeError(f"a stream failed: {errors[0]}")
        rates = {}
        for model in dict.fromkeys(models):
            mine = [r for m, r in zip(models, records) if m == model and r.times]
            rates[model] = steady_rate(mine) if mine else 0.0
        return rates

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _end_tokens(path: Path) -> dict[str, float]:
    """A logit bias banning ``path``'s end-of-generation tokens (streams run to length)."""
    from fireside import _core

    with _core.Model(os.fspath(path), vocab_only=True) as vocab:
        return {str(t): -100.0 for t in range(vocab.n_vocab) if vocab.is_eog(t)}


def _bare_first_token(path: Path, n_ctx: int, threads: int) -> float:
    """Seconds to load ``path`` bare, make a context, decode the prompt, sample a token."""
    from fireside import _core

    t0 = time.perf_counter()
    model = _core.Model(os.fspath(path))
    try:
        context = _core.Context(model, n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads)
        try:
            tokens = model.tokenize(PROMPT, add_special=True, parse_special=True)
            context.decode(tokens)
            sampler = _core.Sampler(model).add_greedy()
            sampler.sample(context)
            return time.perf_counter() - t0
        finally:
            context.close()
    finally:
        model.close()


def run_models(suite: Suite) -> None:
    """Measure the section (see the module docstring)."""
    cfg = suite.config
    n_ctx = 512 if cfg.quick else 2048
    with tempfile.TemporaryDirectory(prefix="fireside-bench-models-") as tmp:
        store = Path(tmp)
        _link(cfg.model, store / "a" / "model-a.gguf")
        _link(_second_model(cfg.model), store / "b" / "model-b.gguf")
        common = ["--threads", str(cfg.threads), "--ctx-size", str(n_ctx)]
        # -- cold first token -----------------------------------------------------------
        cold = suite.fig("models.cold_ttft_s", "s", higher_is_better=False)
        bare = suite.fig("models.bare_ttft_s", "s", higher_is_better=False)
        server = _Server(store, [*common, "--parallel", "1", "--keep-alive", "0"])
        suite.live_pids = server.pids
        try:
            for i in suite.rounds():

                def measure() -> object:
                    first = server.first_token("model-a")
                    server.unloaded()
                    alone = _bare_first_token(cfg.model, n_ctx, cfg.threads)

                    def commit() -> None:
                        cold.add(first)
                        bare.add(alone)

                    return commit

                suite.gated(i, "models.cold", measure)  # type: ignore[arg-type]
        finally:
            server.stop()
            suite.live_pids = list
        suite.compare("models.cold_ttft_vs_bare", cold, bare)
        # -- two models at once ---------------------------------------------------------
        k = CLIENTS_PER_MODEL
        tokens = cfg.server_tokens
        figs = {
            name: suite.fig(f"models.{name}", "tokens/s")
            for name in ("a_alone", "b_alone", "a_together", "b_together")
        }
        shares = suite.fig("models.two_vs_alone_rounds", "x")
        banned = {
            "model-a": _end_tokens(cfg.model),
            "model-b": _end_tokens(store / "b" / "model-b.gguf"),
        }
        server = _Server(store, [*common, "--parallel", str(k), "--keep-alive", "-1"])
        suite.live_pids = server.pids
        try:
            server.streams(["model-a", "model-b"], 4, banned)  # load both, warm up
            for i in suite.rounds():

                def measure2() -> object:
                    a = server.streams(["model-a"] * k, tokens, banned)["model-a"]
                    b = server.streams(["model-b"] * k, tokens, banned)["model-b"]
                    both = server.streams(["model-a", "model-b"] * k, tokens, banned)

                    def commit() -> None:
                        figs["a_alone"].add(a)
                        figs["b_alone"].add(b)
                        figs["a_together"].add(both["model-a"])
                        figs["b_together"].add(both["model-b"])
                        if a > 0 and b > 0:
                            shares.add(both["model-a"] / a + both["model-b"] / b)

                    return commit

                suite.gated(i, "models.two", measure2)  # type: ignore[arg-type]
        finally:
            server.stop()
            suite.live_pids = list
        suite.ratios["models.two_vs_alone"] = shares.median
