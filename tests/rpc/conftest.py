"""ggml RPC workers for the tests: real ``fireside rpc-server`` processes on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.cli.conftest import cli_env  # noqa: F401 - the CLI tests' isolated environment

CLI = [sys.executable, "-m", "fireside.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Worker:
    endpoint: str
    process: subprocess.Popen[str]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> tuple[int, str]:
        """Send ``sig``; return the exit status and everything the worker printed."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        out, _ = self.process.communicate(timeout=timeout)
        return self.process.returncode, out


def start_worker(*args: str, port: int | None = None, timeout: float = 60) -> Worker:
    """Start ``fireside rpc-server`` on a free loopback port; return once it accepts."""
    port = port or free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [*CLI, "rpc-server", "--port", str(port), "--threads", "1", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out = process.communicate()[0]
            raise RuntimeError(f"the RPC worker exited ({process.returncode}):\n{out}")
        try:
            # A bare connect is enough: the worker drops a client that sends nothing.
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return Worker(f"127.0.0.1:{port}", process)
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the RPC worker on port {port} did not start within {timeout} s")


@pytest.fixture
def worker_factory() -> Iterator[Callable[..., Worker]]:
    """Start workers on demand; every one still running is stopped afterwards."""
    started: list[Worker] = []

    def make(*args: str, port: int | None = None) -> Worker:
        worker = start_worker(*args, port=port)
        started.append(worker)
        return worker

    yield make
    for worker in started:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.communicate()


@pytest.fixture(scope="module")
def two_workers() -> Iterator[list[Worker]]:
    """Two workers shared by a module's tests (one client at a time may use them)."""
    workers = [start_worker(), start_worker()]
    yield workers
    for worker in workers:
        worker.process.kill()
        worker.process.communicate()
