"""The benchmark suite: every measurement, both sides alternated, and the targets.

:func:`run_suite` runs the sections in order (import, load, decode, generate, chat,
parallel, server), each as warm-up rounds then ``runs`` measured rounds; in a round that has a
reference, llama.cpp's tool runs first and fireside right after (A B A B ...), so drift
on a shared machine hits both sides. It returns the results dict and the figures that
:mod:`fireside.bench.report` writes.
"""

from __future__ import annotations

import functools
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fireside.bench.busy import HOG_COMMAND
from fireside.bench.contention import ContentionMonitor
from fireside.bench.models import run_models
from fireside.bench.parallel import LEVELS as PARALLEL_LEVELS
from fireside.bench.parallel import STREAMS as PARALLEL_STREAMS
from fireside.bench.parallel import run_parallel
from fireside.bench.resume import run_resume
from fireside.bench.serve_resume import run_serve_resume
from fireside.bench.speculative import GROUNDED as SPECULATIVE_GROUNDED
from fireside.bench.speculative import comparisons as speculative_comparisons
from fireside.bench.speculative import run_speculative
from fireside.bench.stats import Figure, compared

if TYPE_CHECKING:
    from fireside.bench.clients import RoundResult
    from fireside.bench.reference import BatchedRow

log = logging.getLogger("fireside.bench")

SECTIONS = ("import", "load", "decode", "generate", "chat", "parallel", "server")
"""The sections a plain run measures."""
DOCS_SECTIONS = ("docs.index", "docs.search", "docs.update")
"""LocalDocs (:mod:`fireside.bench.docs`): asked for by name only."""
ALL_SECTIONS = (
    *SECTIONS,
    "busy",
    *DOCS_SECTIONS,
    "models",
    "speculative",
    "resume",
    "serve-resume",
)
"""``busy`` (:mod:`fireside.bench.busy`) loads a core on purpose: asked for by name only."""
LLAMA_SERVER_STREAMS = 8
"""The ``server`` section compares with ``llama-server -np 8`` at 8 streams (when 8 is
one of its concurrency levels and llama-server is built)."""


@dataclass
class BenchConfig:
    """What to measure and how often. :meth:`quick` gives a seconds-long smoke run."""

    model: Path
    threads: int
    out: Path
    quick: bool = False
    runs: int = 5
    warmup: int = 1
    reference_dir: Path | None = None
    use_reference: bool = True
    n_prompt: int = 512
    n_gen: int = 128
    chat_turns: int = 10
    chat_reply_tokens: int = 32
    concurrency: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    server_tokens: int = 128
    server_prompt_tokens: int = 32
    import_runs: int = 7
    max_other_cpu: float = 0.10
    """A round in which other processes took more than this share of all CPUs is redone."""
    retries: int = 3
    """How often a contended round is redone before it is kept anyway (and flagged)."""
    sections: tuple[str, ...] = SECTIONS
    busy_server: bool = True
    hog_command: tuple[str, ...] = HOG_COMMAND
    """The ``busy`` section's CPU hog (one core's busy loop)."""
    """The ``busy`` section also measures servers (``llama-server`` and ``fireside serve``)."""
    embedder: Path | None = None
    """The embedding model (GGUF) of the ``docs.*`` sections."""
    docs_index_chunks: int = 1000
    docs_search_sizes: list[int] = field(default_factory=lambda: [10_000, 100_000])
    docs_pool_vectors: int = 512
    """Real vectors the search collection's stand-in vectors are made from."""
    docs_queries: int = 30
    docs_update_files: int = 5000
    speculative_tokens: int = 128
    """Tokens generated per task by the ``speculative`` section."""
    resume_tokens: int = 8000
    """The conversation the ``resume`` and ``serve-resume`` sections resume (tokens, as
    rendered by the chat template; the context is 192 tokens larger)."""

    @classmethod
    def quick_config(cls, model: Path, threads: int, out: Path, **over: Any) -> BenchConfig:
        settings: dict[str, Any] = {
            "quick": True,
            "runs": 1,
            "warmup": 1,
            "n_prompt": 64,
            "n_gen": 16,
            "chat_turns": 3,
            "chat_reply_tokens": 8,
            "concurrency": [1, 2, 8],
            "server_tokens": 16,
            "server_prompt_tokens": 16,
            "import_runs": 2,
            "retries": 0,
            "docs_index_chunks": 24,
            "docs_search_sizes": [1500],
            "docs_pool_vectors": 16,
            "docs_queries": 6,
            "docs_update_files": 60,
            "speculative_tokens": 16,
            "resume_tokens": 600,
        }
        settings.update(over)
        return cls(model=model, threads=threads, out=out, **settings)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("model", "out", "reference_dir", "embedder"):
            data[key] = None if data[key] is None else str(data[key])
        data["sections"] = list(self.sections)
        return data


