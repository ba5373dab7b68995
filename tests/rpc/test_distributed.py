"""A model spread over two real RPC workers decodes exactly like the local model."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import fireside
import pytest
from fireside import Model, _core
from fireside.rpc import connect

from tests.rpc.conftest import Worker

PROMPT = "The three primary colors are"


def greedy_tokens(model: Model) -> list[int]:
    tokens = model.generate(PROMPT, max_tokens=24, temperature=0).tokens
    assert len(tokens) > 5
    return tokens


@contextmanager
def weights_by_buffer(caplog: pytest.LogCaptureFixture) -> Iterator[dict[str, float]]:
    """Collect llama.cpp's "<buffer> model buffer size = N MiB" load report."""
    sizes: dict[str, float] = {}
    _core.set_log_level(logging.INFO)
    try:
        with caplog.at_level(logging.INFO, logger="fireside.llama"):
            yield sizes
            _core.flush_logs()
            for record in caplog.records:
                found = re.search(r"(\S+) model buffer size = +([\d.]+) MiB", record.getMessage())
                if found:
                    sizes[found[1]] = float(found[2])
    finally:
        _core.set_log_level(logging.WARNING)


def on_worker(sizes: dict[str, float], endpoint: str) -> float:
    return sum(size for name, size in sizes.items() if endpoint in name)


def test_split_over_two_workers_is_token_identical(
    model_path: Path, two_workers: list[Worker], caplog: pytest.LogCaptureFixture
) -> None:
    with Model(model_path, n_ctx=256, n_threads=1, device="cpu") as local:
        expected = greedy_tokens(local)
    endpoints = [w.endpoint for w in two_workers]
    with weights_by_buffer(caplog) as sizes:
        remote = Model(model_path, n_ctx=256, n_threads=1, rpc_servers=endpoints)
    with remote:
        listed = {d.description: d for d in fireside.devices() if d.remote}
        assert set(listed) >= set(endpoints)
        assert all(
            d.memory_total > 0 and d.type == "gpu" and d.backend == "RPC" for d in listed.values()
        )
        # both workers hold weights (they report the same memory: about half each)
        total = sum(sizes.values())
        for endpoint in endpoints:
            assert on_worker(sizes, endpoint) > total / 4, sizes
        assert greedy_tokens(remote) == expected


def test_comma_separated_and_partial_offload(
    model_path: Path, two_workers: list[Worker], caplog: pytest.LogCaptureFixture
) -> None:
    endpoints = ",".join(w.endpoint for w in two_workers)
    with Model(model_path, n_ctx=256, n_threads=1, device="cpu") as local:
        expected = greedy_tokens(local)
    with weights_by_buffer(caplog) as sizes:
        mixed = Model(model_path, n_ctx=256, n_threads=1, rpc_servers=endpoints, n_gpu_layers=10)
    with mixed:
        local_weights = sum(size for name, size in sizes.items() if "RPC" not in name)
        assert local_weights > sum(sizes.values()) / 2, sizes  # 20 of 30 layers stay here
        assert all(on_worker(sizes, w.endpoint) > 0 for w in two_workers), sizes
        assert greedy_tokens(mixed) == expected


def test_other_models_stay_local(
    model_path: Path, two_workers: list[Worker], caplog: pytest.LogCaptureFixture
) -> None:
    """Workers registered for one model are not used by a model that did not ask for them."""
    with Model(model_path, n_ctx=256, n_threads=1, rpc_servers=[two_workers[0].endpoint]):
        with weights_by_buffer(caplog) as sizes:
            plain = Model(model_path, n_ctx=256, n_threads=1)
        with plain:
            assert sizes and not any("RPC" in name for name in sizes), sizes


def test_a_gone_worker_does_not_affect_local_models(
    model_path: Path, worker_factory: Callable[..., Worker], caplog: pytest.LogCaptureFixture
) -> None:
    """A worker registered in this process and then stopped: models that do not name it,
    native or not, load and run on this machine as before."""
    worker = worker_factory()
    connect([worker.endpoint])
    worker.stop()
    with weights_by_buffer(caplog) as sizes:
        native = _core.Model(model_path)
    try:
        assert sizes and not any("RPC" in name for name in sizes), sizes
    finally:
        native.close()
    with Model(model_path, n_ctx=256, n_threads=1) as plain:
        assert greedy_tokens(plain)
