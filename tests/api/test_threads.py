"""Machine defaults: never more threads than physical cores; a context that fits; and one
owner of the thread count (the policy's), whoever loads the model."""

from __future__ import annotations

import io
import os
import socket
from pathlib import Path

import psutil
import pytest
from fireside import _core, defaults, rpc
from fireside.generation import threads
from fireside.model import Model
from fireside.server.engine import Engine


def test_threads_are_the_usable_physical_cores() -> None:
    n = defaults.default_n_threads()
    assert 1 <= n
    assert n <= (psutil.cpu_count(logical=False) or n)
    if hasattr(os, "sched_getaffinity"):
        assert n <= len(os.sched_getaffinity(0))


def fake_files(monkeypatch: pytest.MonkeyPatch, files: dict[str, str]) -> None:
    """``defaults`` reads these files (path -> text) instead of the real sysfs/cgroup ones;
    any other path it opens does not exist."""

    def fake_open(path: str, *args: object, **kwargs: object) -> io.StringIO:
        if path not in files:
            raise FileNotFoundError(path)
        return io.StringIO(files[path])

    monkeypatch.setattr(defaults, "open", fake_open, raising=False)


def topology(cores: list[tuple[int, int]]) -> dict[str, str]:
    """sysfs topology files for logical CPUs 0.. with these (core_id, package_id)."""
    files = {}
    for cpu, (core, package) in enumerate(cores):
        base = f"/sys/devices/system/cpu/cpu{cpu}/topology/"
        files[base + "core_id"] = f"{core}\n"
        files[base + "physical_package_id"] = f"{package}\n"
    return files


def test_a_cpu_quota_caps_the_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(defaults, "allowed_cpus", lambda: {0, 1, 2, 3})
    files = topology([(0, 0), (1, 0), (2, 0), (3, 0)])
    fake_files(monkeypatch, {**files, "/sys/fs/cgroup/cpu.max": "150000 100000\n"})
    assert defaults.physical_cores() == 2  # 1.5 CPUs of quota, rounded up
    fake_files(monkeypatch, {**files, "/sys/fs/cgroup/cpu.max": "max 100000\n"})
    assert defaults.physical_cores() == 4  # no quota


def test_hyperthreads_are_not_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    # four logical CPUs that are two cores with two hyper-threads each
    monkeypatch.setattr(defaults, "allowed_cpus", lambda: {0, 1, 2, 3})
    fake_files(monkeypatch, topology([(0, 0), (1, 0), (0, 0), (1, 0)]))
    assert defaults.physical_cores() == 2
    # the same core numbers on two packages are different cores
    fake_files(monkeypatch, topology([(0, 0), (1, 0), (0, 1), (1, 1)]))
    assert defaults.physical_cores() == 4
    # only the CPUs this process may use count (taskset to both threads of one core)
    monkeypatch.setattr(defaults, "allowed_cpus", lambda: {0, 2})
    fake_files(monkeypatch, topology([(0, 0), (1, 0), (0, 0), (1, 0)]))
    assert defaults.physical_cores() == 1


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


def test_one_owner_decides_the_thread_count(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Model``, the server's engine and the RPC worker take the most threads from the
    policy's one source: with it patched to 3, each uses 3 (not its own count)."""
    monkeypatch.setattr(threads, "default_n_threads", lambda: 3)
    with Model(model_path, embedding=True) as model:
        assert model.thread_stats.max_threads == 3
        assert "n_threads=3" in repr(model)
        engine = Engine(model.core, parallel=1, n_ctx_seq=64, n_batch=64)
        try:
            assert engine.threads.max_threads == engine.threads.n_threads == 3
        finally:
            engine.close()
    # a fixed count is used as given, by both
    with Model(model_path, embedding=True, n_threads=1) as model:
        assert model.n_threads == 1 and model.thread_stats.max_threads == 1


def test_the_rpc_worker_passes_the_default_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """The RPC worker names its thread count itself (``_core``'s own default is not used)."""
    seen: dict[str, object] = {}

    def start_server(endpoint: str, **options: object) -> None:
        seen.update(options)
        raise OSError("stop here")

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(rpc, "default_n_threads", lambda: 5)
    monkeypatch.setattr(_core, "rpc_start_server", start_server)
    with pytest.raises(OSError, match="stop here"):
        rpc.serve("127.0.0.1", port)
    assert seen["n_threads"] == 5