# (ratio key, label, ours figure, reference figure). llama-completion's "load time" also
# covers its context and a warm-up decode, so the load row has no reference.
COMPARISONS: list[tuple[str, str, str, str | None]] = [
    ("decode.pp", "decode only, prompt pp{P}", "ours.decode.pp", "reference.bench.pp"),
    ("decode.tg", "decode only, generation tg{G}", "ours.decode.tg", "reference.bench.tg"),
    (
        "generate.greedy",
        "generate() greedy, {G} tokens",
        "ours.generate.greedy",
        "reference.completion.greedy",
    ),
    (
        "generate.typical",
        "generate() typical sampling",
        "ours.generate.typical",
        "reference.completion.typical",
    ),
    ("load", "model load (fresh process)", "ours.load_s", None),
    (
        "docs.index",
        "LocalDocs indexing (read, chunk, embed, store) vs llama-embedding",
        "ours.docs.index.chunks_per_s",
        "reference.embedding.chunks_per_s",
    ),
    (
        "docs.embed",
        "Embedder.embed() of the same chunks vs llama-embedding",
        "ours.docs.embed.chunks_per_s",
        "reference.embedding.chunks_per_s",
    ),
]


RESUME_COMPARISONS = [
    (
        "resume.ttft_vs_reevaluate",
        "saved chat resumed (load + first token) vs re-evaluated (first token), fireside both",
        "resume.resumed_s",
        "resume.reevaluate_s",
    ),
    (
        "serve_resume.ttft_vs_reevaluate",
        "restarted server, --prompt-cache vs none: first token, fireside both",
        "serve_resume.resumed_s",
        "serve_resume.reevaluate_s",
    ),
]


@dataclass
class Target:
    key: str
    label: str
    op: str  # ">=" or "<="
    threshold: float

    def check(self, value: float | None) -> dict[str, Any]:
        met = (
            None
            if value is None
            else (value >= self.threshold if self.op == ">=" else value <= self.threshold)
        )
        return {**asdict(self), "ratio": self.key, "value": value, "met": met}


TARGETS = [
    Target("decode.pp", "decode-only pp vs llama-bench", ">=", 0.98),
    Target("decode.tg", "decode-only tg vs llama-bench", ">=", 0.98),
    Target("generate.greedy", "greedy generate() vs llama-completion eval", ">=", 0.97),
    Target(
        "generate.typical",
        "sampled generate() (top-k 40, top-p 0.95, min-p 0.05, temperature 0.8) "
        "vs llama-completion eval",
        ">=",
        0.97,
    ),
    Target("chat.ttft_last_over_first", "chat TTFT last turn / turn 1", "<=", 1.2),
    Target("server.c8_vs_batched", "server 8 streams vs llama-batched-bench 8 seqs", ">=", 0.9),
    Target("server.c8_vs_c1", "server 8 streams vs 1 stream", ">=", 1.5),
    Target(
        "server.c8_vs_llama_server", "server 8 streams vs llama-server -np 8, 8 streams", ">=", 0.95
    ),
    Target("parallel.c8_vs_c1", "8 threads on one Model(n_parallel=8) vs 1 thread", ">=", 1.5),
    Target(
        "parallel.c8_vs_batched",
        "8 threads on one Model(n_parallel=8) vs llama-batched-bench 8 seqs",
        ">=",
        0.9,
    ),
    Target("rss.overhead_mb", "RSS after load - file - KV (MB)", "<=", 80.0),
    Target("import_s", "import fireside (s)", "<=", 0.3),
    Target("docs.index", "LocalDocs indexing chunks/s vs llama-embedding", ">=", 0.9),
    Target("docs.search.hybrid_p50_ms", "hybrid search p50 (ms), largest collection", "<=", 50.0),
    Target("docs.update_s", "update() with one changed file (s)", "<=", 2.0),
]

