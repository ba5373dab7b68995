"""Worker processes for chat templates: every compile and render runs in one, under a
hard deadline and a memory cap.

A worker (:mod:`fireside.chat.template_worker`) is a separate Python process, started
with ``subprocess`` (never forked from this process, which may have threads) and reused:
it keeps the templates it compiled, so a render costs one round trip through a pipe. A
request that overruns :attr:`TemplatePool.time_limit` (plus a short grace period) gets
its worker killed and :class:`~fireside.errors.TemplateError` naming the limit; the
next request starts a fresh worker. Other threads meanwhile use other workers, so one
template cannot stall the rest of the process.

Workers are killed when their pool is closed or garbage collected, and when this process
exits normally. When it dies otherwise (a signal, as uvicorn re-raises SIGTERM), its
workers end by themselves: an idle one at once (its requests pipe closes), a busy one
after at most the time limit plus 2 s of CPU time (its own ``RLIMIT_CPU``).
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fireside.chat import template_protocol as wire
from fireside.chat.sandbox import MAX_SECONDS, max_output, size_of
from fireside.errors import TemplateError

MEMORY_LIMIT = 1 << 30
"""Bytes of address space a worker may use (where the OS enforces ``RLIMIT_AS``)."""
KILL_GRACE = 1.0
"""Seconds past the time limit before a worker that has not answered is killed."""
STARTUP_TIMEOUT = 60.0
"""Seconds a new worker may take to start."""
MAX_WORKERS = 4
"""Workers that may run at once; more callers wait for one to be free."""
MAX_IDLE = 2
"""Workers kept running between requests."""
KNOWN_SOURCES = 256
"""Sources remembered as compiling fine (their SHA-256), so they are not compiled again."""

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from fireside.chat.template_worker import main; sys.exit(main(int(sys.argv[2])))"
)
_SIGXCPU = getattr(signal, "SIGXCPU", None)


class _Overrun(Exception):
    pass


class _Died(Exception):
    pass


class _Gone(_Died):
    """The worker was already dead when a request was sent: nothing ran."""


class _Worker:
    """One worker process, its pipes, and a thread that reads its replies."""

    def __init__(self, memory_limit: int) -> None:
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, _PACKAGE_ROOT, str(memory_limit)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=_PACKAGE_ROOT,
                # its own session: a Ctrl-C in the terminal is the parent's to handle (it
                # would kill the worker with a traceback over the prompt); it exits when its
                # stdin closes, parent gone or not
                start_new_session=True,
            )
        except OSError as e:
            raise TemplateError(
                f"cannot start a chat template worker process ({sys.executable!r}): {e}"
            ) from e
        self.pid = self.proc.pid
        self.max_reply = 1 << 16
        self._replies: queue.SimpleQueue[tuple[bytes, bytes] | Exception | None] = (
            queue.SimpleQueue()
        )
        self._reader = threading.Thread(
            target=self._read, name=f"fireside-template-worker-{self.pid}", daemon=True
        )
        self._reader.start()
        try:
            status, _ = self._wait(STARTUP_TIMEOUT)
        except (_Overrun, _Died) as e:
            self.stop()
            raise TemplateError(f"the chat template worker process did not start: {e}") from None
        if status != wire.READY:
            self.stop()
            raise TemplateError("the chat template worker process did not start properly")

    def _read(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        try:
            while True:
                reply = wire.read_reply(stream, lambda: self.max_reply)  # type: ignore[arg-type]
                self._replies.put(reply)
                if reply is None:
                    return
        except (OSError, ValueError) as e:
            self._replies.put(e)

    def _wait(self, timeout: float) -> tuple[bytes, str]:
        try:
            reply = self._replies.get(timeout=timeout)
        except queue.Empty:
            raise _Overrun from None
        if isinstance(reply, Exception):
            raise _Died(str(reply))
        if reply is None:
            raise _Died(self._exit_reason())
        try:
            return reply[0], wire.decode_text(reply[1])
        except UnicodeDecodeError:
            raise _Died("it sent a reply that is not UTF-8") from None

    def _exit_reason(self) -> str:
        try:
            code = self.proc.wait(5)
        except subprocess.TimeoutExpired:
            return "it closed its output"
        if code < 0 and -code == _SIGXCPU:
            return "it ran past its CPU time limit"
        if code < 0:
            return f"it was killed by signal {-code}"
        return f"it exited with code {code}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def request(self, data: bytes, timeout: float, max_reply: int) -> tuple[bytes, str]:
        """Send a packed request and wait at most ``timeout`` seconds for the reply."""
        self.max_reply = max_reply
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            stdin.write(data)
            stdin.flush()
        except OSError as e:
            raise _Gone(f"it stopped reading requests ({e})") from None
        return self._wait(timeout)

    def stop(self) -> None:
        """Kill the process and release its pipes (idempotent)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if threading.current_thread() is not self._reader:
            self._reader.join(5)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass


