"""Distributed inference over ggml RPC: workers, and models spread across them.

A worker (``fireside rpc-server``, or :func:`serve`) lends this machine's CPU to other
processes; a :class:`fireside.Model` created with ``rpc_servers=["host:port", ...]`` places
its layers on those workers (and any local GPU) and evaluates them there. This is
llama.cpp's own RPC backend; fireside adds checks with clear errors:

- an endpoint that is malformed, refuses the connection or does not answer the handshake
  within ``timeout`` seconds raises :class:`~fireside.errors.RemoteDeviceError` before
  anything is loaded;
- a worker lost later (stopped, crashed, network gone) makes the running decode raise
  :class:`~fireside.errors.RemoteDeviceError` instead of aborting the process.

The RPC protocol has **no authentication and no encryption**: anyone who can reach a worker's
port can use its CPU and memory and read the tensors it holds. Keep workers on loopback or a
trusted private network.
"""

from __future__ import annotations

import logging
import signal
import socket
import struct
import sys
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from fireside.defaults import default_n_threads
from fireside.errors import RemoteDeviceError
from fireside.netaddr import is_loopback

if TYPE_CHECKING:
    from fireside._core import Device

log = logging.getLogger("fireside.rpc")

DEFAULT_PORT = 50052
CONNECT_TIMEOUT = 5.0
"""Seconds an endpoint has to accept the connection and answer the handshake."""

# The first message of ggml's RPC protocol, stable across versions: command 14 (HELLO),
# then the request size (8 bytes, little-endian) and the client's 24 capability bytes.
_HELLO = 14
_CAPS_SIZE = 24
_MAX_HELLO_REPLY = 4096  # the reply: major, minor, patch, padding, the server's capabilities

_registered: set[str] = set()
_lock = threading.Lock()


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """``(host, port)`` of ``"host:port"``; ``ValueError`` naming what is wrong otherwise."""
    if not isinstance(endpoint, str):
        raise TypeError(f"an RPC endpoint is a 'host:port' string, got {type(endpoint).__name__}")
    host, sep, port_text = endpoint.strip().rpartition(":")
    if not sep or not host or not port_text:
        raise ValueError(
            f"RPC endpoint {endpoint!r} is not 'host:port' (e.g. 127.0.0.1:{DEFAULT_PORT})"
        )
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"RPC endpoint {endpoint!r}: the port must be a number in 1..65535")
    if host.startswith("[") or ":" in host:
        raise ValueError(
            f"RPC endpoint {endpoint!r}: ggml's RPC client only speaks IPv4 and host names"
        )
    return host, int(port_text)


