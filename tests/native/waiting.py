"""Waiting until a thread is busy inside a native call, by the process's CPU-time counter:
no sleep, no guess of how fast the machine is.

The process's counter, not the calling thread's: llama.cpp computes every graph on
fireside's compute thread (and its OpenMP workers), while the caller waits.
"""

from __future__ import annotations

import threading
import time


def wait_for_cpu(thread: threading.Thread, seconds: float, *, timeout: float = 60.0) -> None:
    """Return once the process has used ``seconds`` more CPU time than when called while
    ``thread`` still runs; fail when it ends first or after ``timeout`` seconds."""
    start = time.process_time()
    deadline = time.monotonic() + timeout
    while True:
        assert thread.is_alive(), "the thread ended before it was busy"
        if time.process_time() - start >= seconds:
            return
        assert time.monotonic() < deadline, f"the process used no {seconds}s of CPU in {timeout}s"
        thread.join(0.005)  # wakes at once if the thread ends
