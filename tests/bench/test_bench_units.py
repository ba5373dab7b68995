"""The benchmark's arithmetic and parsers, on recorded tool output (no model, no timing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from fireside.bench.clients import StreamRecord, steady_rate, wall_rate
from fireside.bench.contention import ContentionMonitor
from fireside.bench.generation import steady_rate as generate_rate
from fireside.bench.reference import (
    ReferenceError,
    parse_batched_bench,
    parse_llama_bench,
    parse_llama_completion,
)
from fireside.bench.stats import Figure, paired_ratio, ratio
from fireside.bench.suite import TARGETS


def test_figure_median_spread_and_ratio() -> None:
    a = Figure("a", "t/s", [100.0, 90.0, 110.0, 105.0, 95.0])
    b = Figure("b", "t/s", [200.0])
    assert a.median == 100.0
    assert a.spread == pytest.approx(0.2)
    assert b.spread == 0.0
    assert ratio(a, b) == pytest.approx(0.5)
    assert ratio(a, Figure("empty", "t/s")) is None
    assert ratio(None, b) is None
    assert a.to_json()["samples"] == [100.0, 90.0, 110.0, 105.0, 95.0]


def test_paired_ratio_cancels_drift_that_hits_both_sides() -> None:
    # the machine slows down run by run; each pair is measured back to back
    ours = Figure("ours", "t/s", [97.0, 48.5, 97.0, 24.25, 97.0])
    ref = Figure("ref", "t/s", [100.0, 50.0, 100.0, 25.0, 100.0])
    assert paired_ratio(ours, ref) == pytest.approx(0.97)
    assert paired_ratio(ours, Figure("short", "t/s", [1.0])) is None
    assert paired_ratio(Figure("empty", "t/s"), ref) is None


def test_targets_check_both_directions() -> None:
    by_key = {t.key: t for t in TARGETS}
    assert by_key["decode.pp"].check(0.99)["met"] is True
    assert by_key["decode.pp"].check(0.97)["met"] is False
    assert by_key["import_s"].check(0.31)["met"] is False
    assert by_key["import_s"].check(0.1)["met"] is True
    assert by_key["chat.ttft_last_over_first"].check(None)["met"] is None


LLAMA_BENCH_JSON = [
    {
        "build_commit": "0c1e5709",
        "model_type": "llama ?B Q4_1",
        "n_threads": 2,
        "n_prompt": 512,
        "n_gen": 0,
        "avg_ts": 490.5,
        "stddev_ts": 0.0,
        "samples_ns": [1043832000],
        "samples_ts": [490.5],
    },
    {
        "build_commit": "0c1e5709",
        "n_threads": 2,
        "n_prompt": 0,
        "n_gen": 128,
        "avg_ts": 168.2,
        "stddev_ts": 1.0,
        "samples_ns": [761000000, 760000000],
        "samples_ts": [168.2, 168.4],
    },
]


def test_parse_llama_bench() -> None:
    got = parse_llama_bench(json.dumps(LLAMA_BENCH_JSON, indent=2))
    assert got == {"pp512": [490.5], "tg128": [168.2, 168.4]}
    with pytest.raises(ReferenceError, match="no JSON"):
        parse_llama_bench("error: failed to load model\n")


COMPLETION_STDERR = """\
common_perf_print:    sampling time =      12.91 ms /   137 runs   (    0.09 ms per token, 10611.93 tokens per second)
common_perf_print:        load time =     104.11 ms
common_perf_print: prompt eval time =      30.25 ms /     9 tokens (    3.36 ms per token,   297.52 tokens per second)
common_perf_print:        eval time =     758.93 ms /   127 runs   (    5.98 ms per token,   167.34 tokens per second)
common_perf_print:       total time =     812.31 ms /   136 tokens
common_perf_print: unaccounted time =      10.22 ms /   7.7 %      (total - sampling - prompt eval - eval) / (total)
"""


def test_parse_llama_completion_reads_eval_not_prompt_eval() -> None:
    t = parse_llama_completion(COMPLETION_STDERR)
    assert t.eval_tokens_per_second == pytest.approx(167.34)
    assert t.eval_runs == 127
    assert t.eval_ms == pytest.approx(758.93)
    assert t.load_ms == pytest.approx(104.11)
    assert t.prompt_tokens == 9
    assert t.sampling_ms == pytest.approx(12.91)
    with pytest.raises(ReferenceError, match="eval time"):
        parse_llama_completion("prompt eval time = 1.0 ms / 2 tokens\n")


BATCHED_STDOUT = """\
main: n_kv_max = 4096, n_batch = 2048, n_ubatch = 512, flash_attn = -1, is_pp_shared = 0, \
is_tg_separate = 0, n_gpu_layers = -1, n_threads = 2, n_threads_batch = 2

|    PP |     TG |    B |   N_KV |   T_PP s | S_PP t/s |   T_TG s | S_TG t/s |      T s |    S t/s |
|-------|--------|------|--------|----------|----------|----------|----------|----------|----------|
|    32 |    128 |    1 |    160 |    0.071 |   450.70 |    0.781 |   163.89 |    0.852 |   187.79 |
|    32 |    128 |    8 |   1280 |    0.547 |   468.01 |    2.514 |   407.32 |    3.061 |   418.16 |
"""


def test_parse_batched_bench_table() -> None:
    rows = parse_batched_bench(BATCHED_STDOUT)
    assert [r.b for r in rows] == [1, 8]
    assert rows[1].s_tg == pytest.approx(407.32)
    assert rows[0].pp == 32 and rows[0].tg == 128 and rows[1].n_kv == 1280
    with pytest.raises(ReferenceError, match="no table"):
        parse_batched_bench("main: error\n")


def test_steady_rate_counts_only_the_window_where_all_streams_generate() -> None:
    # stream a: tokens at 1..10 s; stream b starts late: tokens at 5..10 s
    a = StreamRecord(t_start=0.0, times=[float(t) for t in range(1, 11)], t_end=10.0)
    b = StreamRecord(t_start=0.0, times=[float(t) for t in range(5, 11)], t_end=10.0)
    # window (5, 10]: 5 tokens each over 5 s
    assert steady_rate([a, b]) == pytest.approx(2.0)
    assert wall_rate([a, b]) == pytest.approx(16 / 10)
    # a server merging two tokens per event: usage says 20 tokens for 10 events
    a.completion_tokens = 20
    assert steady_rate([a]) == pytest.approx(9 * 2 / 9)


def test_generate_rate_excludes_prompt_and_first_token() -> None:
    # 129 tokens; prompt 100 ms, first token at 110 ms, generation (from prompt end) 1010 ms
    assert generate_rate(129, 1010.0, 110.0, 100.0) == pytest.approx(128 / 1.0)
    assert generate_rate(1, 10.0, 5.0, 1.0) == 0.0


def test_contention_monitor_counts_other_processes_not_ours() -> None:
    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass\ntime.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", busy])
    try:
        other = ContentionMonitor()  # does not know the child: its CPU is "other"
        ours = ContentionMonitor(lambda: [child.pid])  # counts the child as ours
        t0 = time.monotonic()
        other.start()
        ours.start()
        time.sleep(1.5)
        a, b = other.share(), ours.share()
        elapsed = time.monotonic() - t0
    finally:
        child.kill()
        child.wait()
    if a is None:
        pytest.skip("no /proc/stat on this platform")
    assert b is not None and 0.0 <= b <= 1.0
    # same window, so whatever else ran is in both; the child's 0.6 CPU-seconds only in one
    child_share = 0.6 / (elapsed * (os.cpu_count() or 1))
    assert a - b > child_share / 2