def split_endpoints(value: str | Iterable[str] | None) -> list[str]:
    """A list of endpoints from ``"a:1,b:2"`` or an iterable of them (duplicates refused)."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    endpoints = [item.strip() for item in items if isinstance(item, str) and item.strip()]
    if len(endpoints) != len(items):
        raise ValueError(f"rpc_servers must be 'host:port' strings, got {value!r}")
    for endpoint in endpoints:
        parse_endpoint(endpoint)
    if len(set(endpoints)) != len(endpoints):
        raise ValueError(f"rpc_servers lists an endpoint twice: {value!r}")
    return endpoints


def probe(endpoint: str, timeout: float = CONNECT_TIMEOUT) -> tuple[int, int, int]:
    """Connect to a worker and complete the protocol's handshake; returns its version.

    Raises :class:`~fireside.errors.RemoteDeviceError` saying why the worker cannot be used
    (refused, unreachable, silent, or not a ggml RPC server), within about ``timeout`` s.
    """
    host, port = parse_endpoint(endpoint)
    hello = struct.pack("<BQ", _HELLO, _CAPS_SIZE) + bytes(_CAPS_SIZE)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(hello)
            (size,) = struct.unpack("<Q", _receive(sock, 8))
            if not 3 <= size <= _MAX_HELLO_REPLY:
                raise RemoteDeviceError(f"{endpoint} answered, but not as a ggml RPC server")
            major, minor, patch = _receive(sock, size)[:3]
    except socket.gaierror as e:
        raise RemoteDeviceError(
            f"RPC server {endpoint}: cannot resolve {host!r} ({e.strerror})"
        ) from e
    except ConnectionRefusedError as e:
        raise RemoteDeviceError(
            f"RPC server {endpoint} refused the connection: no worker listens there "
            f"(start one with `fireside rpc-server --port {port}`)"
        ) from e
    except TimeoutError as e:
        raise RemoteDeviceError(
            f"RPC server {endpoint} did not answer within {timeout:g} s (unreachable, or busy: "
            "a worker serves one client at a time)"
        ) from e
    except OSError as e:
        raise RemoteDeviceError(f"RPC server {endpoint}: {e.strerror or e}") from e
    from fireside import _core

    ours = _core.RPC_PROTOCOL_VERSION
    if major != ours[0] or minor > ours[1]:
        raise RemoteDeviceError(
            f"RPC server {endpoint} speaks protocol {major}.{minor}.{patch}; this fireside "
            f"speaks {ours[0]}.{ours[1]}.{ours[2]} (use the same llama.cpp version on both sides)"
        )
    return major, minor, patch


def _receive(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise OSError(0, "the connection closed during the handshake (not a ggml RPC server?)")
        data += chunk
    return data


def connect(endpoints: Sequence[str], timeout: float = CONNECT_TIMEOUT) -> list[Device]:
    """Register the workers at ``endpoints`` with llama.cpp; returns their devices.

    An endpoint already registered in this process is not probed again (its worker serves
    this process's connection, so a second one would wait for it).
    """
    from fireside import _core

    if not _core.supports_rpc():
        raise RemoteDeviceError("this fireside build has no RPC backend (built with GGML_RPC=OFF)")
    devices: list[Device] = []
    with _lock:
        for endpoint in endpoints:
            if endpoint not in _registered:
                probe(endpoint, timeout)
            devices += _core.rpc_add_server(endpoint)
            _registered.add(endpoint)
    return devices


def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    threads: int | None = None,
    mem_mb: int | None = None,
    cache_dir: str | None = None,
) -> None:
    """Run a ggml RPC worker serving this machine's CPU until SIGINT or SIGTERM.

    Blocks the calling (main) thread; the worker runs with the GIL released. ``mem_mb`` is
    the memory the worker reports to clients (they split layers by it; default: the free
    RAM). ``cache_dir`` lets clients skip sending tensors the worker already holds.
    """
    from fireside import _core

    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("fireside.rpc.serve() must run in the main thread (it handles signals)")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if mem_mb is not None and mem_mb < 1:
        raise ValueError(f"mem_mb must be >= 1, got {mem_mb}")
    parse_endpoint(f"{host}:{port}")
    _check_port_free(host, port)
    if not is_loopback(host):
        log.warning(
            "the RPC worker listens on %s, beyond this machine. The ggml RPC protocol has NO "
            "authentication and NO encryption: anyone who can reach port %d can use this "
            "machine's CPU and memory through it. Only do this on a trusted private network.",
            host,
            port,
        )
    stop = threading.Event()
    ended: list[BaseException | None] = []  # what the worker thread ended with

    def work() -> None:
        try:
            _core.rpc_start_server(
                f"{host}:{port}",
                cache_dir=cache_dir,
                n_threads=threads or default_n_threads(),  # not _core's own count
                mem_bytes=(mem_mb or 0) * 1024 * 1024,
            )
            ended.append(None)  # ggml's server only returns when it could not start
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            ended.append(e)
        stop.set()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        threading.Thread(target=work, name="fireside-rpc-worker", daemon=True).start()
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    sys.stdout.flush()
    if ended and ended[0] is not None:
        raise ended[0]
    if ended:
        raise RemoteDeviceError(
            f"the RPC worker on {host}:{port} could not start (see the lines above)"
        )
    # Stopped by a signal: the worker thread is a daemon, blocked in accept(); it ends with
    # the process.


def _check_port_free(host: str, port: int) -> None:
    """Fail clearly when the port is taken (ggml's server would only print a line)."""
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise RemoteDeviceError(f"cannot listen on {host}: {e.strerror}") from e
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(infos[0][4])
        except OSError as e:
            raise RemoteDeviceError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
