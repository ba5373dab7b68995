"""The reference side: llama.cpp's own tools, run as subprocesses, their output parsed.

``benchmarks/build_reference.py`` builds ``llama-bench``, ``llama-completion``,
``llama-batched-bench``, ``llama-embedding``, ``llama-lookup`` and ``llama-server`` from the
vendored llama.cpp tree into ``build/reference/bin``.
:func:`find_reference_dir` looks there (or where ``FIRESIDE_REFERENCE_BIN`` points).

Each ``run_*`` function runs one tool once and returns plain numbers; the ``parse_*``
functions are separate so they can be tested on recorded output.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

TOOLS = ("llama-bench", "llama-completion", "llama-batched-bench")
OPTIONAL_TOOLS = ("llama-server",)
"""Built too by ``build_reference.py`` (unless ``--no-server``); the ``server`` section
compares with it at 8 streams, and the ``busy`` section's server part needs it."""
ENV_VAR = "FIRESIDE_REFERENCE_BIN"


class ReferenceError(RuntimeError):
    """A reference tool failed or printed something we cannot read."""


def _candidates() -> list[Path]:
    found = []
    if env := os.environ.get(ENV_VAR):
        found.append(Path(env))
    found.append(Path.cwd() / "build" / "reference" / "bin")
    # an editable install: python/fireside/bench/ -> the repository root
    found.append(Path(__file__).resolve().parents[3] / "build" / "reference" / "bin")
    return found


