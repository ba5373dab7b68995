"""The ``busy`` section's parts: the CPU hog really burns a core and really stops; the
section is opt-in and its targets appear only when it ran."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest
from fireside.bench.busy import CpuHog
from fireside.bench.llama_server import free_port
from fireside.bench.suite import ALL_SECTIONS, BUSY_TARGETS, SECTIONS, BenchConfig, Suite


def test_the_hog_burns_cpu_until_stopped() -> None:
    hog = CpuHog()
    hog.start()
    try:
        pid = hog.pid
        assert pid is not None
        proc = psutil.Process(pid)
        deadline = time.monotonic() + 60
        while sum(proc.cpu_times()[:2]) < 0.05:  # a busy loop, not a sleeper
            assert time.monotonic() < deadline, "the hog used no CPU"
            time.sleep(0.01)
        with pytest.raises(RuntimeError, match="already running"):
            hog.start()
    finally:
        hog.stop()
    assert hog.pid is None
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    hog.stop()  # stopping twice is harmless


def test_busy_is_opt_in(tmp_path: Path) -> None:
    assert "busy" not in SECTIONS and "busy" in ALL_SECTIONS
    config = BenchConfig(model=Path(os.devnull), threads=1, out=tmp_path)
    keys = {t["key"] for t in Suite(config).results({}, {}, time.time())["targets"]}
    assert not keys & {t.key for t in BUSY_TARGETS}
    config = BenchConfig(model=Path(os.devnull), threads=1, out=tmp_path, sections=("busy",))
    keys = {t["key"] for t in Suite(config).results({}, {}, time.time())["targets"]}
    assert {t.key for t in BUSY_TARGETS} <= keys


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_each_round_runs_the_variants_in_another_order() -> None:
    from fireside.bench.busy import rotated

    names = ["auto", "fixed1", "fixed2"]
    orders = [rotated(names, turn) for turn in range(4)]
    assert orders[:3] == [names, ["fixed1", "fixed2", "auto"], ["fixed2", "auto", "fixed1"]]
    assert orders[3] == names  # and round again
    assert {order[0] for order in orders[:3]} == set(names)  # each runs first once
