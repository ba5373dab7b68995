"""Benchmarks of fireside against llama.cpp's own tools, on the same model and threads.

Used by ``fireside bench`` and ``benchmarks/run.py``. :func:`run` measures and writes
``bench.json``, ``bench.md`` and (with matplotlib) ``concurrency.png``; see
:mod:`fireside.bench.suite` for what is measured and ``benchmarks/README.md`` for how to
build the reference tools and read the results.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["default_out_dir", "pool_runs", "run"]


def default_out_dir() -> Path:
    """``benchmarks/results/<timestamp>`` under the current directory."""
    return Path("benchmarks") / "results" / time.strftime("%Y%m%d-%H%M%S")


def run(
    *,
    model: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    out: str | os.PathLike[str] | None = None,
    quick: bool = False,
    runs: int | None = None,
    reference_dir: str | os.PathLike[str] | None = None,
    use_reference: bool = True,
    sections: Sequence[str] | None = None,
    embedder: str | os.PathLike[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Run the benchmark; returns the results and the paths of the files written.

    ``model``: a GGUF path or catalog name (default: the test model SmolLM2-135M-Instruct
    Q4_1). ``threads``: default the physical cores. ``quick``: a
    seconds-long smoke run (small sizes, one measured run). ``runs`` overrides the number
    of measured runs. ``sections``: a subset of ``import, load, decode, generate, chat,
    server`` (the default), or ``busy`` (:mod:`fireside.bench.busy`: a CPU hog on one core,
    asked for by name only), or ``docs.index, docs.search, docs.update`` (LocalDocs,
    :mod:`fireside.bench.docs`, by name only). ``embedder``: their embedding model (GGUF
    path or catalog name; default: the test suite's converted all-MiniLM-L6-v2, else the
    catalog's ``all-minilm-l6-v2``).
    """
    from fireside.bench.report import write
    from fireside.bench.suite import ALL_SECTIONS, DOCS_SECTIONS, SECTIONS, BenchConfig, run_suite
    from fireside.defaults import default_n_threads
    from fireside.model_path import resolve_model_path

    path = resolve_model_path(model if model is not None else _default_model())
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {str(path)!r}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    if runs is not None and (not isinstance(runs, int) or runs < 1):
        raise ValueError(f"runs must be a positive integer, got {runs!r}")
    chosen = tuple(sections) if sections else SECTIONS
    unknown = [s for s in chosen if s not in ALL_SECTIONS]
    if unknown:
        raise ValueError(
            f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(ALL_SECTIONS)}"
        )
    embedder_path = None
    if any(s in DOCS_SECTIONS for s in chosen):
        embedder_path = resolve_model_path(
            embedder if embedder is not None else _default_embedder()
        )
        if not embedder_path.is_file():
            raise FileNotFoundError(f"no embedding model file at {str(embedder_path)!r}")
    if reference_dir is not None and use_reference:
        from fireside.bench.reference import TOOLS, find_reference_dir

        if find_reference_dir(reference_dir) is None:
            raise ValueError(
                f"{os.fspath(reference_dir)!r} does not hold {', '.join(TOOLS)}; build them "
                "with python benchmarks/build_reference.py"
            )
    n_threads = threads or default_n_threads()
    out_dir = Path(out) if out is not None else default_out_dir()
    options: dict[str, Any] = {
        "reference_dir": Path(reference_dir) if reference_dir is not None else None,
        "use_reference": use_reference,
        "sections": chosen,
        "embedder": embedder_path,
    }
    if runs is not None:
        options["runs"] = runs
    if quick:
        config = BenchConfig.quick_config(path, n_threads, out_dir, **options)
    else:
        config = BenchConfig(model=path, threads=n_threads, out=out_dir, **options)
    results, figures = run_suite(config, progress)
    return results, write(results, figures, out_dir)


def pool_runs(
    files: Sequence[str | os.PathLike[str]], *, out: str | os.PathLike[str] | None = None
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Pool the rounds of earlier runs (their ``bench.json`` files) into one report
    (:mod:`fireside.bench.pool`); returns the results and the paths of the files written.
    Raises ``ValueError`` naming a file that is not a result or does not pool."""
    from fireside.bench.pool import load, pool
    from fireside.bench.report import write

    paths = [Path(f) for f in files]
    results, figures = pool([load(p) for p in paths], [str(p) for p in paths])
    return results, write(results, figures, Path(out) if out is not None else default_out_dir())


def _default_embedder() -> str | Path:
    """all-MiniLM-L6-v2: the f16 GGUF the test suite converts into its model cache, else
    the catalog's ``all-minilm-l6-v2``."""
    path = _test_models_dir() / "all-MiniLM-L6-v2-F16.gguf"
    return path if path.is_file() else "all-minilm-l6-v2"


def _test_models_dir() -> Path:
    base = os.environ.get("FIRESIDE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "fireside"
    )
    return Path(base) / "test-models"


def _default_model() -> str | Path:
    """The test model (SmolLM2-135M-Instruct Q4_1): ``FIRESIDE_TEST_MODEL``, the copy the
    test suite caches, else the catalog's default model (the same file)."""
    if env := os.environ.get("FIRESIDE_TEST_MODEL"):
        return Path(env)
    path = _test_models_dir() / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if path.is_file():
        return path
    from fireside.hub.catalog import default_model

    return default_model()
