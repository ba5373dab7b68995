"""Machine defaults: never more threads than physical cores; a context that fits."""

from __future__ import annotations

import os

import psutil
import pytest
from fireside import defaults


def test_threads_are_the_usable_physical_cores() -> None:
    n = defaults.default_n_threads()
    assert 1 <= n
    assert n <= (psutil.cpu_count(logical=False) or n)
    if hasattr(os, "sched_getaffinity"):
        assert n <= len(os.sched_getaffinity(0))


def test_a_cpu_quota_caps_the_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(defaults, "_cgroup_cpu_limit", lambda: 1)
    assert defaults.physical_cores() == 1


def test_hyperthreads_are_not_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    # four logical CPUs that are two cores with two hyper-threads each
    monkeypatch.setattr(defaults, "_allowed_cpus", lambda: {0, 1, 2, 3})
    monkeypatch.setattr(defaults, "_cores_of", lambda cpus: 2)
    monkeypatch.setattr(defaults, "_cgroup_cpu_limit", lambda: None)
    assert defaults.physical_cores() == 2


def test_default_context() -> None:
    kv = defaults.kv_bytes_per_token(n_layer=30, n_embd=576, n_head=9, n_head_kv=3)
    assert kv == 2 * 30 * 3 * 64 * 2
    gib = 1 << 30
    assert defaults.default_n_ctx(8192, kv, ram=64 * gib) == 8192
    assert defaults.default_n_ctx(131072, kv, ram=64 * gib) == defaults.MAX_DEFAULT_N_CTX
    assert defaults.default_n_ctx(2048, kv, ram=64 * gib) == 2048
    # an 8B model's KV cache (128 KiB per token) on a 4 GiB machine: 512 MiB of cache
    big = defaults.kv_bytes_per_token(n_layer=32, n_embd=4096, n_head=32, n_head_kv=8)
    assert defaults.default_n_ctx(131072, big, ram=4 * gib) == 4096
    # never below the minimum, never above what the model was trained for
    assert defaults.default_n_ctx(131072, big, ram=gib // 4) == defaults.MIN_N_CTX
    assert defaults.default_n_ctx(300, kv, ram=64 * gib) == 300
    assert defaults.default_n_ctx(0, kv, ram=64 * gib) == defaults.MAX_DEFAULT_N_CTX
    assert defaults.default_n_ctx(8192, kv) % 256 == 0