BUSY_TARGETS = [
    Target(
        "busy.hog.generate_vs_completion",
        "one core busy: generate() auto vs llama-completion default threads",
        ">=",
        1.3,
    ),
    Target(
        "busy.hog.generate_vs_best_fixed",
        "one core busy: generate() auto vs the best fixed thread count",
        ">=",
        0.95,
    ),
    Target(
        "busy.idle.generate_vs_completion",
        "idle: generate() auto vs llama-completion default threads",
        ">=",
        0.97,
    ),
    Target(
        "busy.hog.server_vs_llama_server",
        "one core busy: server auto vs llama-server, 8 streams",
        ">=",
        1.3,
    ),
    Target(
        "busy.hog.server_vs_best_fixed",
        "one core busy: server auto vs the best fixed thread count, 8 streams",
        ">=",
        0.95,
    ),
    Target(
        "busy.idle.server_vs_llama_server",
        "idle: server auto vs llama-server, 8 streams",
        ">=",
        0.97,
    ),
]
"""Checked when the ``busy`` section ran."""

MODELS_TARGETS = [
    Target("models.cold_ttft_vs_bare", "first token, model not loaded, vs a bare load", "<=", 1.1),
    Target("models.two_vs_alone", "two models at once, share of each alone, summed", ">=", 0.9),
]
"""Checked when the ``models`` section (:mod:`fireside.bench.models`) ran."""

SPECULATIVE_TARGETS = [
    *(
        Target(
            f"speculative.{task}.vs_completion",
            f"speculative: {task} (input-grounded), generate() vs llama-completion",
            ">=",
            1.5,
        )
        for task in SPECULATIVE_GROUNDED
    ),
    Target(
        "speculative.identical",
        "speculative: greedy text identical (every mode, llama-completion, llama-lookup)",
        ">=",
        1.0,
    ),
    Target(
        "speculative.free.vs_plain",
        "speculative: free writing, generate() vs speculative=False",
        ">=",
        0.97,
    ),
]
"""Checked when the ``speculative`` section (:mod:`fireside.bench.speculative`) ran."""
RESUME_TARGETS = [
    Target(
        "resume.ttft_vs_reevaluate",
        "resumed saved chat (8,000 tokens): load + first token vs re-evaluating it",
        "<=",
        0.2,
    ),
]
"""Checked when the ``resume`` section (:mod:`fireside.bench.resume`) ran."""
SERVE_RESUME_TARGETS = [
    Target(
        "serve_resume.ttft_vs_reevaluate",
        "restarted server with --prompt-cache (8,000 tokens): first token vs re-evaluating",
        "<=",
        0.2,
    ),
]
"""Checked when the ``serve-resume`` section (:mod:`fireside.bench.serve_resume`) ran."""


