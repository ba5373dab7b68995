"""Writing a benchmark's results: JSON (everything), Markdown (tables a person reads) and,
when matplotlib is installed, a PNG of aggregate tokens/s against concurrency."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fireside.bench.stats import Figure


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "B":
        return f"{value / 1e6:.1f} MB"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"


def _cell(fig: Figure | None) -> str:
    if fig is None or fig.median is None:
        return "-"
    text = _fmt(fig.median, fig.unit)
    if fig.spread is not None and fig.n > 1:
        text += f" (±{fig.spread * 50:.0f}%)"  # half the relative range
    return text


def _target_lookup(targets: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {t["ratio"]: t for t in targets if t.get("ratio")}


def markdown(results: dict[str, Any], figures: dict[str, Figure]) -> str:
    """The report as Markdown: context, one table of comparisons, targets, other figures."""
    m, v, cfg = results["machine"], results["versions"], results["config"]
    lines = [
        "# fireside benchmark",
        "",
        (
            f"- machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, "
            f"{(m['ram_bytes'] or 0) / 2**30:.0f} GiB RAM; {m['os']}; Python {m['python']}"
        ),
        (
            f"- fireside {v['fireside']} at {v['fireside_commit'] or 'unknown commit'}; "
            f"llama.cpp {v['llama_cpp_commit'] or '?'} (both sides)"
        ),
        (
            f"- model: {results['model']['name']} ({results['model']['bytes'] / 1e6:.1f} MB); "
            f"threads: {cfg['threads']}; runs: {cfg['runs']} after {cfg['warmup']} warm-up, "
            "sides alternated (A B A B)"
            + (
                f", pooled from {len(results['pooled_from'])} runs"
                if "pooled_from" in results
                else ""
            )
            + ("; **quick mode**" if cfg["quick"] else "")
        ),
        "- reference tools: "
        + (results["reference_dir"] or f"none: {results['skipped'].get('reference', '-')}"),
        "",
        "Each cell: median over the runs (± half the min-max range as a share of the median).",
        "Ratio: fireside / llama.cpp, the median of the per-run ratios (each run measures both",
        "sides back to back, so load drifting on a shared machine cancels within a pair); the",
        "ratio of the two medians is shown after it.",
        "",
        "## Against llama.cpp",
        "",
        "| measurement | fireside | llama.cpp | ratio | ratio of medians | target |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    targets = _target_lookup(results["targets"])
    for row in results["comparisons"]:
        ours, ref = figures.get(row["ours"]), figures.get(row["reference"] or "")
        r = results["ratios"].get(row["ratio"])
        rm = results.get("ratios_of_medians", {}).get(row["ratio"])
        t = targets.get(row["ratio"])
        target = "-"
        if t is not None:
            mark = "met" if t["met"] else ("MISSED" if t["met"] is False else "n/a")
            target = f"{t['op']} {t['threshold']} ({mark})"
        unit = f" {ours.unit}" if ours is not None and ours.unit not in ("s", "B") else ""
        lines.append(
            f"| {row['label']}{unit} | {_cell(ours)} | {_cell(ref)} | "
            f"{'-' if r is None else f'{r:.3f}'} | {'-' if rm is None else f'{rm:.3f}'} | "
            f"{target} |"
        )
    lines += [
        "",
        "## Targets",
        "",
        "| target | value | threshold | result |",
        "| --- | --- | --- | --- |",
    ]
    for t in results["targets"]:
        if t["met"] is not None:
            result = "met" if t["met"] else "**missed**"
            lines.append(
                f"| {t['label']} | {t['value']:.3f} | {t['op']} {t['threshold']} | {result} |"
            )
    unmeasured = [t["label"] for t in results["targets"] if t["met"] is None]
    if unmeasured:
        lines += [
            "",
            f"Not measured in this run (a section not run, or its reference missing): {'; '.join(unmeasured)}.",
        ]
    lines += [
        "",
        "## All figures",
        "",
        "| figure | median | min | max | n |",
        "| --- | --- | --- | --- | --- |",
    ]
    for fig in figures.values():
        lines.append(
            f"| {fig.name} ({fig.unit}) | {_fmt(fig.median, fig.unit)} | "
            f"{_fmt(fig.minimum, fig.unit)} | {_fmt(fig.maximum, fig.unit)} | {fig.n} |"
        )
    contention = results.get("contention")
    if contention:
        shares = [
            f"{fig.name.removeprefix('machine.other_cpu.')} {fig.median:.0f}%"
            for fig in figures.values()
            if fig.name.startswith("machine.other_cpu.") and fig.median is not None
        ]
        lines += [
            "",
            "## Machine contention",
            "",
            f"Rounds during which other processes took more than "
            f"{contention['max_other_cpu'] * 100:.0f}% of all CPUs were run again: "
            f"{sum(contention['rounds_repeated'].values())} repeated, "
            f"{sum(contention['rounds_kept_contended'].values())} kept although still contended"
            + (
                f" ({', '.join(f'{k}: {v}' for k, v in contention['rounds_kept_contended'].items())})"
                if contention["rounds_kept_contended"]
                else ""
            )
            + ".",
        ]
        if shares:
            lines.append(
                f"Median CPU share of other processes in the kept rounds: {', '.join(shares)}."
            )
    if results["skipped"]:
        lines += ["", "## Skipped", ""]
        lines += [f"- {name}: {why}" for name, why in results["skipped"].items()]
    if results["notes"]:
        lines += ["", "## Notes", ""]
        lines += [f"- {note}" for note in results["notes"]]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], figures: dict[str, Figure], path: Path) -> bool:
    """Aggregate tokens/s against concurrent streams; ``False`` without matplotlib or data."""
    levels = results["config"]["concurrency"]
    ours = [figures.get(f"server.aggregate.c{n}") for n in levels]
    refs = [figures.get(f"reference.batched.s_tg.c{n}") for n in levels]
    if not any(f is not None and f.median for f in ours + refs):
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    llama = [figures.get(f"reference.llama_server.c{n}") for n in levels]
    threads = [figures.get(f"parallel.aggregate.c{n}") for n in levels]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for series, label, style in (
        (ours, "fireside server (streaming HTTP clients)", "o-"),
        (refs, "llama-batched-bench (S_TG)", "s--"),
        (llama, "llama-server (same clients)", "D"),
        (threads, "threads on one Model(n_parallel=8)", "^:"),
    ):
        xs = [n for n, f in zip(levels, series) if f is not None and f.median]
        ys = [f.median for f in series if f is not None and f.median]
        lo = [f.median - f.minimum for f in series if f is not None and f.median]  # type: ignore[operator]
        hi = [f.maximum - f.median for f in series if f is not None and f.median]  # type: ignore[operator]
        if xs:
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt=style, capsize=3, label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(levels)
    ax.set_xticklabels([str(n) for n in levels])
    ax.set_xlabel("concurrent sequences")
    ax.set_ylabel("aggregate generated tokens/s")
    ax.set_title(f"{results['model']['name']}, {results['config']['threads']} threads")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write(results: dict[str, Any], figures: dict[str, Figure], out: Path) -> dict[str, Path]:
    """Write ``bench.json``, ``bench.md`` and (if possible) ``concurrency.png`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "bench.json", "markdown": out / "bench.md"}
    data = dict(results)
    data["figures"] = {key: fig.to_json() for key, fig in figures.items()}
    paths["json"].write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text(markdown(results, figures), encoding="utf-8")
    png = out / "concurrency.png"
    if plot(results, figures, png):
        paths["png"] = png
    return paths
