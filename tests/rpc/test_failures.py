"""Workers that are absent, silent, malformed or lost give clear errors: never a hang or a crash."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fireside import Model
from fireside.errors import RemoteDeviceError
from fireside.rpc import probe, split_endpoints

from tests.rpc.conftest import Worker, free_port


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("localhost", "is not 'host:port'"),
        ("127.0.0.1:", "is not 'host:port'"),
        ("127.0.0.1:http", "the port must be a number"),
        ("127.0.0.1:70000", "the port must be a number"),
        ("[::1]:50052", "IPv4"),
        (["127.0.0.1:1", "127.0.0.1:1"], "twice"),
        ([1234], "'host:port' strings"),
    ],
)
def test_malformed_endpoints(model_path: Path, value: object, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        split_endpoints(value)  # type: ignore[arg-type]
    with pytest.raises((ValueError, TypeError), match=message):
        Model(model_path, rpc_servers=value)  # type: ignore[arg-type]


def test_nobody_listening_is_refused_at_once(model_path: Path) -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(RemoteDeviceError, match=f"{endpoint} refused the connection") as caught:
        Model(model_path, rpc_servers=[endpoint])
    assert isinstance(caught.value, ConnectionError)
    assert time.monotonic() - started < 30


@contextmanager
def listener() -> Iterator[tuple[socket.socket, str]]:
    """A loopback socket that listens but is no RPC worker, and its endpoint."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
        yield sock, f"127.0.0.1:{sock.getsockname()[1]}"


def test_silent_listener_times_out(model_path: Path) -> None:
    """A port that accepts but never answers the handshake (a busy or wrong server)."""
    with listener() as (_, endpoint):
        started = time.monotonic()
        with pytest.raises(RemoteDeviceError, match="did not answer within 1 s"):
            probe(endpoint, timeout=1)
        with pytest.raises(RemoteDeviceError, match="did not answer within 5 s"):
            Model(model_path, rpc_servers=[endpoint])
        assert time.monotonic() - started < 60


def test_not_an_rpc_server() -> None:
    """Something else on the port (here: a server that answers and hangs up)."""
    with listener() as (sock, endpoint):

        def answer_and_close() -> None:
            conn, _ = sock.accept()
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

        threading.Thread(target=answer_and_close, daemon=True).start()
        with pytest.raises(
            RemoteDeviceError, match="not as a ggml RPC server|closed during the handshake"
        ):
            probe(endpoint, timeout=10)


# The client runs in its own process: were a lost worker to abort() it, the test would see
# the signal instead of pytest dying with it.
KILLED_MID_GENERATION = textwrap.dedent(
    """
    import os, signal, sys, time
    from fireside import Model
    from fireside.errors import RemoteDeviceError

    model_path, endpoint, worker_pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
    model = Model(model_path, n_ctx=512, n_threads=1, rpc_servers=[endpoint])
    stream = model.generate("Once upon a time, in a land far away,", max_tokens=400,
                            temperature=0, stream=True)
    pieces = 0
    try:
        for _ in stream:
            pieces += 1
            if pieces == 3:
                os.kill(worker_pid, signal.SIGKILL)
        print("FINISHED WITHOUT ERROR", pieces)
    except RemoteDeviceError as e:
        print("ERROR", type(e).__name__, e, flush=True)
    started = time.monotonic()
    try:
        model.generate("Again?", max_tokens=4)
        print("SECOND GENERATION SUCCEEDED")
    except RemoteDeviceError as e:
        print("SECOND", type(e).__name__, round(time.monotonic() - started), e, flush=True)
    model.close()
    print("CLOSED", flush=True)
    """
)


def test_worker_killed_mid_generation(
    model_path: Path, worker_factory: Callable[..., Worker]
) -> None:
    worker = worker_factory()
    client = subprocess.run(
        [
            sys.executable,
            "-c",
            KILLED_MID_GENERATION,
            str(model_path),
            worker.endpoint,
            str(worker.process.pid),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = client.stdout
    assert client.returncode == 0, (client.returncode, out, client.stderr[-3000:])
    assert (
        f"ERROR RemoteDeviceError lost the connection to the RPC server at {worker.endpoint}" in out
    ), out
    assert "SECOND RemoteDeviceError" in out and "load the model again" in out, out
    assert "CLOSED" in out, out
