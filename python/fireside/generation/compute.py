"""The compute thread runs every engine's token loop.

Every llama.cpp graph of the process is computed on one native thread (one OpenMP team:
see ``csrc/compute_thread.h``). A caller's thread that stepped an engine itself would hand
each decode to that thread and wait for it: two thread wake-ups per token, a few percent
of a small model's token time. So the steps run on the compute thread too: clients submit
requests and wait for their events, and the compute thread, woken by :func:`wake`, calls
:func:`_drive` again and again while there is work. Each call runs one step of every
engine that has requests (in turn: several models share the cores fairly) and, when no
engine has any, one piece of idle work (an engine realigning a finished reply). Decodes
from other threads (embeddings, direct :class:`fireside._core.Context` use) run between
the calls.

Callbacks that a step makes (an engine's ``on_step``, a request's ``emit``) therefore run
on the compute thread; a stream's own token callback runs on the thread reading it.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from typing import Protocol

from fireside import _core

log = logging.getLogger("fireside.generation")


class Drivable(Protocol):
    """What the compute thread drives (an engine)."""

    @property
    def busy(self) -> bool:
        """Requests wait or run."""
        ...

    def drive_step(self) -> bool:
        """Run one step if requests wait or run and nobody else holds the engine; whether
        it ran one."""
        ...

    def drive_idle(self) -> bool:
        """Do one piece of background work, if any is due; whether it did."""
        ...

    def interrupt_idle(self) -> None:
        """Stop background work under way at once (a request came)."""
        ...

    def fail(self, error: BaseException) -> None:
        """A step raised ``error`` past the engine's own handling: end its requests."""
        ...


# Held weakly, as a tuple replaced whole (by register and when one is collected), so
# that a round reads it without a lock or a copy.
_drivables: tuple[weakref.ref[Drivable], ...] = ()
_lock = threading.RLock()  # reentrant: a collection during register() calls _forget
_installed: list[bool] = []  # the driver is set (once per process)
_turn_waits = 0  # steps that came after another engine's step in the same round


def turn_waits() -> int:
    """Steps that waited for another engine's step (of the same round) since the start:
    with several busy models, each step runs after the others' (a counter for metrics)."""
    return _turn_waits


def register(drivable: Drivable) -> None:
    """Have the compute thread drive ``drivable`` (held weakly) from now on."""
    global _drivables
    with _lock:
        _drivables = (*_drivables, weakref.ref(drivable, _forget))
        if not _installed:
            _core._set_compute_driver(_drive)
            atexit.register(_uninstall)
            _installed.append(True)


def _forget(gone: weakref.ref[Drivable]) -> None:
    global _drivables
    with _lock:
        _drivables = tuple(ref for ref in _drivables if ref is not gone)


def drivables() -> list[Drivable]:
    """Everything the compute thread drives now."""
    return [d for d in (ref() for ref in _drivables) if d is not None]


def wake() -> None:
    """Have the compute thread look for work soon (cheap; call after queueing some)."""
    _core._wake_compute_driver()


def here() -> bool:
    """Whether the calling thread is the compute thread (inside a step or its callbacks)."""
    return _core._on_compute_thread()


def others_busy(me: Drivable) -> bool:
    """Whether anything but ``me`` has requests (idle work would delay their steps)."""
    return any(d.busy for d in drivables() if d is not me)


def interrupt_idle_work() -> None:
    """Stop every engine's background work under way (a request came somewhere)."""
    for drivable in drivables():
        drivable.interrupt_idle()


def _drive() -> bool:
    """One round: a step of each engine with requests, else one piece of idle work.
    Whether to call again at once."""
    global _turn_waits
    everyone = drivables()
    steps = 0
    for drivable in everyone:
        try:
            steps += drivable.drive_step()
        except BaseException as error:  # the thread must go on serving
            log.exception("a generation step failed")
            drivable.fail(error)
    if steps:
        _turn_waits += steps - 1
        return True
    if any(d.busy for d in everyone):
        return False  # held by another thread between steps: it wakes us when done
    for drivable in everyone:
        try:
            if drivable.drive_idle():
                return True
        except BaseException:  # the thread must go on serving
            log.exception("background work of the generation engine failed")
    return False


def _uninstall() -> None:
    """At exit: no more steps (waits for a round under way, so no decode runs while the
    interpreter tears down contexts)."""
    _core._set_compute_driver(None)
