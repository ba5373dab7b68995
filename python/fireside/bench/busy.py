"""The ``busy`` section: generation speed while another process keeps one core busy.

On a desktop something always uses some CPU, and llama.cpp's threads spin at every graph
barrier, so a fixed "all physical cores" thread count collapses as soon as one core is
taken. This section measures what ``n_threads="auto"`` (:mod:`fireside.generation.threads`)
does about it, under two loads, each measured in its own block of rounds:

* ``idle``: nothing but the benchmark;
* ``hog``: a :class:`CpuHog` (a busy loop in its own process, started and stopped by the
  section) occupies one core.

Each round runs, back to back: llama.cpp's own tool with **its default threads** (the
physical cores), then fireside with ``"auto"`` and with every fixed count from 1 to the
physical cores, in an order that rotates from round to round (so that no variant always
runs first, or right after the other process; in the server part llama-server rotates
with them). The library part compares ``llama-completion``'s
eval rate with ``Model.generate()`` (greedy, end-of-generation banned, as in the
``generate`` section); the server part compares ``llama-server`` with ``fireside serve``
at :data:`STREAMS` concurrent streams (steady aggregate tokens/s, as in the ``server``
section). The same fireside models and servers stay up across both loads: the policy
adapts while they run, as it would in an application (one warm-up round per load
gives it time to).

Ratios (median of per-round ratios): ``busy.<load>.generate_vs_completion``,
``busy.<load>.generate_vs_best_fixed`` (against the fastest fixed count of each round),
and the same for ``server``. Contention gating still applies, with the hog's (and the
servers') CPU not counted as "other".
"""

from __future__ import annotations

import functools
import http.client
import itertools
import re
import subprocess
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fireside.bench.llama_server import LlamaServerBench
from fireside.bench.serving import ServerBench

if TYPE_CHECKING:
    from fireside.bench.suite import Suite

STREAMS = 8
"""Concurrent streams in the server part."""

LOADS = ("idle", "hog")

_THREADS_LINE = re.compile(r'^fireside_threads\{kind="generation"\} (\d+)$', re.MULTILINE)


HOG_COMMAND = (sys.executable, "-c", "while True: pass")


