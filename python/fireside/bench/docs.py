"""LocalDocs benchmarks: indexing against ``llama-embedding``, search latency, ``update()``.

Three sections of the suite, not in its default run (``--sections
docs.index,docs.search,docs.update``), all on real text (:mod:`fireside.bench.docs_corpus`)
and the embedding model all-MiniLM-L6-v2:

- ``docs.index``: a fresh collection indexes real files (read, chunk, embed, write);
  chunks/s and tokens/s against ``llama-embedding`` embedding the same chunk texts with
  the same model, threads and batch size (its own ``prompt eval time``: compute only, no
  load, no tokenizing). The embedder is loaded before the clock starts. Alternated A B.
- ``docs.search``: hybrid, keyword and vector ``Collection.search(k=5)`` latency (p50,
  p95 over the queries and runs) at each collection size. The collection is built by the
  real indexing code; only its chunk *vectors* come from a stand-in (:class:`StandIn`:
  real MiniLM vectors of a sample of the chunks, reused with a little noise), because
  embedding 100k chunks takes hours on two cores. The query is embedded by the real
  model, inside the measured time.
- ``docs.update``: ``update()`` of a collection of small real-text files (5,000 in a full
  run) after one file changed, with the real embedder; and with nothing changed.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from fireside import _core
from fireside.bench.docs_corpus import Document, chunk_texts, documents
from fireside.embeddings import Embedder

if TYPE_CHECKING:
    from fireside.bench.suite import Suite

DOCS_SECTIONS = ("docs.index", "docs.search", "docs.update")
"""The LocalDocs sections (run only when named)."""
SEPARATOR = "\n<<<fireside-chunk>>>\n"
"""Between chunk texts in ``llama-embedding``'s prompt file (``--embd-separator``)."""

QUERIES = [
    "How do I list files sorted by modification time?",
    "what does the -r option of cp do",
    "How can I change the owner and group of files recursively?",
    "set a timeout on a socket connection",
    "read a file line by line and decode it as utf-8",
    "which signal terminates a process and cannot be caught",
    "How are environment variables passed to a child process?",
    "parse command line arguments with subcommands",
    "What is the default compression level?",
    "How does the garbage collector handle reference cycles?",
    "mount a filesystem read-only",
    "Which file holds the list of users and their home directories?",
    "convert a date string to a timestamp",
    "how to compare two files and show the differences",
    "what happens when the disk is full while writing",
    "regular expression to match an email address",
    "How do I create a temporary directory that is removed afterwards?",
    "format a number with thousands separators",
    "Which options control the verbosity of the output?",
    "error: permission denied when opening the file",
    "What does a return value of -1 mean and how is errno set?",
    "run a command at a fixed time every day",
    "How is the changelog of a Debian package organised?",
    "encrypt and decrypt data with a password",
    "How do I make an HTTP request with a custom header?",
    "limit the memory a process may use",
    "what is the difference between a hard link and a symbolic link",
    "serialize an object to JSON and read it back",
    "How can a thread wait until another thread finishes?",
    "Which security fixes were made in the latest release?",
]
"""Questions a user of such a collection might ask (manual pages, package documentation,
Python's library); none of them was tuned to the corpus."""


# -- real files --------------------------------------------------------------------------


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def write_corpus(
    folder: Path, n_chunks: int, docs: Iterator[Document], *, prefix: str = ""
) -> tuple[list[Path], list[str]]:
    """Write whole real documents into ``folder`` until they give ``n_chunks`` chunks (the
    last one may give a few more); the files and their chunk texts, in order."""
    folder.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    texts: list[str] = []
    for doc in docs:
        chunks = chunk_texts(doc)
        if not chunks:
            continue
        path = folder / f"{prefix}{len(files):05d}-{_safe_name(doc.name)}"
        path.write_bytes(doc.data)
        files.append(path)
        texts += chunks
        if len(texts) >= n_chunks:
            return files, texts
    raise ValueError(f"this machine's documents give only {len(texts)} chunks, not {n_chunks}")


def write_small_files(folder: Path, n_files: int, docs: Iterator[Document]) -> list[Path]:
    """``n_files`` small text files (a few hundred characters each: about one chunk), cut
    at line ends from real documents."""
    folder.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    for doc in docs:
        text = doc.data.decode("utf-8", errors="replace")
        piece: list[str] = []
        size = 0
        for line in text.splitlines(keepends=True):
            piece.append(line)
            size += len(line)
            if size >= 300:
                body = "".join(piece).strip()
                piece, size = [], 0
                if len(body) < 100:
                    continue
                path = folder / f"{len(files) // 500:02d}" / f"{len(files):05d}.txt"
                path.parent.mkdir(exist_ok=True)
                path.write_text(body[:1500] + "\n", encoding="utf-8")
                files.append(path)
                if len(files) == n_files:
                    return files
    raise ValueError(f"this machine's documents give only {len(files)} small files")