class Suite:
    """Holds the figures while the sections run."""

    def __init__(self, config: BenchConfig, progress: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.figures: dict[str, Figure] = {}
        self.ratios: dict[str, float | None] = {}
        self.ratios_of_medians: dict[str, float | None] = {}
        self.ratio_inputs: dict[str, dict[str, str]] = {}
        """The two figures each compared ratio divides (so runs can be pooled later)."""
        self.skipped: dict[str, str] = {}
        self.notes: list[str] = []
        self._progress = progress or (lambda message: log.info(message))
        self.ref: Path | None = None
        self.live_pids: Callable[[], list[int]] = list
        self.monitor = ContentionMonitor(lambda: self.live_pids())
        self.repeated: dict[str, int] = {}  # rounds run again because of other processes
        self.contended: dict[str, int] = {}  # rounds kept although still contended
        self.model: Any = None  # fireside.model.Model, loaded once for decode/generate/chat

    def say(self, message: str) -> None:
        self._progress(message)

    def fig(self, key: str, unit: str, *, higher_is_better: bool = True) -> Figure:
        if key not in self.figures:
            self.figures[key] = Figure(key, unit, higher_is_better=higher_is_better)
        return self.figures[key]

    def compare(self, key: str, ours: Figure | None, reference: Figure | None) -> None:
        """Record ``ours / reference``: the median of the per-run (back-to-back) ratios,
        which a drifting machine load cannot bias, or the ratio of the medians when the
        runs do not pair up. Both are kept."""
        self.ratios[key], self.ratios_of_medians[key] = compared(ours, reference)
        if ours is not None and reference is not None:
            self.ratio_inputs[key] = {"ours": ours.name, "reference": reference.name}

    def rounds(self) -> range:
        return range(self.config.warmup + self.config.runs)

    def measured(self, i: int) -> bool:
        return i >= self.config.warmup

    def gated(self, i: int, what: str, measure: Callable[[], Callable[[], None]]) -> None:
        """Run round ``i``: ``measure()`` does the work and returns ``commit()``, which
        records it. A measured round during which other processes took more than
        ``max_other_cpu`` of the machine is run again (up to ``retries`` times); the
        other processes' share in the kept attempt is recorded."""
        cfg = self.config
        attempts = 1 + (cfg.retries if self.measured(i) else 0)
        share = None
        for attempt in range(attempts):
            self.monitor.start()
            commit = measure()
            share = self.monitor.share()
            if share is None or share <= cfg.max_other_cpu:
                break
            if attempt + 1 < attempts:
                self.repeated[what] = self.repeated.get(what, 0) + 1
            else:
                self.contended[what] = self.contended.get(what, 0) + 1
        if self.measured(i):
            commit()
            if share is not None:
                self.fig(f"machine.other_cpu.{what}", "%", higher_is_better=False).add(
                    100.0 * share
                )

    # -- sections ----------------------------------------------------------------------

    def run_import(self) -> None:
        from fireside.bench.resources import import_seconds

        fig = self.fig("ours.import_s", "s", higher_is_better=False)
        import_seconds()  # warm the file cache
        for _ in range(self.config.import_runs):
            fig.add(import_seconds())
        self.ratios["import_s"] = fig.median

    def run_load(self) -> None:
        from fireside.bench.resources import load_sample

        cfg = self.config
        load = self.fig("ours.load_s", "s", higher_is_better=False)
        rss = self.fig("ours.rss_after_load", "B", higher_is_better=False)
        rss_gen = self.fig("ours.rss_after_generate", "B", higher_is_better=False)
        over = self.fig("ours.rss_overhead_load", "B", higher_is_better=False)
        over_gen = self.fig("ours.rss_overhead_generate", "B", higher_is_better=False)
        samples = []

        def measure() -> Callable[[], None]:
            sample = load_sample(cfg.model, threads=cfg.threads)

            def commit() -> None:
                samples.append(sample)
                load.add(sample.load_s)
                rss.add(sample.rss_load)
                rss_gen.add(sample.rss_generate)
                over.add(sample.overhead_load)
                over_gen.add(sample.overhead_generate)

            return commit

        for i in self.rounds():
            self.gated(i, "load", measure)
        if samples:
            sample = samples[-1]
            self.fig("model.file_bytes", "B").add(sample.file_bytes)
            self.fig("model.kv_bytes", "B").add(sample.kv_bytes)
            self.fig("ours.rss_before_load", "B", higher_is_better=False).add(sample.rss_base)
            self.notes.append(
                f"memory: default context n_ctx={sample.n_ctx}; KV cache "
                f"{sample.kv_bytes / 1e6:.1f} MB; file {sample.file_bytes / 1e6:.1f} MB; "
                f"RSS before loading (Python, numpy, fireside) {sample.rss_base / 1e6:.1f} MB"
            )
        if over.median is not None:
            self.ratios["rss.overhead_mb"] = over.median / 1e6

    def _load_model(self) -> Any:
        if self.model is None:
            from fireside.model import Model

            self.model = Model(self.config.model, n_threads=self.config.threads)
        return self.model

    def run_decode(self) -> None:
        from fireside.bench import reference
        from fireside.bench.decode import DecodeBench

        cfg = self.config
        model = self._load_model()
        bench = DecodeBench(model.core, threads=cfg.threads, n_prompt=cfg.n_prompt, n_gen=cfg.n_gen)
        pp, tg = self.fig("ours.decode.pp", "t/s"), self.fig("ours.decode.tg", "t/s")
        rpp, rtg = self.fig("reference.bench.pp", "t/s"), self.fig("reference.bench.tg", "t/s")

        def measure() -> Callable[[], None]:
            got = None
            if self.ref is not None:
                got = reference.run_llama_bench(
                    self.ref, cfg.model, threads=cfg.threads, n_prompt=cfg.n_prompt, n_gen=cfg.n_gen
                )
            a, b = bench.prompt_tokens_per_second(), bench.generation_tokens_per_second()

            def commit() -> None:
                if got is not None:
                    rpp.samples += got[f"pp{cfg.n_prompt}"]
                    rtg.samples += got[f"tg{cfg.n_gen}"]
                pp.add(a)
                tg.add(b)

            return commit

        try:
            bench.warm_up()
            for i in self.rounds():
                self.gated(i, "decode", measure)
        finally:
            bench.close()
        self.compare("decode.pp", pp, rpp)
        self.compare("decode.tg", tg, rtg)

    def run_generate(self) -> None:
        from fireside.bench.generation import GREEDY, TYPICAL, eog_tokens

        model = self._load_model()
        ban = eog_tokens(model)
        for name, settings in (("greedy", GREEDY), ("typical", TYPICAL)):
            measure = functools.partial(self._generate_pair, model, name, settings, ban)
            for i in self.rounds():
                self.gated(i, f"generate.{name}", measure)
            self.compare(
                f"generate.{name}",
                self.figures.get(f"ours.generate.{name}"),
                self.figures.get(f"reference.completion.{name}"),
            )

    def _generate_pair(
        self, model: Any, name: str, settings: dict[str, Any], ban: list[int]
    ) -> Callable[[], None]:
        """llama-completion, then ``generate()``, with the same settings and seed."""
        from fireside.bench import reference
        from fireside.bench.generation import PROMPT, completion_sampling_args, run_generate

        cfg = self.config
        ours = self.fig(f"ours.generate.{name}", "t/s")
        seed = 1000 + ours.n
        t = None
        if self.ref is not None:
            t = reference.run_llama_completion(
                self.ref,
                cfg.model,
                PROMPT,
                threads=cfg.threads,
                n_predict=cfg.n_gen,
                n_ctx=model.n_ctx,
                sampling=completion_sampling_args(settings, seed),
            )
        sample = run_generate(model, n_gen=cfg.n_gen, settings=settings, ban=ban, seed=seed)
        if sample.n_tokens != cfg.n_gen:
            self.notes.append(
                f"generate {name}: {sample.n_tokens} tokens instead of {cfg.n_gen} "
                f"({sample.finish_reason})"
            )

        def commit() -> None:
            if t is not None:
                self.fig(f"reference.completion.{name}", "t/s").add(t.eval_tokens_per_second)
                if t.load_ms is not None:
                    self.fig("reference.completion.load_s", "s", higher_is_better=False).add(
                        t.load_ms / 1000.0
                    )
                if t.sampling_ms is not None:
                    self.fig(f"reference.completion.{name}.sampling_ms_per_token", "ms").add(
                        t.sampling_ms / max(1, t.eval_runs + 1)
                    )
            ours.add(sample.tokens_per_second)
            if sample.eval_tokens_per_second is not None:
                self.fig(f"ours.generate.{name}.llama_eval", "t/s").add(
                    sample.eval_tokens_per_second
                )
                self.fig(f"ours.generate.{name}.loop_share", "%", higher_is_better=False).add(
                    100.0 * (1.0 - sample.tokens_per_second / sample.eval_tokens_per_second)
                )

        return commit

    def run_chat(self) -> None:
        from fireside.bench.chat import chat_ttft

        cfg = self.config
        model = self._load_model()
        per_turn = [
            self.fig(f"ours.chat.ttft.turn{n + 1}", "s", higher_is_better=False)
            for n in range(cfg.chat_turns)
        ]

        idle = self.fig("ours.chat.idle_after_reply", "ms", higher_is_better=False)

        def measure() -> Callable[[], None]:
            waits: list[float] = []
            times = chat_ttft(
                model, turns=cfg.chat_turns, reply_tokens=cfg.chat_reply_tokens, idle_ms=waits
            )

            def commit() -> None:
                for fig, t in zip(per_turn, times):
                    fig.add(t)
                if waits:
                    idle.add(sorted(waits)[len(waits) // 2])

            return commit

        for i in self.rounds():
            self.gated(i, "chat", measure)
        # each round times both turns of one chat: a pair
        self.compare("chat.ttft_last_over_first", per_turn[-1], per_turn[0])

    def run_server(self) -> None:
        from fireside.bench import reference
        from fireside.bench.llama_server import LlamaServerBench
        from fireside.bench.serving import ServerBench

        cfg = self.config
        levels = list(cfg.concurrency)
        n_ctx = max(levels) * (cfg.server_prompt_tokens + cfg.server_tokens + 64)
        bench = ServerBench(
            cfg.model,
            threads=cfg.threads,
            parallel=max(levels),
            n_ctx=n_ctx,
            prompt_tokens=cfg.server_prompt_tokens,
            max_tokens=cfg.server_tokens,
        )
        llama = None  # llama-server -np 8, measured at 8 streams next to fireside
        if self.ref is not None and LLAMA_SERVER_STREAMS in levels:
            if (self.ref / "llama-server").is_file():
                llama = LlamaServerBench(
                    self.ref,
                    cfg.model,
                    threads=cfg.threads,
                    parallel=LLAMA_SERVER_STREAMS,
                    n_ctx=LLAMA_SERVER_STREAMS * bench.ctx_per_slot,
                    prompt_tokens=cfg.server_prompt_tokens,
                    max_tokens=cfg.server_tokens,
                )
            else:
                self.notes.append(
                    "server: llama-server is not built (python benchmarks/build_reference.py); "
                    "no comparison with it"
                )

        def measure(n: int, i: int) -> Callable[[], None]:
            def batched() -> list[BatchedRow]:
                if self.ref is None:
                    return []
                return reference.run_batched_bench(
                    self.ref,
                    cfg.model,
                    threads=cfg.threads,
                    n_prompt=bench.prompt_token_count,
                    n_gen=cfg.server_tokens,
                    parallel=[n],
                    n_ctx=n_ctx,
                )

            def llama_round() -> RoundResult | None:
                if llama is None or n != LLAMA_SERVER_STREAMS:
                    return None
                return llama.round(n)[0]

            # the order flips each round (the references, then fireside; then the other
            # way), so that whatever favours a place in it favours both sides alike
            if i % 2 == 0:
                rows, theirs = batched(), llama_round()
                got, per_step = bench.round(n)
            else:
                got, per_step = bench.round(n)
                theirs, rows = llama_round(), batched()

            def commit() -> None:
                for row in rows:
                    self.fig(f"reference.batched.s_tg.c{row.b}", "t/s").add(row.s_tg)
                if theirs is not None:
                    self.fig(f"reference.llama_server.c{n}", "t/s").add(
                        theirs.steady_tokens_per_second
                    )
                self.fig(f"server.aggregate.c{n}", "t/s").add(got.steady_tokens_per_second)
                self.fig(f"server.wall.c{n}", "t/s").add(got.wall_tokens_per_second)
                if per_step is not None:
                    self.fig(f"server.sequences_per_step.c{n}", "seq").add(per_step)

            return commit

        self.live_pids = lambda: bench.pids() + (llama.pids() if llama is not None else [])
        try:
            bench.start()
            bench.warm_up()
            if llama is not None:
                llama.start()
                llama.warm_up()
            for i in self.rounds():
                for n in levels:
                    self.gated(i, f"server.c{n}", functools.partial(measure, n, i))
        finally:
            self.live_pids = list
            bench.stop()
            if llama is not None:
                llama.stop()
        for n in levels:
            self.compare(
                f"server.c{n}_vs_batched",
                self.figures.get(f"server.aggregate.c{n}"),
                self.figures.get(f"reference.batched.s_tg.c{n}"),
            )
        if 1 in levels and 8 in levels:
            self.compare(
                "server.c8_vs_c1",
                self.figures["server.aggregate.c8"],
                self.figures["server.aggregate.c1"],
            )
        n = LLAMA_SERVER_STREAMS
        self.compare(
            f"server.c{n}_vs_llama_server",
            self.figures.get(f"server.aggregate.c{n}"),
            self.figures.get(f"reference.llama_server.c{n}"),
        )

    def run_busy(self) -> None:
        from fireside.bench.busy import run_busy

        run_busy(self)

    # -- the whole run -----------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        from fireside.bench import docs
        from fireside.bench.machine import machine_info, versions
        from fireside.bench.reference import find_reference_dir

        cfg = self.config
        if not cfg.use_reference:
            self.skipped["reference"] = "not used (--no-reference); fireside's side only"
        else:
            self.ref = find_reference_dir(cfg.reference_dir)
            if self.ref is None:
                self.skipped["reference"] = (
                    "llama.cpp's tools are not built (python benchmarks/build_reference.py); "
                    "fireside's side only"
                )
        runners: dict[str, Callable[[], None]] = {
            "import": self.run_import,
            "load": self.run_load,
            "decode": self.run_decode,
            "generate": self.run_generate,
            "chat": self.run_chat,
            "parallel": functools.partial(run_parallel, self),
            "server": self.run_server,
            "busy": self.run_busy,
            "models": functools.partial(run_models, self),
            "speculative": functools.partial(run_speculative, self),
            "resume": functools.partial(run_resume, self),
            "serve-resume": functools.partial(run_serve_resume, self),
            "docs.index": functools.partial(docs.run_index, self),
            "docs.search": functools.partial(docs.run_search, self),
            "docs.update": functools.partial(docs.run_update, self),
        }
        started = time.time()
        try:
            for name in cfg.sections:
                self.say(f"bench: {name} ...")
                t0 = time.perf_counter()
                try:
                    runners[name]()
                except Exception as e:
                    log.debug("section %s failed", name, exc_info=True)
                    self.skipped[name] = f"failed: {type(e).__name__}: {e}"
                    self.notes.append(f"{name}: {traceback.format_exc(limit=3).strip()[-600:]}")
                self.say(f"bench: {name} done in {time.perf_counter() - t0:.1f} s")
        finally:
            if self.model is not None:
                self.model.close()
        return self.results(machine_info(), versions(), started)

    def results(
        self, machine: dict[str, Any], vers: dict[str, Any], started: float
    ) -> dict[str, Any]:
        cfg = self.config
        comparisons = []
        for key, label, ours, ref in COMPARISONS:
            if ours in self.figures:
                comparisons.append(
                    {
                        "ratio": key,
                        "label": label.format(P=cfg.n_prompt, G=cfg.n_gen),
                        "ours": ours,
                        "reference": ref if ref is not None and ref in self.figures else None,
                    }
                )
        for n in PARALLEL_LEVELS:
            if f"parallel.aggregate.c{n}" in self.figures:
                ref_key = f"reference.batched_parallel.s_tg.c{n}"
                comparisons.append(
                    {
                        "ratio": f"parallel.c{n}_vs_batched",
                        "label": f"{n} thread{'s' if n > 1 else ''} on one "
                        f"Model(n_parallel={PARALLEL_STREAMS}) "
                        "(aggregate) vs llama-batched-bench",
                        "ours": f"parallel.aggregate.c{n}",
                        "reference": ref_key if ref_key in self.figures else None,
                    }
                )
        for n in cfg.concurrency:
            if f"server.aggregate.c{n}" in self.figures:
                comparisons.append(
                    {
                        "ratio": f"server.c{n}_vs_batched",
                        "label": f"server, {n} streams (aggregate)",
                        "ours": f"server.aggregate.c{n}",
                        "reference": f"reference.batched.s_tg.c{n}",
                    }
                )
        n = LLAMA_SERVER_STREAMS
        if f"reference.llama_server.c{n}" in self.figures:
            comparisons.append(
                {
                    "ratio": f"server.c{n}_vs_llama_server",
                    "label": f"server, {n} streams (aggregate) vs llama-server -np {n}",
                    "ours": f"server.aggregate.c{n}",
                    "reference": f"reference.llama_server.c{n}",
                }
            )
        comparisons += self._busy_comparisons()
        comparisons += speculative_comparisons(self.figures)
        for key, label, ours, reference in RESUME_COMPARISONS:
            if ours in self.figures:
                comparisons.append(
                    {"ratio": key, "label": label, "ours": ours, "reference": reference}
                )
        targets = TARGETS + (BUSY_TARGETS if "busy" in cfg.sections else [])
        targets += MODELS_TARGETS if "models" in cfg.sections else []
        targets += SPECULATIVE_TARGETS if "speculative" in cfg.sections else []
        targets += RESUME_TARGETS if "resume" in cfg.sections else []
        targets += SERVE_RESUME_TARGETS if "serve-resume" in cfg.sections else []
        return {
            "fireside_bench": 1,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "duration_s": time.time() - started,
            "machine": machine,
            "versions": vers,
            "model": {
                "path": str(cfg.model),
                "name": cfg.model.name,
                "bytes": cfg.model.stat().st_size,
            },
            "config": cfg.to_json(),
            "reference_dir": str(self.ref) if self.ref else None,
            "comparisons": comparisons,
            "ratios": self.ratios,
            "ratios_of_medians": self.ratios_of_medians,
            "ratio_inputs": self.ratio_inputs,
            "targets": [t.check(self.ratios.get(t.key)) for t in targets],
            "contention": {
                "max_other_cpu": cfg.max_other_cpu,
                "rounds_repeated": self.repeated,
                "rounds_kept_contended": self.contended,
            },
            "skipped": self.skipped,
            "notes": self.notes,
        }

    def _busy_comparisons(self) -> list[dict[str, Any]]:
        rows = []
        for load, what in (("idle", "idle"), ("hog", "one core busy")):
            for side, ref, ref_label in (
                ("generate", "completion", "llama-completion, default threads"),
                ("server", "llama_server", "llama-server, default threads, 8 streams"),
            ):
                prefix = f"busy.{load}.{side}"
                if f"{prefix}.auto" not in self.figures:
                    continue
                label = "generate()" if side == "generate" else "server, 8 streams"
                rows.append(
                    {
                        "ratio": f"{prefix}_vs_{'completion' if side == 'generate' else 'llama_server'}",
                        "label": f"{what}: {label} auto vs {ref_label}",
                        "ours": f"{prefix}.auto",
                        "reference": f"{prefix}.{ref}"
                        if f"{prefix}.{ref}" in self.figures
                        else None,
                    }
                )
                rows.append(
                    {
                        "ratio": f"{prefix}_vs_best_fixed",
                        "label": f"{what}: {label} auto vs the best fixed thread count",
                        "ours": f"{prefix}.auto",
                        "reference": f"{prefix}.best_fixed"
                        if f"{prefix}.best_fixed" in self.figures
                        else None,
                    }
                )
        return rows


def run_suite(
    config: BenchConfig, progress: Callable[[str], None] | None = None
) -> tuple[dict[str, Any], dict[str, Figure]]:
    """Run the configured sections; ``(results, figures)`` for :func:`report.write`."""
    suite = Suite(config, progress)
    results = suite.run()
    return results, suite.figures