class CpuHog:
    """A busy loop in its own process: takes one core until :meth:`stop`.

    ``command`` replaces the busy loop (a smoke run of the section uses a sleeping one).
    """

    def __init__(self, command: tuple[str, ...] = HOG_COMMAND) -> None:
        self.command = command
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self._proc is not None:
            raise RuntimeError("the hog is already running")
        self._proc = subprocess.Popen(
            list(self.command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.kill()
        proc.wait(15)


def server_threads(bench: ServerBench) -> int | None:
    """The generation threads a fireside server reports in ``/metrics``."""
    conn = http.client.HTTPConnection(bench.host, bench.port, timeout=30)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        conn.close()
    m = _THREADS_LINE.search(text)
    return int(m.group(1)) if m else None


def rotated(names: list[str], turn: int) -> list[str]:
    """``names`` starting at position ``turn`` (modulo their number)."""
    k = turn % len(names)
    return names[k:] + names[:k]


def _best_of_round(suite: Suite, prefix: str, counts: range) -> None:
    """``<prefix>.best_fixed``: per round, the fastest fixed count's rate."""
    figs = [suite.figures.get(f"{prefix}.fixed{k}") for k in counts]
    if not figs or any(f is None or not f.samples for f in figs):
        return
    best = suite.fig(f"{prefix}.best_fixed", "t/s")
    best.samples = [max(values) for values in zip(*(f.samples for f in figs if f is not None))]


def run_busy(suite: Suite) -> None:
    """The whole section (see the module docstring)."""
    cfg = suite.config
    counts = range(1, cfg.threads + 1)
    hog = CpuHog(cfg.hog_command)
    live: list[Callable[[], list[int]]] = [lambda: [p] if (p := hog.pid) is not None else []]
    suite.live_pids = lambda: [pid for f in live for pid in f()]
    try:
        _library(suite, hog, counts)
        if cfg.busy_server:
            _servers(suite, hog, counts, live)
    finally:
        hog.stop()
        suite.live_pids = list


def _library(suite: Suite, hog: CpuHog, counts: range) -> None:
    from fireside.bench import reference
    from fireside.bench.generation import GREEDY, PROMPT, eog_tokens, run_generate
    from fireside.model import Model

    cfg = suite.config
    n_ctx = 4 * cfg.n_gen + 256
    models: dict[str, Any] = {}
    try:
        models["auto"] = Model(cfg.model, n_ctx=n_ctx)  # n_threads="auto", the default
        for k in counts:
            models[f"fixed{k}"] = Model(cfg.model, n_ctx=n_ctx, n_threads=k)
        ban = eog_tokens(models["auto"])
        turns = itertools.count()

        def measure(load: str) -> Callable[[], None]:
            t = None
            if suite.ref is not None:
                t = reference.run_llama_completion(
                    suite.ref, cfg.model, PROMPT, threads=None, n_predict=cfg.n_gen, n_ctx=n_ctx
                )
            rates = {
                name: run_generate(
                    models[name], n_gen=cfg.n_gen, settings=GREEDY, ban=ban
                ).tokens_per_second
                for name in rotated(list(models), next(turns))
            }
            threads = models["auto"].n_threads

            def commit() -> None:
                prefix = f"busy.{load}.generate"
                if t is not None:
                    suite.fig(f"{prefix}.completion", "t/s").add(t.eval_tokens_per_second)
                for name, rate in rates.items():
                    suite.fig(f"{prefix}.{name}", "t/s").add(rate)
                suite.fig(f"{prefix}.auto_threads", "threads").add(threads)

            return commit

        for load in LOADS:
            _with_load(suite, hog, load, functools.partial(measure, load), f"busy.{load}.generate")
            prefix = f"busy.{load}.generate"
            _best_of_round(suite, prefix, counts)
            suite.compare(
                f"{prefix}_vs_completion",
                suite.figures.get(f"{prefix}.auto"),
                suite.figures.get(f"{prefix}.completion"),
            )
            suite.compare(
                f"{prefix}_vs_best_fixed",
                suite.figures.get(f"{prefix}.auto"),
                suite.figures.get(f"{prefix}.best_fixed"),
            )
        stats = models["auto"].thread_stats
        suite.notes.append(
            f"busy generate: auto policy {stats.changes} changes, {stats.probes} probe "
            f"windows ({stats.probes_won} adopted) over {stats.windows} windows"
        )
    finally:
        for m in models.values():
            m.close()


def _servers(suite: Suite, hog: CpuHog, counts: range, live: list[Callable[[], list[int]]]) -> None:
    cfg = suite.config
    options: dict[str, Any] = {
        "parallel": STREAMS,
        "n_ctx": STREAMS * (cfg.server_prompt_tokens + cfg.server_tokens + 64),
        "prompt_tokens": cfg.server_prompt_tokens,
        "max_tokens": cfg.server_tokens,
    }
    benches: dict[str, ServerBench] = {}
    if suite.ref is not None and (suite.ref / "llama-server").is_file():
        benches["llama_server"] = LlamaServerBench(suite.ref, cfg.model, **options)
    elif suite.ref is not None:
        suite.notes.append("busy server: llama-server is not built; fireside's side only")
    benches["auto"] = ServerBench(cfg.model, threads=None, **options)
    for k in counts:
        benches[f"fixed{k}"] = ServerBench(cfg.model, threads=k, **options)
    live.append(lambda: [pid for b in benches.values() for pid in b.pids()])
    try:
        for bench in benches.values():
            bench.start()
            bench.warm_up()

        turns = itertools.count()

        def measure(load: str) -> Callable[[], None]:
            rates = {
                name: benches[name].round(STREAMS)[0].steady_tokens_per_second
                for name in rotated(list(benches), next(turns))
            }
            threads = server_threads(benches["auto"])

            def commit() -> None:
                prefix = f"busy.{load}.server"
                for name, rate in rates.items():
                    suite.fig(f"{prefix}.{name}", "t/s").add(rate)
                if threads is not None:
                    suite.fig(f"{prefix}.auto_threads", "threads").add(threads)

            return commit

        for load in LOADS:
            _with_load(suite, hog, load, functools.partial(measure, load), f"busy.{load}.server")
            prefix = f"busy.{load}.server"
            _best_of_round(suite, prefix, counts)
            suite.compare(
                f"{prefix}_vs_llama_server",
                suite.figures.get(f"{prefix}.auto"),
                suite.figures.get(f"{prefix}.llama_server"),
            )
            suite.compare(
                f"{prefix}_vs_best_fixed",
                suite.figures.get(f"{prefix}.auto"),
                suite.figures.get(f"{prefix}.best_fixed"),
            )
    finally:
        for bench in benches.values():
            bench.stop()


def _with_load(
    suite: Suite, hog: CpuHog, load: str, measure: Callable[[], Callable[[], None]], what: str
) -> None:
    """Warm-up and measured rounds of ``measure`` with the hog running (``hog``) or not."""
    if load == "hog":
        hog.start()
    try:
        for i in suite.rounds():
            suite.gated(i, what, measure)
    finally:
        hog.stop()