# -- the stand-in for chunk vectors ------------------------------------------------------


class StandIn(Embedder):
    """Vectors for indexing a large collection fast: each text gets one of a pool of real
    vectors (picked by a hash of the text) plus a little noise, normalized. The pool is
    the real model's vectors of ``sample`` texts. The model file is the real one, so the
    collection records it and a :class:`~fireside.Collection` opened with that file later
    embeds queries for real."""

    def __init__(self, model: Path, sample: Sequence[str], *, n_threads: int) -> None:
        super().__init__(model, n_threads=n_threads)
        self.pool = super().embed(list(sample), normalize=True)
        self.n_texts = 0

    def embed(
        self,
        texts: str | Sequence[str],
        *,
        normalize: bool = True,
        pooling: str | None = None,
        long_text: Literal["truncate", "average"] = "truncate",
    ) -> npt.NDArray[np.float32]:
        items = [texts] if isinstance(texts, str) else list(texts)
        out = np.empty((len(items), self.pool.shape[1]), np.float32)
        for row, text in enumerate(items):
            seed = zlib.crc32(text.encode("utf-8", errors="replace"))
            noise = np.random.default_rng(seed).standard_normal(self.pool.shape[1])
            out[row] = self.pool[seed % len(self.pool)] + 0.02 * noise
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        self.n_texts += len(items)
        return out[0] if isinstance(texts, str) else out


# -- the reference: llama-embedding ------------------------------------------------------

_PROMPT_EVAL = re.compile(r"prompt eval time\s*=\s*([\d.]+) ms\s*/\s*(\d+) tokens")


@dataclass
class EmbeddingTimings:
    """``llama-embedding``'s own counters for one run."""

    eval_ms: float
    tokens: int
    wall_s: float


def parse_llama_embedding(text: str) -> tuple[float, int]:
    """``(prompt eval ms, tokens)`` from ``llama_perf_context_print``'s lines."""
    from fireside.bench.reference import ReferenceError

    m = _PROMPT_EVAL.search(text)
    if m is None:
        raise ReferenceError(
            f"no 'prompt eval time' line in llama-embedding's output: {text[-800:]!r}"
        )
    return float(m.group(1)), int(m.group(2))


def run_llama_embedding(
    tool: Path, model: Path, prompt_file: Path, *, threads: int, batch: int
) -> EmbeddingTimings:
    """Embed every chunk of ``prompt_file`` (texts joined by :data:`SEPARATOR`) once.
    ``--perf -lv 4``: this llama.cpp prints its performance counters only when asked and
    at trace verbosity."""
    from fireside.bench.reference import ReferenceError

    cmd = [str(tool), "-m", str(model), "-t", str(threads), "-c", str(batch)]
    cmd += ["-b", str(batch), "-ub", str(batch), "-f", str(prompt_file), "--perf", "-lv", "4"]
    cmd += ["--embd-separator", SEPARATOR, "--embd-output-format", "array", "--embd-normalize", "2"]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(
            cmd, check=False, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            errors="replace", timeout=1800,
        )  # fmt: skip
    except subprocess.TimeoutExpired as e:
        raise ReferenceError("llama-embedding did not finish within 1800 s") from e
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        tail = (done.stderr or done.stdout)[-2000:]
        raise ReferenceError(f"llama-embedding exited with {done.returncode}:\n{tail}")
    eval_ms, tokens = parse_llama_embedding(done.stderr + "\n" + done.stdout)
    return EmbeddingTimings(eval_ms, tokens, wall)


# -- the sections ------------------------------------------------------------------------


