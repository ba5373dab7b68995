"""``python -m fireside.bench``: the benchmark without the CLI (``benchmarks/run.py`` uses it)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from fireside.bench.suite import ALL_SECTIONS


def summary(results: dict[str, Any]) -> str:
    """A few lines for the terminal: each target and whether it was met."""
    lines = []
    for t in results["targets"]:
        if t["met"] is not None:
            mark = "ok" if t["met"] else "MISSED"
            lines.append(f"  {mark:6} {t['label']}: {t['value']:.3f} ({t['op']} {t['threshold']})")
    unmeasured = sum(t["met"] is None for t in results["targets"])
    if unmeasured:
        lines.append(f"  n/a    {unmeasured} other targets, not measured in this run")
    for name, why in results["skipped"].items():
        lines.append(f"  skipped {name}: {why}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from fireside.bench import pool_runs, run

    parser = argparse.ArgumentParser(
        prog="python -m fireside.bench",
        description="Benchmark fireside against llama.cpp's own tools (same model, threads).",
    )
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    parser.add_argument("--model", help="GGUF path or catalog name (default: the test model)")
    parser.add_argument("--threads", type=int, help="threads (default: the physical cores)")
    parser.add_argument("--out", help="output directory (default: benchmarks/results/<time>)")
    parser.add_argument("--runs", type=int, help="measured runs per figure (default 5)")
    parser.add_argument(
        "--reference-dir", help="where llama-bench & co. are (default: build/reference/bin)"
    )
    parser.add_argument("--no-reference", action="store_true", help="measure fireside only")
    parser.add_argument(
        "--sections",
        help=f"comma-separated subset of {','.join(ALL_SECTIONS)} (busy, docs.*: only when named)",
    )
    parser.add_argument(
        "--embedder", help="embedding GGUF of the docs.* sections (default: all-MiniLM-L6-v2)"
    )
    parser.add_argument(
        "--pool",
        nargs="+",
        metavar="BENCH_JSON",
        help="measure nothing: pool the rounds of earlier runs' bench.json files into one report",
    )
    args = parser.parse_args(argv)
    try:
        if args.pool:
            results, paths = pool_runs(args.pool, out=args.out)
        else:
            results, paths = run(
                model=args.model,
                threads=args.threads,
                out=args.out,
                quick=args.quick,
                runs=args.runs,
                reference_dir=args.reference_dir,
                use_reference=not args.no_reference,
                sections=args.sections.split(",") if args.sections else None,
                embedder=args.embedder,
                progress=lambda message: print(message, file=sys.stderr, flush=True),
            )
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary(results))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
