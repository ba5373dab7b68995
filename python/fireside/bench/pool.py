"""Pool several benchmark runs into one report: ``--pool A/bench.json B/bench.json``.

On a shared machine the spread between runs can exceed the margin a target is judged by,
and one run of a few rounds lands on either side of it by chance. Pooling takes every
round of every run instead of picking one: each figure's samples are concatenated (in
the order of the files), and each ratio is computed again from the pooled figures the way
the runs computed it (the median of the per-round ratios: rounds pair up within each run,
so they do across the pool). Targets are judged on the pooled ratios.

Runs pool only when they measured the same model with the same threads; runs of
different fireside commits pool with a note naming each one. A ratio pools only where
every run recorded the figures it divides (``ratio_inputs``; runs of a fireside before
it pool their comparison table only, and the other ratios are left out with a note).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fireside.bench.stats import Figure, compared
from fireside.bench.suite import Target


def load(path: Path) -> dict[str, Any]:
    """A ``bench.json``; ``ValueError`` naming the file when it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable benchmark result ({e})") from e
    if not isinstance(data, dict) or data.get("fireside_bench") != 1 or "figures" not in data:
        raise ValueError(f"{path}: not a fireside benchmark result (bench.json)")
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise ValueError(f"{path}: an incomplete benchmark result (no {', '.join(missing)})")
    try:
        _figures(data)
        data["model"]["name"], data["config"]["threads"], data["config"]["runs"]
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise ValueError(f"{path}: a malformed benchmark result ({type(e).__name__}: {e})") from e
    return data


_REQUIRED = (
    "started", "duration_s", "model", "config", "versions", "comparisons", "ratios",
    "targets", "contention", "notes",
)  # fmt: skip


def _figures(data: dict[str, Any]) -> dict[str, Figure]:
    return {
        name: Figure(
            f["name"],
            f["unit"],
            [float(v) for v in f["samples"]],
            bool(f.get("higher_is_better", True)),
        )
        for name, f in data["figures"].items()
    }


def _inputs(data: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """What each ratio divides: ``ratio_inputs``, else (older runs) the comparison table."""
    if "ratio_inputs" in data:
        return {k: (v["ours"], v["reference"]) for k, v in data["ratio_inputs"].items()}
    return {
        row["ratio"]: (row["ours"], row["reference"])
        for row in data["comparisons"]
        if row.get("reference")
    }


def pool(
    runs: Sequence[dict[str, Any]], names: Sequence[str]
) -> tuple[dict[str, Any], dict[str, Figure]]:
    """The pooled results and figures of ``runs`` (named ``names`` in errors and notes)."""
    if len(runs) < 2:
        raise ValueError("pooling needs at least two bench.json files")
    first = runs[0]
    for name, run in zip(names[1:], runs[1:]):
        for what, a, b in (
            ("model", first["model"]["name"], run["model"]["name"]),
            ("threads", first["config"]["threads"], run["config"]["threads"]),
        ):
            if a != b:
                raise ValueError(f"{name}: measured with {what} {b!r}, {names[0]} with {a!r}")
    per_run = [_figures(run) for run in runs]
    shared = set(per_run[0]).intersection(*per_run[1:])
    figures: dict[str, Figure] = {}
    for key in per_run[0]:
        if key in shared:
            fig = per_run[0][key]
            samples = [s for figs in per_run for s in figs[key].samples]
            figures[key] = Figure(fig.name, fig.unit, samples, fig.higher_is_better)

    notes = [
        f"pooled from {len(runs)} runs: "
        + "; ".join(
            f"{name} (started {run['started']}, {run['config']['runs']} runs, fireside "
            f"{run['versions'].get('fireside_commit') or 'unknown commit'})"
            for name, run in zip(names, runs)
        )
    ]
    all_inputs = [_inputs(run) for run in runs]
    ratios: dict[str, float | None] = {}
    of_medians: dict[str, float | None] = {}
    inputs: dict[str, dict[str, str]] = {}
    left_out = []
    for key in {**first["ratios"], **all_inputs[0]}:
        pair = all_inputs[0].get(key)
        if (
            pair is None
            or any(i.get(key) != pair for i in all_inputs[1:])
            or not (pair[0] in figures and pair[1] in figures)
        ):
            if any(run["ratios"].get(key) is not None for run in runs):
                left_out.append(key)
            continue
        ratios[key], of_medians[key] = compared(figures[pair[0]], figures[pair[1]])
        inputs[key] = {"ours": pair[0], "reference": pair[1]}
    if left_out:
        notes.append(
            "not pooled (a run did not record the figures they divide): " + ", ".join(left_out)
        )

    targets = [
        Target(t["key"], t["label"], t["op"], t["threshold"]).check(ratios.get(t["key"]))
        for t in first["targets"]
    ]

    contention = dict(first["contention"])
    for counter in ("rounds_repeated", "rounds_kept_contended"):
        total: dict[str, int] = {}
        for run in runs:
            for section, n in run["contention"][counter].items():
                total[section] = total.get(section, 0) + n
        contention[counter] = total
    results = {
        **first,
        "duration_s": sum(r["duration_s"] for r in runs),
        "config": {**first["config"], "runs": sum(r["config"]["runs"] for r in runs)},
        "ratios": ratios,
        "ratios_of_medians": of_medians,
        "ratio_inputs": inputs,
        "targets": targets,
        "contention": contention,
        "notes": notes + [n for r in runs for n in r["notes"]],
        "pooled_from": [
            {"file": name, "started": r["started"], "commit": r["versions"].get("fireside_commit")}
            for name, r in zip(names, runs)
        ],
    }
    results.pop("figures", None)
    return results, figures
