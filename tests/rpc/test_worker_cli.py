"""``fireside rpc-server`` and the ``--rpc`` option of the other commands, as a user runs them."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from fireside.rpc import connect

from tests.cli.conftest import fireside
from tests.rpc.conftest import Worker, free_port


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stops_cleanly_on_signal(worker_factory: Callable[..., Worker], sig: int) -> None:
    worker = worker_factory()
    status, out = worker.stop(sig)
    assert status == 0, out
    assert f"RPC worker on {worker.endpoint}" in out
    assert "RPC worker stopped" in out
    assert "NO authentication" not in out  # loopback: no warning


def test_warns_loudly_beyond_loopback(worker_factory: Callable[..., Worker]) -> None:
    port = free_port()
    worker = worker_factory("--host", "0.0.0.0", port=port)
    status, out = worker.stop()
    assert status == 0
    assert "NO authentication" in out and f"port {port}" in out, out


def test_port_taken(cli_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = fireside(cli_env, "rpc-server", "--port", str(port), timeout=60)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr, done.stderr


def test_mem_is_what_clients_see(worker_factory: Callable[..., Worker]) -> None:
    worker = worker_factory("--mem", "64")
    (device,) = connect([worker.endpoint])
    assert device.memory_total == 64 * 1024 * 1024
    assert device.memory_free == 64 * 1024 * 1024
    assert device.description == worker.endpoint


def test_run_with_rpc(
    cli_env: dict[str, str], model_path: Path, worker_factory: Callable[..., Worker]
) -> None:
    worker = worker_factory()
    args = ("run", "--rpc", worker.endpoint, "-t", "0", "-n", "12", "--threads", "1")
    remote = fireside(cli_env, *args, str(model_path), "Name a color.")
    local = fireside(
        cli_env, "run", "-t", "0", "-n", "12", "--threads", "1", str(model_path), "Name a color."
    )
    assert remote.returncode == 0, remote.stderr
    assert remote.stdout.strip() and remote.stdout == local.stdout


def test_run_with_unreachable_rpc(cli_env: dict[str, str], model_path: Path) -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    done = fireside(cli_env, "run", "--rpc", endpoint, str(model_path), "Hi", timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: RPC server {endpoint} refused the connection"), (
        done.stderr
    )
    assert "Traceback" not in done.stderr


def test_help_lists_the_options(cli_env: dict[str, str]) -> None:
    for command in ("run", "chat", "serve"):
        assert "--rpc" in fireside(cli_env, command, "--help").stdout
    shown = fireside(cli_env, "rpc-server", "--help").stdout
    for option in ("--host", "--port", "--mem", "--threads"):
        assert option in shown


def test_devices_lists_workers(
    cli_env: dict[str, str], worker_factory: Callable[..., Worker]
) -> None:
    worker = worker_factory("--mem", "2048")
    done = fireside(cli_env, "devices", "--rpc", worker.endpoint)
    assert done.returncode == 0, done.stderr
    (row,) = [line for line in done.stdout.splitlines() if worker.endpoint in line]
    assert row.split()[:3] == ["RPC0", "gpu", "RPC"] and "2.0 GiB" in row, row
    assert "GPU devices: none (CPU only)" in done.stdout  # a worker is not a local GPU
