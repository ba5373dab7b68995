"""How much CPU other processes took while a round was measured (Linux).

On a machine shared with other work, a compute-bound benchmark with as many threads as
cores is hit hard whenever anything else runs: llama.cpp's threads wait for each other at
every graph node, so a thread that loses its core stalls them all. A round during which
other processes used more than a set share of the machine is measured again (both sides:
a round is one back-to-back pair), and the share each kept round saw is reported.

The share is the machine's busy time from ``/proc/stat`` minus the CPU time of this
process, its finished children (reference tools, probes) and the live processes it was
told about (the server), over the elapsed time of all CPUs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable


def _machine_busy_ticks() -> int | None:
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal ...
    values = [int(v) for v in fields[1:9]]
    return values[0] + values[1] + values[2] + values[5] + values[6] + values[7]


def _process_ticks(pid: int) -> int:
    """utime + stime of a live process and its waited-for children, in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            stat = f.read()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2 :].split()
    return sum(int(v) for v in fields[11:15])


class ContentionMonitor:
    """Measures the CPU share other processes took between :meth:`start` and :meth:`share`.

    ``live_pids()`` names long-running processes of the benchmark itself (their CPU is
    not "other"). Unavailable (``share()`` is ``None``) where ``/proc`` is missing.
    """

    def __init__(self, live_pids: Callable[[], list[int]] | None = None) -> None:
        self._live_pids = live_pids or list
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._ncpu = os.cpu_count() or 1
        self._start: tuple[float, int, float, int] | None = None

    def _ours_seconds(self) -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def _live_ticks(self) -> int:
        return sum(_process_ticks(pid) for pid in self._live_pids())

    def start(self) -> None:
        busy = _machine_busy_ticks()
        if busy is None:
            self._start = None
            return
        self._start = (time.monotonic(), busy, self._ours_seconds(), self._live_ticks())

    def share(self) -> float | None:
        """Others' CPU time since :meth:`start` as a share of all CPUs' time (0..1)."""
        busy = _machine_busy_ticks()
        if self._start is None or busy is None:
            return None
        t0, busy0, ours0, live0 = self._start
        elapsed = time.monotonic() - t0
        if elapsed <= 0:
            return None
        machine = (busy - busy0) / self._tick
        ours = self._ours_seconds() - ours0 + (self._live_ticks() - live0) / self._tick
        return max(0.0, machine - ours) / (elapsed * self._ncpu)