class _Cache:
    """A private ``FIRESIDE_CACHE_DIR`` (collections go there) for a block of work."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._saved: str | None = None

    def __enter__(self) -> Path:
        self._saved = os.environ.get("FIRESIDE_CACHE_DIR")
        os.environ["FIRESIDE_CACHE_DIR"] = str(self.folder)
        return self.folder

    def __exit__(self, *exc: object) -> None:
        if self._saved is None:
            os.environ.pop("FIRESIDE_CACHE_DIR", None)
        else:
            os.environ["FIRESIDE_CACHE_DIR"] = self._saved


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _embedder_path(suite: Suite) -> Path:
    path = suite.config.embedder
    if path is None or not Path(path).is_file():
        raise FileNotFoundError(f"no embedding model file at {path!s}")
    return Path(path)


def run_index(suite: Suite) -> None:
    """``docs.index``: a fresh collection indexing real files vs llama-embedding."""
    from fireside.docs.collection import Collection

    cfg = suite.config
    model = _embedder_path(suite)
    tool = suite.ref / "llama-embedding" if suite.ref is not None else None
    if tool is not None and not tool.is_file():
        suite.skipped["docs.index.reference"] = (
            "llama-embedding is not built (python benchmarks/build_reference.py)"
        )
        tool = None
    with tempfile.TemporaryDirectory(prefix="fireside-bench-index-") as tmp:
        root = Path(tmp)
        files, texts = write_corpus(root / "files", cfg.docs_index_chunks, documents(seed=1))
        prompt = root / "chunks.txt"
        prompt.write_text(SEPARATOR.join(texts), encoding="utf-8")
        core = _core.Model(model)
        embedder = Embedder(core, n_threads=cfg.threads)
        n_tokens = sum(len(core.tokenize(t, add_special=True, parse_special=False)) for t in texts)
        suite.notes.append(
            f"docs.index: {len(files)} real files, {len(texts)} chunks, {n_tokens} tokens; "
            f"batch {embedder.max_text_tokens} tokens on both sides"
        )
        rounds = [0]

        def measure() -> Callable[[], None]:
            ref = None
            if tool is not None:
                ref = run_llama_embedding(
                    tool, model, prompt, threads=cfg.threads, batch=embedder.max_text_tokens
                )
            rounds[0] += 1
            with _Cache(root / f"cache{rounds[0]}"):
                col = Collection("bench", embedder=embedder, n_threads=cfg.threads)
                t0 = time.perf_counter()
                report = col.add(root / "files")
                index_s = time.perf_counter() - t0
                col.close()
            t0 = time.perf_counter()
            embedder.embed(texts)
            embed_s = time.perf_counter() - t0
            shutil.rmtree(root / f"cache{rounds[0]}", ignore_errors=True)
            if report.embedded_chunks != len(texts):
                suite.notes.append(
                    f"docs.index: the collection embedded {report.embedded_chunks} chunks, "
                    f"the chunker gave {len(texts)}"
                )

            def commit() -> None:
                suite.fig("ours.docs.index.chunks_per_s", "chunk/s").add(len(texts) / index_s)
                suite.fig("ours.docs.index.tokens_per_s", "t/s").add(n_tokens / index_s)
                suite.fig("ours.docs.embed.chunks_per_s", "chunk/s").add(len(texts) / embed_s)
                if ref is not None:
                    seconds = ref.eval_ms / 1000.0
                    suite.fig("reference.embedding.chunks_per_s", "chunk/s").add(
                        len(texts) / seconds
                    )
                    suite.fig("reference.embedding.tokens_per_s", "t/s").add(ref.tokens / seconds)
                    suite.fig("reference.embedding.wall_s", "s", higher_is_better=False).add(
                        ref.wall_s
                    )
                    suite.fig("reference.embedding.tokens", "tokens").add(ref.tokens)

            return commit

        try:
            for i in suite.rounds():
                suite.gated(i, "docs.index", measure)
        finally:
            embedder.close()
            core.close()
    reference = suite.figures.get("reference.embedding.chunks_per_s")
    suite.compare("docs.index", suite.figures.get("ours.docs.index.chunks_per_s"), reference)
    suite.compare("docs.embed", suite.figures.get("ours.docs.embed.chunks_per_s"), reference)


def run_search(suite: Suite) -> None:
    """``docs.search``: latency of each mode at each collection size."""
    from fireside.docs.collection import Collection

    cfg = suite.config
    model = _embedder_path(suite)
    sizes = sorted(cfg.docs_search_sizes)
    queries = QUERIES[: cfg.docs_queries]
    with tempfile.TemporaryDirectory(prefix="fireside-bench-search-") as tmp:
        root = Path(tmp)
        docs = documents(seed=2)
        sample: list[str] = []
        for doc in docs:  # the pool's texts: chunks of documents the collection won't hold
            sample += chunk_texts(doc)
            if len(sample) >= cfg.docs_pool_vectors:
                break
        stand_in = StandIn(model, sample[: cfg.docs_pool_vectors], n_threads=cfg.threads)
        have = 0
        with _Cache(root / "cache"):
            try:
                for size in sizes:
                    t0 = time.perf_counter()
                    write_corpus(root / f"part{size}", size - have, docs, prefix=f"{size}-")
                    col = Collection("bench", embedder=stand_in, n_threads=cfg.threads)
                    col.add(root / f"part{size}")
                    have = col.info().n_chunks
                    col.close()
                    suite.notes.append(
                        f"docs.search: {have} chunks indexed in {time.perf_counter() - t0:.0f} s "
                        f"(stand-in vectors from {len(stand_in.pool)} real ones)"
                    )
                    col = Collection("bench", embedder=str(model))
                    _search_rounds(suite, col, size, have, queries)
            finally:
                stand_in.close()


def _search_rounds(suite: Suite, col: Any, size: int, have: int, queries: list[str]) -> None:
    """The rounds at the collection size asked for (``size``: it names the figures, the same
    on every machine), which holds ``have`` chunks (whole files: a few more)."""
    label = f"{size / 1000:g}k" if size >= 1000 else str(size)
    samples: dict[str, list[float]] = {m: [] for m in ("hybrid", "keyword", "vector")}
    empty = 0
    try:
        for query in queries:  # warm: the model, the page cache
            col.search(query, k=5)

        def measure() -> Callable[[], None]:
            got: dict[str, list[float]] = {m: [] for m in samples}
            misses = 0
            for query in queries:
                for mode, values in got.items():
                    t0 = time.perf_counter()
                    hits = col.search(query, k=5, mode=mode)
                    values.append(1000.0 * (time.perf_counter() - t0))
                    misses += not hits

            def commit() -> None:
                nonlocal empty
                for mode, values in got.items():
                    samples[mode] += values
                empty += misses

            return commit

        for i in suite.rounds():
            suite.gated(i, f"docs.search.{label}", measure)
    finally:
        col.close()
    suite.fig("docs.search.chunks", "chunks").add(have)
    for mode, values in samples.items():
        if not values:
            continue
        fig = suite.fig(f"ours.docs.search.{mode}.{label}", "ms", higher_is_better=False)
        fig.samples += values
        for name, share in (("p50", 0.5), ("p95", 0.95)):
            value = statistics.median(values) if name == "p50" else _percentile(values, share)
            suite.fig(f"ours.docs.search.{mode}.{label}.{name}", "ms", higher_is_better=False).add(
                value
            )
            suite.ratios[f"docs.search.{mode}.{label}.{name}_ms"] = value
            if mode == "hybrid" and name == "p50":
                suite.ratios["docs.search.hybrid_p50_ms"] = value  # the largest size wins
    if empty:
        suite.notes.append(f"docs.search {label}: {empty} searches found nothing")


def run_update(suite: Suite) -> None:
    """``docs.update``: ``update()`` after one file of many changed (the real embedder)."""
    from fireside.docs.collection import Collection

    cfg = suite.config
    model = _embedder_path(suite)
    with tempfile.TemporaryDirectory(prefix="fireside-bench-update-") as tmp:
        root = Path(tmp)
        docs = documents(seed=3)
        files = write_small_files(root / "files", cfg.docs_update_files, docs)
        extra = [line for line in chunk_texts(next(docs)) if line.strip()] or ["one more line"]
        embedder = Embedder(model, n_threads=cfg.threads)
        with _Cache(root / "cache"):
            col = Collection("bench", embedder=embedder, n_threads=cfg.threads)
            try:
                t0 = time.perf_counter()
                first = col.add(root / "files")
                build_s = time.perf_counter() - t0
                suite.fig("ours.docs.update.initial_index_s", "s", higher_is_better=False).add(
                    build_s
                )
                suite.notes.append(
                    f"docs.update: {len(first.added)} small real-text files "
                    f"({first.embedded_chunks} chunks) indexed once in {build_s:.0f} s"
                )
                _update_rounds(suite, col, files, extra)
            finally:
                col.close()
                embedder.close()
    one = suite.figures.get("ours.docs.update.one_changed_s")
    suite.ratios["docs.update_s"] = one.median if one is not None else None


def _update_rounds(suite: Suite, col: Any, files: list[Path], extra: list[str]) -> None:
    col.update()  # warm: every file's status in the page cache
    turn = [0]

    def measure() -> Callable[[], None]:
        k = turn[0]
        turn[0] += 1
        path = files[(k * 7919) % len(files)]  # a different file each round
        with path.open("a", encoding="utf-8") as f:
            f.write(extra[k % len(extra)] + "\n")
        t0 = time.perf_counter()
        report = col.update()
        one_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        still = col.update()
        none_s = time.perf_counter() - t0
        right = (
            report.updated == [str(path.resolve())]
            and report.unchanged == len(files) - 1
            and not still.updated
            and still.unchanged == len(files)
        )

        def commit() -> None:
            suite.fig("ours.docs.update.one_changed_s", "s", higher_is_better=False).add(one_s)
            suite.fig("ours.docs.update.none_changed_s", "s", higher_is_better=False).add(none_s)
            suite.fig("docs.update.files", "files").add(len(files))
            if not right:
                suite.notes.append(
                    f"docs.update: expected 1 updated and {len(files) - 1} unchanged, got "
                    f"{len(report.updated)} updated, {report.unchanged} unchanged"
                )

        return commit

    for i in suite.rounds():
        suite.gated(i, "docs.update", measure)
