"""Waiting until a thread is busy inside a native call, by that thread's own CPU-time
counter: no sleep, no guess of how fast the machine is."""

from __future__ import annotations

import threading
import time

import psutil


def cpu_seconds(native_id: int) -> float | None:
    """CPU time used so far by this process's thread ``native_id`` (``None``: it ended)."""
    for thread in psutil.Process().threads():
        if thread.id == native_id:
            return float(thread.user_time + thread.system_time)
    return None


def wait_for_cpu(
    thread: threading.Thread, native_id: int, seconds: float, *, timeout: float = 60.0
) -> None:
    """Return once thread ``native_id`` (run by ``thread``) has used ``seconds`` more CPU
    time than when called; fail when it ends first or after ``timeout`` seconds."""
    start = cpu_seconds(native_id)
    assert start is not None, "the thread has ended"
    deadline = time.monotonic() + timeout
    while True:
        used = cpu_seconds(native_id)
        assert used is not None and thread.is_alive(), "the thread ended before it was busy"
        if used - start >= seconds:
            return
        assert time.monotonic() < deadline, f"the thread used no {seconds}s of CPU in {timeout}s"
        thread.join(0.005)  # wakes at once if the thread ends