def find_reference_dir(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The directory holding all three tools, or ``None`` when they are not built."""
    places = [Path(explicit)] if explicit is not None else _candidates()
    for place in places:
        if all((place / tool).is_file() and os.access(place / tool, os.X_OK) for tool in TOOLS):
            return place
    return None


def _run(cmd: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            list(cmd),
            check=False,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        raise ReferenceError(f"{Path(cmd[0]).name} did not finish within {timeout:.0f} s") from e
    if done.returncode != 0:
        tail = (done.stderr or done.stdout)[-2000:]
        raise ReferenceError(f"{Path(cmd[0]).name} exited with {done.returncode}:\n{tail}")
    return done


# -- llama-bench ----------------------------------------------------------------------


def parse_llama_bench(stdout: str) -> dict[str, list[float]]:
    """``{"pp512": [t/s, ...], "tg128": [...]}`` from ``llama-bench -o json`` output."""
    try:
        rows = json.loads(stdout)
    except json.JSONDecodeError as e:
        raise ReferenceError(f"llama-bench printed no JSON: {e}: {stdout[:300]!r}") from e
    if not isinstance(rows, list):
        raise ReferenceError("llama-bench JSON is not a list of tests")
    out: dict[str, list[float]] = {}
    for row in rows:
        n_prompt, n_gen = int(row.get("n_prompt", 0)), int(row.get("n_gen", 0))
        name = f"pp{n_prompt}" if n_gen == 0 else f"tg{n_gen}" if n_prompt == 0 else None
        if name is None:
            name = f"pp{n_prompt}+tg{n_gen}"
        samples = row.get("samples_ts") or [row.get("avg_ts")]
        out[name] = [float(s) for s in samples if s is not None]
    return out


def run_llama_bench(
    bin_dir: Path, model: Path, *, threads: int, n_prompt: int, n_gen: int, reps: int = 1
) -> dict[str, list[float]]:
    """One ``llama-bench`` invocation (its own warm-up, then ``reps`` repetitions)."""
    cmd = [str(bin_dir / "llama-bench"), "-m", str(model), "-t", str(threads)]
    cmd += ["-p", str(n_prompt), "-n", str(n_gen), "-r", str(reps), "-o", "json"]
    return parse_llama_bench(_run(cmd, timeout=600).stdout)


# -- llama-completion -------------------------------------------------------------------

_EVAL = re.compile(
    r"^[^\n]*?(?<!prompt )eval time\s*=\s*([\d.]+) ms\s*/\s*(\d+) runs"
    r"\s*\(\s*[\d.]+ ms per token,\s*([\d.]+) tokens per second\)",
    re.MULTILINE,
)
_SAMPLING = re.compile(r"sampling time\s*=\s*([\d.]+) ms")
_LOAD = re.compile(r"load time\s*=\s*([\d.]+) ms")
_PROMPT_EVAL = re.compile(r"prompt eval time\s*=\s*([\d.]+) ms\s*/\s*(\d+) tokens")


@dataclass
class CompletionTimings:
    """llama-completion's own performance counters (``llama_perf_context_print``)."""

    eval_ms: float
    eval_runs: int
    eval_tokens_per_second: float
    load_ms: float | None
    prompt_ms: float | None
    prompt_tokens: int | None
    sampling_ms: float | None
    """Time its sampler chain took (outside ``eval_ms``)."""
    text: str | None = None
    """The generated text, when it was run with ``show_prompt=False``."""


def parse_llama_completion(text: str) -> CompletionTimings:
    """The ``eval time`` (not ``prompt eval time``), ``load time`` and prompt lines."""
    m = _EVAL.search(text)
    if m is None:
        raise ReferenceError(f"no 'eval time' line in llama-completion's output: {text[-800:]!r}")
    load = _LOAD.search(text)
    prompt = _PROMPT_EVAL.search(text)
    sampling = _SAMPLING.search(text)
    return CompletionTimings(
        eval_ms=float(m.group(1)),
        eval_runs=int(m.group(2)),
        eval_tokens_per_second=float(m.group(3)),
        load_ms=float(load.group(1)) if load else None,
        prompt_ms=float(prompt.group(1)) if prompt else None,
        prompt_tokens=int(prompt.group(2)) if prompt else None,
        sampling_ms=float(sampling.group(1)) if sampling else None,
    )


def run_llama_completion(
    bin_dir: Path,
    model: Path,
    prompt: str,
    *,
    threads: int | None,
    n_predict: int,
    n_ctx: int,
    sampling: Sequence[str] = ("--temp", "0"),
    show_prompt: bool = True,
    ubatch: int | None = None,
) -> CompletionTimings:
    """One ``llama-completion`` run: ``-t N --ignore-eos -no-cnv -n n_predict`` and
    ``sampling`` (default greedy); its performance counters. ``threads=None``: its own
    default (no ``-t``). ``show_prompt=False``: ``--no-display-prompt``, and the result's
    ``text`` is the generated text (its stdout less the blank line it ends with).
    ``ubatch``: ``-ub`` (the prompt is evaluated in batches of that many tokens)."""
    cmd = [str(bin_dir / "llama-completion"), "-m", str(model)]
    if threads is not None:
        cmd += ["-t", str(threads)]
    cmd += ["-c", str(n_ctx), "-n", str(n_predict), "--ignore-eos", "-no-cnv", *sampling]
    if not show_prompt:
        cmd.append("--no-display-prompt")
    if ubatch is not None:
        cmd += ["-ub", str(ubatch)]
    cmd += ["-p", prompt]
    done = _run(cmd, timeout=600)
    timings = parse_llama_completion(done.stderr + "\n" + done.stdout)
    if not show_prompt:
        timings.text = done.stdout.removesuffix("\n\n")
    return timings


# -- llama-batched-bench ------------------------------------------------------------------


@dataclass
class BatchedRow:
    """One row of llama-batched-bench's table."""

    pp: int
    tg: int
    b: int
    n_kv: int
    t_pp: float
    s_pp: float
    t_tg: float
    s_tg: float
    t: float
    s: float


_ROW = re.compile(r"^\|\s*(\d+)\s*\|" + r"\s*([\d.]+)\s*\|" * 9 + r"\s*$", re.MULTILINE)


def parse_batched_bench(text: str) -> list[BatchedRow]:
    """The rows of the Markdown table (``PP | TG | B | N_KV | T_PP s | S_PP t/s | ...``)."""
    rows = []
    for m in _ROW.finditer(text):
        v = m.groups()
        rows.append(
            BatchedRow(
                pp=int(v[0]),
                tg=int(v[1]),
                b=int(v[2]),
                n_kv=int(v[3]),
                t_pp=float(v[4]),
                s_pp=float(v[5]),
                t_tg=float(v[6]),
                s_tg=float(v[7]),
                t=float(v[8]),
                s=float(v[9]),
            )
        )
    if not rows:
        raise ReferenceError(f"no table in llama-batched-bench's output: {text[-800:]!r}")
    return rows


def run_batched_bench(
    bin_dir: Path,
    model: Path,
    *,
    threads: int,
    n_prompt: int,
    n_gen: int,
    parallel: Sequence[int],
    n_ctx: int,
) -> list[BatchedRow]:
    """One ``llama-batched-bench`` run over all ``parallel`` levels (separate prompts)."""
    cmd = [str(bin_dir / "llama-batched-bench"), "-m", str(model), "-t", str(threads)]
    cmd += ["-c", str(n_ctx), "-b", "2048", "-ub", "512"]
    cmd += ["-npp", str(n_prompt), "-ntg", str(n_gen), "-npl", ",".join(map(str, parallel))]
    done = _run(cmd, timeout=600)
    return parse_batched_bench(done.stdout + "\n" + done.stderr)


# -- llama-lookup (llama.cpp's prompt-lookup speculation example) ------------------------

_LOOKUP_SPEED = re.compile(r"decoded\s+(\d+) tokens in\s+([\d.]+) seconds, speed:\s+([\d.]+) t/s")
_LOOKUP_COUNT = re.compile(r"\b(n_drafted|n_accept)\s*=\s*(\d+)")


@dataclass
class LookupRun:
    """One ``llama-lookup`` run: its decode rate and counters, and what it generated."""

    tokens_per_second: float
    """Its ``decoded N tokens in S seconds, speed: R t/s`` line: every generated token
    (sampling and drafting included) over the time after the prompt was evaluated."""
    n_predict: int
    """Tokens it generated: at least one more than ``-n`` asks (it stops only after a
    round of accepted drafts has gone past ``-n``)."""
    n_drafted: int | None
    n_accepted: int | None
    text: str | None
    """The generated text (the output after the echoed prompt); ``None`` when the prompt
    is not found in its output."""


def parse_llama_lookup(log: str, stdout: str = "", prompt: str | None = None) -> LookupRun:
    """llama-lookup's ``decoded ... speed`` line and ``n_drafted``/``n_accept`` counters
    (its log, stderr); with ``prompt``, the generated text from ``stdout`` too (``\\n\\n``,
    the prompt's pieces with special tokens written out, the generated pieces, then
    ``\\n\\n`` twice)."""
    text = log + "\n" + stdout
    m = _LOOKUP_SPEED.search(text)
    if m is None:
        raise ReferenceError(
            f"no 'decoded ... speed' line in llama-lookup's output: {text[-800:]!r}"
        )
    counts = {name: int(value) for name, value in _LOOKUP_COUNT.findall(text)}
    generated = None
    if prompt is not None and (at := stdout.find(prompt)) >= 0:
        generated = stdout[at + len(prompt) :].removesuffix("\n\n\n\n")
    return LookupRun(
        tokens_per_second=float(m.group(3)),
        n_predict=int(m.group(1)),
        n_drafted=counts.get("n_drafted"),
        n_accepted=counts.get("n_accept"),
        text=generated,
    )


def run_llama_lookup(
    bin_dir: Path,
    model: Path,
    prompt: str,
    *,
    threads: int,
    n_predict: int,
    n_ctx: int,
    n_draft: int = 16,
    ubatch: int | None = None,
) -> LookupRun:
    """One greedy ``llama-lookup`` run (``--ignore-eos``, drafts of up to ``n_draft``,
    ``--spec-draft-n-max``; no lookup cache files, so nothing carries over between runs;
    ``ubatch``: ``-ub``)."""
    cmd = [str(bin_dir / "llama-lookup"), "-m", str(model), "-t", str(threads)]
    cmd += ["-c", str(n_ctx), "-n", str(n_predict), "--ignore-eos", "--temp", "0"]
    if ubatch is not None:
        cmd += ["-ub", str(ubatch)]
    cmd += ["--spec-draft-n-max", str(n_draft), "-p", prompt]
    done = _run(cmd, timeout=600)
    return parse_llama_lookup(done.stderr, done.stdout, prompt)