@dataclass
class _Registry:
    """The live workers of a pool, for the finalizer (which must not hold the pool)."""

    pid: int = field(default_factory=os.getpid)
    workers: set[_Worker] = field(default_factory=set)


def _stop_all(registry: _Registry) -> None:
    if os.getpid() != registry.pid:  # a forked child: those workers are its parent's
        return
    for worker in list(registry.workers):
        worker.stop()
    registry.workers.clear()


class TemplatePool:
    """Worker processes that compile and render chat templates.

    ``time_limit`` bounds each compile and each render, in seconds; ``memory_limit``
    each worker's address space, in bytes (``0``: none). Thread-safe.
    """

    def __init__(
        self,
        *,
        time_limit: float = MAX_SECONDS,
        memory_limit: int = MEMORY_LIMIT,
        max_workers: int = MAX_WORKERS,
        max_idle: int = MAX_IDLE,
    ) -> None:
        if not time_limit > 0:
            raise ValueError(f"time_limit must be positive, got {time_limit!r}")
        if max_workers < 1 or max_idle < 0:
            raise ValueError("max_workers must be at least 1 and max_idle at least 0")
        self.time_limit = float(time_limit)
        self.kill_grace = KILL_GRACE
        self.memory_limit = int(memory_limit)
        self.max_workers = max_workers
        self.max_idle = max_idle
        self.spawned = 0
        """Worker processes started so far."""
        self.killed = 0
        """Workers killed for overrunning the time limit."""
        self.prewarmed = 0
        """Workers started ahead of need by :meth:`prewarm`."""
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._busy = 0
        self._starting = 0  # prewarmed workers still starting (counted in _busy)
        self._known: OrderedDict[tuple[bytes, float], None] = OrderedDict()  # compiled fine
        self.sent = 0
        """Requests sent to workers (compiles and renders)."""
        self._new_registry()

    def _new_registry(self) -> None:
        self._registry = _Registry()
        self._finalizer = weakref.finalize(self, _stop_all, self._registry)

    # -- requests ------------------------------------------------------------------------

    def compile(self, source: str, label: str) -> None:
        """Check that ``source`` compiles; TemplateError names ``label`` and the problem.

        A source that compiled under the same time limit before is not sent again (the
        most recent :data:`KNOWN_SOURCES`): compiling is deterministic, and a worker
        that has not compiled it yet does so when it first renders it. So loading a
        model again does not wait for a worker process."""
        key = (hashlib.sha256(wire.encode_text(source)).digest(), self.time_limit)
        with self._cond:
            if key in self._known:
                self._known.move_to_end(key)
                return
        what = f"chat template {label}"
        self._call(("compile", source, self.time_limit, label), what, "compile", 1 << 16)
        with self._cond:
            self._known[key] = None
            if len(self._known) > KNOWN_SOURCES:
                self._known.popitem(last=False)

    def render(self, source: str, variables: dict[str, Any], label: str) -> str:
        """Render ``source`` with ``variables`` (plain data: they are pickled to the
        worker); every failure is a TemplateError."""
        input_size = size_of(variables, 1 << 30)
        request = ("render", source, self.time_limit, label, variables, input_size)
        max_reply = 4 * max_output(input_size) + 1024
        return self._call(request, "the chat template", "finish rendering", max_reply)

    def prewarm(self) -> bool:
        """Start a worker in a background thread when the pool has none, so that the
        next request (e.g. compiling a model's template once the model has loaded) finds
        it ready instead of waiting for a process to start; whether one was started. A
        request that comes while it starts waits for it; if it fails to start, the
        request starts its own (and reports why that failed)."""
        with self._cond:
            if self._registry.pid != os.getpid() or self.max_idle < 1:
                return False
            if self._registry.workers or self._busy:  # one runs, starts or is idle
                return False
            self._busy += 1
            self._starting += 1
            self.prewarmed += 1
            registry = self._registry
        threading.Thread(
            target=self._start_idle, args=(registry,), name="fireside-template-prewarm", daemon=True
        ).start()
        return True

    def _start_idle(self, registry: _Registry) -> None:
        worker: _Worker | None
        try:
            worker = _Worker(self.memory_limit)
        except TemplateError:  # the next request starts one itself and says why it fails
            worker = None
        with self._cond:
            self._starting -= 1
            closed = self._registry is not registry  # the pool was closed meanwhile
            if worker is None or closed:
                self._busy -= 1
                self._cond.notify_all()
            else:
                self.spawned += 1
                self._registry.workers.add(worker)
        if worker is None:
            return
        if closed:
            worker.stop()
            return
        self._checkin(worker, True)
        with self._cond:
            self._cond.notify_all()

    @property
    def busy(self) -> int:
        """Workers running a request now."""
        with self._cond:
            return self._busy

    @property
    def pids(self) -> list[int]:
        """The process ids of this pool's workers, busy and idle."""
        with self._cond:
            return sorted(worker.pid for worker in self._registry.workers)

    def worker_stats(self) -> list[dict[str, Any]]:
        """``{"pid", "compiles"}`` of each idle worker (for tests and diagnostics)."""
        with self._cond:  # check them all out, so no request uses them meanwhile
            workers, self._idle = self._idle, []
            self._busy += len(workers)
        stats, request = [], wire.pack_request(("stats",))
        for worker in workers:
            keep = False
            try:
                status, text = worker.request(request, STARTUP_TIMEOUT, 1 << 16)
                keep = status == wire.OK
                if keep:
                    stats.append(json.loads(text))
            except (_Overrun, _Died):
                pass
            finally:
                self._checkin(worker, keep)
        return stats

    def _call(self, request: tuple[Any, ...], what: str, verb: str, max_reply: int) -> str:
        try:
            data = wire.pack_request(request)
        except Exception as e:  # noqa: BLE001 - whatever pickle cannot send
            raise TypeError(
                f"chat template variables must be plain data (strings, numbers, lists, "
                f"dicts): {type(e).__name__}: {e}"
            ) from None
        for attempt in range(2):
            worker = self._checkout()
            with self._cond:
                self.sent += 1
            keep = False
            try:
                status, text = worker.request(data, self.time_limit + self.kill_grace, max_reply)
            except _Overrun:
                with self._cond:
                    self.killed += 1
                raise TemplateError(
                    f"{what} did not {verb} within the chat template time limit "
                    f"({self.time_limit:g} s); its worker process was stopped"
                ) from None
            except _Gone:
                if attempt == 0:
                    continue  # it died while idle: nothing ran, so try a fresh one
                raise TemplateError(f"{what} could not be sent to a worker process") from None
            except _Died as e:
                raise TemplateError(f"{what} stopped its worker process: {e}") from None
            else:
                keep = status in (wire.OK, wire.ERROR)
                if status == wire.OK:
                    return text
                raise TemplateError(text)
            finally:
                self._checkin(worker, keep)
        raise AssertionError("unreachable")

    # -- the workers ---------------------------------------------------------------------

    def _checkout(self) -> _Worker:
        with self._cond:
            if self._registry.pid != os.getpid():  # forked: start over with our own
                self._idle, self._busy = [], 0
                self._new_registry()
            while True:
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive():
                        self._busy += 1
                        return worker
                    self._forget(worker)
                if self._busy < self.max_workers and not self._starting:
                    self._busy += 1
                    break
                self._cond.wait()  # for a free worker, or the one starting
        try:
            worker = _Worker(self.memory_limit)
        except BaseException:
            with self._cond:
                self._busy -= 1
                self._cond.notify()
            raise
        with self._cond:
            self.spawned += 1
            self._registry.workers.add(worker)
        return worker

    def _checkin(self, worker: _Worker, keep: bool) -> None:
        with self._cond:
            self._busy -= 1
            keep = keep and len(self._idle) < self.max_idle and worker in self._registry.workers
            if keep:
                self._idle.append(worker)
            self._cond.notify()
        if not keep:
            self._forget(worker)

    def _forget(self, worker: _Worker) -> None:
        worker.stop()
        self._registry.workers.discard(worker)

    def close(self) -> None:
        """Kill every worker, busy ones included (their requests fail); the pool starts
        new ones if it is used again."""
        with self._cond:
            self._idle = []
            registry = self._registry
            self._new_registry()
        _stop_all(registry)


_shared: TemplatePool | None = None
_shared_lock = threading.Lock()


def shared_pool() -> TemplatePool:
    """The pool every :class:`~fireside.chat.templates.ChatTemplate` uses."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = TemplatePool()
        return _shared
