"""StepTurns: a server's engines step at most ``width`` at a time, first come first served."""

from __future__ import annotations

import threading

import pytest
from fireside.server.turns import StepTurns, turns_width


@pytest.mark.parametrize("width", [1, 2])
def test_at_most_width_steps_run_at_once(width: int) -> None:
    turns = StepTurns(width)
    inside = 0
    most = 0
    lock = threading.Lock()
    all_in = threading.Barrier(3, timeout=30)

    def stepper() -> None:
        nonlocal inside, most
        all_in.wait()
        for _ in range(200):
            with turns:
                with lock:
                    inside += 1
                    most = max(most, inside)
                with lock:
                    inside -= 1

    threads = [threading.Thread(target=stepper) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert 1 <= most <= width
    assert inside == 0


def test_steps_are_served_in_the_order_they_asked() -> None:
    turns = StepTurns(1)
    order: list[int] = []
    holding = threading.Event()
    release = threading.Event()

    def first() -> None:
        with turns:
            holding.set()
            release.wait(30)
            order.append(0)

    def later(n: int, queued: threading.Event) -> None:
        queued.set()
        with turns:
            order.append(n)

    threads = [threading.Thread(target=first)]
    threads[0].start()
    assert holding.wait(30)
    for n in (1, 2, 3):  # each queues behind the previous one before the next starts
        queued = threading.Event()
        thread = threading.Thread(target=later, args=(n, queued))
        thread.start()
        assert queued.wait(30)
        while turns.waiting != n:  # its ticket is taken: it waits behind the others
            threading.Event().wait(0.001)
        threads.append(thread)
    release.set()
    for t in threads:
        t.join(30)
    assert order == [0, 1, 2, 3]
    assert turns.waits == 3


def test_width_follows_the_threads_per_engine() -> None:
    assert turns_width(None, 8) == 1  # "auto": every engine may use every core
    assert turns_width(8, 8) == 1
    assert turns_width(2, 8) == 4
    assert turns_width(1, 2) == 2
    with pytest.raises(ValueError, match="width must be at least 1"):
        StepTurns(0)
