"""Server counters, rendered in the Prometheus text format at ``GET /metrics``.

Counters only grow; gauges (queue depth, active slots) are read from the engine when the
page is rendered. Every update takes one lock, so the compute thread (the steps) and the event loop
may both record. The counters are also the proof of batching: ``decode_sequences_total /
decode_steps_total`` is the mean number of sequences per decode step.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fireside.generation.prompt_cache import PromptCacheStats
    from fireside.generation.threads import ThreadStats

TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Upper bounds (seconds) of the time-to-first-token histogram buckets."""


class Histogram:
    """A cumulative Prometheus histogram with fixed bucket bounds."""

    def __init__(self, bounds: Iterable[float]) -> None:
        self.bounds = tuple(sorted(bounds))
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str) -> list[str]:
        out, running = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts):
            running += n
            le = "+Inf" if bound == float("inf") else repr(bound)
            out.append(f'{name}_bucket{{le="{le}"}} {running}')
        out.append(f"{name}_sum {self.sum:.6f}")
        out.append(f"{name}_count {self.count}")
        return out


class Metrics:
    """Everything the server counts. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()  # by endpoint
        self.errors: Counter[int] = Counter()  # by HTTP status
        self.finished: Counter[str] = Counter()  # generations by finish reason
        self.prompt_tokens = 0
        self.prompt_tokens_cached = 0
        self.completion_tokens = 0
        self.decode_steps = 0
        self.decode_tokens = 0
        self.decode_sequences = 0
        self.decode_sequences_max = 0
        self.decode_graphs = 0
        self.draft_tokens = 0
        self.draft_tokens_accepted = 0
        self.realigned_tokens = 0
        self.ttft = Histogram(TTFT_BUCKETS)
        self._threads: Callable[[], ThreadStats] | None = None
        self._prompt_cache: Callable[[], PromptCacheStats] | None = None

    def watch_threads(self, stats: Callable[[], ThreadStats]) -> None:
        """Show the engine's thread policy (``stats()`` is read at each render)."""
        self._threads = stats

    def watch_prompt_cache(self, stats: Callable[[], PromptCacheStats]) -> None:
        """Show the prompt cache on disk (``stats()`` is read at each render)."""
        self._prompt_cache = stats

    def request(self, endpoint: str) -> None:
        with self._lock:
            self.requests[endpoint] += 1

    def error(self, status: int) -> None:
        with self._lock:
            self.errors[status] += 1

    def admitted(self, n_prompt: int, n_cached: int) -> None:
        """A generation got a slot; ``n_cached`` prompt tokens were already in its cache."""
        with self._lock:
            self.prompt_tokens += n_prompt
            self.prompt_tokens_cached += n_cached

    def first_token(self, seconds: float) -> None:
        with self._lock:
            self.ttft.observe(seconds)

    def step(self, n_tokens: int, n_sequences: int) -> None:
        """One decode call of ``n_tokens`` tokens from ``n_sequences`` sequences."""
        with self._lock:
            self.decode_steps += 1
            self.decode_tokens += n_tokens
            self.decode_sequences += n_sequences
            self.decode_sequences_max = max(self.decode_sequences_max, n_sequences)

    def graphs(self, n_graphs: int) -> None:
        """A decode call of generated tokens computed ``n_graphs`` graphs (one per run of
        consecutive sequence ids)."""
        with self._lock:
            self.decode_graphs += n_graphs

    def speculated(self, n_drafted: int, n_accepted: int) -> None:
        """A draft of ``n_drafted`` tokens was verified; ``n_accepted`` were kept."""
        with self._lock:
            self.draft_tokens += n_drafted
            self.draft_tokens_accepted += n_accepted

    def realigned(self, n_tokens: int) -> None:
        """``n_tokens`` of a finished reply were evaluated again while idle."""
        with self._lock:
            self.realigned_tokens += n_tokens

    def finish(self, reason: str, n_completion: int) -> None:
        with self._lock:
            self.finished[reason] += 1
            self.completion_tokens += n_completion

    def render(self, *, queue_depth: int, slots_active: int, slots_total: int) -> str:
        """The Prometheus text exposition of every metric."""
        lines: list[str] = []

        def metric(name: str, kind: str, help_: str, samples: Iterable[str]) -> None:
            lines.append(f"# HELP fireside_{name} {help_}")
            lines.append(f"# TYPE fireside_{name} {kind}")
            lines.extend(f"fireside_{s}" for s in samples)

        with self._lock:
            metric(
                "requests_total",
                "counter",
                "HTTP requests received, by endpoint.",
                [f'requests_total{{endpoint="{k}"}} {v}' for k, v in sorted(self.requests.items())],
            )
            metric(
                "request_errors_total",
                "counter",
                "Requests answered with an error, by HTTP status.",
                [
                    f'request_errors_total{{status="{k}"}} {v}'
                    for k, v in sorted(self.errors.items())
                ],
            )
            metric(
                "generations_total",
                "counter",
                "Finished generations, by finish reason.",
                [
                    f'generations_total{{reason="{k}"}} {v}'
                    for k, v in sorted(self.finished.items())
                ],
            )
            simple = [
                ("prompt_tokens_total", "Prompt tokens of admitted generations.",
                 self.prompt_tokens),
                ("prompt_tokens_cached_total",
                 "Prompt tokens reused from a slot's KV cache (not evaluated again).",
                 self.prompt_tokens_cached),
                ("completion_tokens_total", "Tokens generated.", self.completion_tokens),
                ("decode_steps_total", "Batched decode calls.", self.decode_steps),
                ("decode_tokens_total", "Tokens evaluated by decode calls.", self.decode_tokens),
                ("decode_sequences_total",
                 "Sum over decode calls of the sequences in the batch.", self.decode_sequences),
                ("decode_graphs_total",
                 "Graphs of decode calls of generated tokens (one per run of adjacent slots).",
                 self.decode_graphs),
                ("draft_tokens_total", "Tokens drafted ahead by speculative decoding.",
                 self.draft_tokens),
                ("draft_tokens_accepted_total",
                 "Drafted tokens the model confirmed (each saved a decode step).",
                 self.draft_tokens_accepted),
                ("realigned_tokens_total",
                 "Chat reply tokens evaluated again while idle, for the next turn to reuse.",
                 self.realigned_tokens),
            ]  # fmt: skip
            for name, help_, value in simple:
                metric(name, "counter", help_, [f"{name} {value}"])
            metric(
                "decode_sequences_max",
                "gauge",
                "The most sequences decoded together in one step.",
                [f"decode_sequences_max {self.decode_sequences_max}"],
            )
            metric(
                "time_to_first_token_seconds",
                "histogram",
                "From a request's submission to the engine to its first generated token.",
                self.ttft.lines("time_to_first_token_seconds"),
            )
        metric(
            "queue_depth", "gauge", "Requests waiting for a slot.", [f"queue_depth {queue_depth}"]
        )
        metric("slots_active", "gauge", "Slots generating now.", [f"slots_active {slots_active}"])
        metric("slots_total", "gauge", "Parallel slots.", [f"slots_total {slots_total}"])
        if self._threads is not None:
            self._thread_lines(metric, self._threads())
        if self._prompt_cache is not None:
            self._prompt_cache_lines(metric, self._prompt_cache())
        return "\n".join(lines) + "\n"

    @staticmethod
    def _prompt_cache_lines(
        metric: Callable[[str, str, str, Iterable[str]], None], c: PromptCacheStats
    ) -> None:
        rows = [
            ("prompt_cache_hits_total", "counter",
             "Prompts whose prefix was restored from the prompt cache on disk.", c.hits),
            ("prompt_cache_misses_total", "counter",
             "Prompts looked up in the prompt cache and not found there.", c.misses),
            ("prompt_cache_tokens_restored_total", "counter",
             "Prompt tokens restored from disk instead of evaluated.", c.tokens_restored),
            ("prompt_cache_saves_total", "counter", "Prompt prefixes written to disk.", c.saves),
            ("prompt_cache_rejected_total", "counter",
             "Cache files found stale or damaged, ignored and removed.", c.rejected),
            ("prompt_cache_evictions_total", "counter",
             "Cache files removed to stay within the size bound.", c.evictions),
            ("prompt_cache_bytes", "gauge", "Bytes of prompt cache files on disk.", c.bytes),
            ("prompt_cache_files", "gauge", "Prompt cache files on disk.", c.files),
            ("prompt_cache_max_bytes", "gauge", "The prompt cache's size bound.", c.max_bytes),
        ]  # fmt: skip
        for name, kind, help_, value in rows:
            metric(name, kind, help_, [f"{name} {value}"])

    @staticmethod
    def _thread_lines(
        metric: Callable[[str, str, str, Iterable[str]], None], t: ThreadStats
    ) -> None:
        metric(
            "threads",
            "gauge",
            "CPU threads in use, for generation and for prompts (batch).",
            [
                f'threads{{kind="generation"}} {t.n_threads}',
                f'threads{{kind="batch"}} {t.n_threads_batch}',
            ],
        )
        metric(
            "threads_max",
            "gauge",
            "The most threads the policy may use.",
            [f"threads_max {t.max_threads}"],
        )
        metric(
            "threads_auto",
            "gauge",
            "1 when the thread counts follow the machine's load (n_threads='auto').",
            [f"threads_auto {int(t.auto)}"],
        )
        metric(
            "thread_changes_total",
            "counter",
            "Times the thread policy changed a count.",
            [f"thread_changes_total {t.changes}"],
        )
        metric(
            "thread_probes_total",
            "counter",
            "Measurement windows run at a probed thread count.",
            [f"thread_probes_total {t.probes}"],
        )
        metric(
            "thread_probes_adopted_total",
            "counter",
            "Probed thread counts that were faster and adopted.",
            [f"thread_probes_adopted_total {t.probes_won}"],
        )
