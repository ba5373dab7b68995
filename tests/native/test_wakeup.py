"""``_core._send_wakeup``: one byte to a non-blocking socket, keeping the GIL."""

from __future__ import annotations

import socket

import pytest
from fireside import _core

from ..gil import Witness, no_forced_switches


def test_it_sends_until_the_buffer_is_full_then_says_so() -> None:
    reader, writer = socket.socketpair()
    with reader, writer:
        writer.setblocking(False)
        sent = 0
        while _core._send_wakeup(writer.fileno()):
            sent += 1
            assert sent < 10_000_000, "the buffer never filled"
        assert sent > 0
        reader.setblocking(False)
        received = b""
        while len(received) < sent:
            received += reader.recv(sent)
        assert received == b"\0" * sent


def test_a_closed_socket_is_an_os_error() -> None:
    writer, other = socket.socketpair()
    fd = writer.fileno()
    other.close()
    writer.close()
    with pytest.raises(OSError):
        _core._send_wakeup(fd)


def test_it_keeps_the_gil() -> None:
    # A thread that waits for the GIL gets it only when this thread gives it up: with a
    # long switch interval, not during a hundred sends (a socket send from Python would
    # let it in at once).
    reader, writer = socket.socketpair()
    with reader, writer:
        writer.setblocking(False)
        log: list[str] = []
        with no_forced_switches():
            witness = Witness(log)
            witness.wake()
            for _ in range(100):
                _core._send_wakeup(writer.fileno())
            log.append("sent")
        witness.join()
        assert log == ["sent", "witness"]
