"""``llama-server`` (built by ``benchmarks/build_reference.py`` from the vendored tree),
driven like ``fireside serve``: the same requests and clients as
:class:`~fireside.bench.serving.ServerBench`. Used by the ``server`` section (8 streams,
the same threads) and the ``busy`` section (its default threads)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from fireside.bench.serving import ServerBench, ServerError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (for a server that cannot take port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LlamaServerBench(ServerBench):
    """``llama-server -np parallel`` with ``-t threads`` (``None``: its default threads)."""

    def __init__(
        self, bin_dir: Path, model: Path, *, threads: int | None = None, **options: Any
    ) -> None:
        super().__init__(model, threads=threads, **options)
        self.bin_dir = bin_dir

    def command(self) -> list[str]:
        return [
            str(self.bin_dir / "llama-server"),
            "-m",
            str(self.model),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "-np",
            str(self.parallel),
            "-c",
            str(self.ctx_per_slot * self.parallel),
            *(["-t", str(self.threads)] if self.threads is not None else []),
        ]

    def start(self) -> None:
        """Start it on a free port and wait until ``/health`` answers 200."""
        self._load_vocab()
        self.port = free_port(self.host)
        proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._proc = proc
        deadline = time.monotonic() + self.startup_timeout
        while not self._healthy():
            if proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ServerError("llama-server did not start (or never became healthy)")
            time.sleep(0.1)
