"""How many threads llama.cpp uses, chosen from the cores that are actually free.

llama.cpp's CPU threads wait for each other at every node of the graph. Generating one
token is hundreds of tiny nodes, so when another process takes the core of one of them,
the others spin at the next barrier until the scheduler gives it back: with one core of
two busy, two threads generate at half the speed of one. A fixed "all physical cores"
count is right on an idle machine and wrong whenever a browser, an IDE or a build runs.

:class:`ThreadPolicy` is the one place that decides. ``n_threads="auto"`` starts with
every core and then, from measurements fed to it by the token loop (the wall time and
token count of each decode step) and the CPU time other processes take (sampled at most
every :data:`WINDOW_S` seconds of decoding by a :class:`LoadSource`, :class:`CpuLoad` by
default), moves between counts:

* **The load rule.** With ``free`` = the CPUs the process may use minus what other
  processes used during the last window, ``n`` generation threads are kept while
  ``n <= free +`` :data:`KEEP_MARGIN`, dropped after :data:`DOWN_WINDOWS` windows in a row
  above that, and raised (to at most ``free +`` :data:`RISE_MARGIN`) after
  :data:`UP_WINDOWS` windows in a row below it. The gap between the two margins and the
  windows in a row are the hysteresis: load that hovers or flickers changes nothing.
* **Probes.** What the load rule cannot see (time stolen by a hypervisor or another
  container, a ``nice``-d process that yields at once) the step times show. Every
  :data:`PROBE_EVERY` windows the policy runs one window at the neighbouring count (one
  more thread when below the maximum; one fewer when steps are slower than the best seen
  at this count, :data:`SLOW_FACTOR`) and compares its tokens per second with the windows
  just before and after it; a count that is :data:`PROBE_GAIN` faster is adopted and
  held until the load moves by more than :data:`HOLD_BAND` cores (for
  :data:`DOWN_WINDOWS` windows in a row). A probe that loses doubles that direction's
  interval (up to :data:`PROBE_EVERY_MAX` windows; back to :data:`PROBE_EVERY` when the
  load rule changes the count). While the load the rule sees is what keeps the count
  below the maximum, a probe of more threads waits :data:`PROBE_EVERY_MAX` windows from
  the start: against a visibly busy core it loses, at half speed for its window. So a
  machine under steady load pays well under 1% for probes.
* **Prompts** (``n_threads_batch``) do long matrix products whose chunks are shared out
  dynamically, so a thread that loses its core delays them much less: their count
  follows the load rule with :data:`BATCH_KEEP_MARGIN` (it drops only when other
  processes take about a whole core more). A ``batched`` policy (the server, whose
  generation steps are multi-token batches, which llama.cpp runs with the batch count)
  uses the generation count for both.

A fixed number (``n_threads=4``) is used as given and never changed. The policy only
moves the thread count (``Context.set_threads``, called only when a count changes):
fireside's llama.cpp is built with OpenMP, whose wait policy (``OMP_WAIT_POLICY``,
``GOMP_SPINCOUNT``) is read once when the process starts and is left to the user, and
ggml's own thread pool (``ggml_threadpool_params.poll``) is not used with OpenMP. With
RPC workers only the local threads are chosen; the step times include the workers'.

Cost on the hot path: :meth:`ThreadPolicy.record` adds two float additions and a
comparison per step; the load is sampled once per window (about 30 µs every 0.25 s).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from fireside.defaults import allowed_cpus, default_n_threads

ThreadSetting = int | Literal["auto"]
"""A thread count, or ``"auto"``: chosen and changed by :class:`ThreadPolicy`."""

AUTO: Literal["auto"] = "auto"

WINDOW_S = 0.25
"""Seconds of decoding per measurement window (the load is sampled once per window)."""
KEEP_MARGIN = 0.5
"""``n`` generation threads are kept while ``n <= free cores + KEEP_MARGIN``."""
RISE_MARGIN = 0.25
"""The count rises to ``free cores + RISE_MARGIN`` (rounded down)."""
BATCH_KEEP_MARGIN = 1.0
""":data:`KEEP_MARGIN` for prompt threads."""
BATCH_RISE_MARGIN = 0.75
""":data:`RISE_MARGIN` for prompt threads."""
DOWN_WINDOWS = 2
"""Windows in a row over the load rule's limit before the count drops."""
UP_WINDOWS = 4
"""Windows in a row with room for more threads before the count rises."""
PROBE_EVERY = 16
"""Windows between probes of the neighbouring count (first interval)."""
PROBE_EVERY_MAX = 128
"""The longest interval between probes, after probes that lost."""
PROBE_GAIN = 0.08
"""A probed count is adopted when it is this much faster (tokens per second)."""
SLOW_FACTOR = 0.8
"""Steps slower than this share of the best rate seen at a count make fewer threads
worth probing."""
BEST_DECAY = 0.995
"""Per window, the best rate remembered for a count fades by this factor."""
HOLD_BAND = 0.5
"""A count adopted from a probe holds until the load moves by more than this (cores)."""


class LoadSource(Protocol):
    """Where the policy learns how busy the machine is."""

    @property
    def capacity(self) -> float:
        """The CPUs (logical) this process may run on."""
        ...

    def sample(self) -> float | None:
        """CPU other processes used since the previous call (or :meth:`reset`), in
        cores (1.0: one CPU all the time); ``None`` when it cannot be told."""
        ...

    def reset(self) -> None:
        """Start a new interval (after an idle period) without reporting one."""
        ...


class CpuLoad:
    """Other processes' CPU use, from :mod:`psutil` (a :class:`LoadSource`).

    Busy time (user, system, interrupts, stolen by the hypervisor) of the CPUs this
    process may use, minus this process's own CPU time. Time of ``nice``-d processes is
    not counted (they give way to a normal-priority process at once) unless this process
    is ``nice``-d itself.
    """

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        allowed = sorted(allowed_cpus() or ())
        n_cpus = psutil.cpu_count() or os.cpu_count() or 1
        # per-CPU times only when the process is confined to some of the CPUs
        self._cpus = allowed if allowed and len(allowed) < n_cpus else None
        self._capacity = float(len(allowed) or n_cpus)
        try:
            self._count_nice = os.getpriority(os.PRIO_PROCESS, 0) > 0
        except (AttributeError, OSError):
            self._count_nice = False
        self._last = self._read()

    @property
    def capacity(self) -> float:
        return self._capacity

    def _busy(self) -> float:
        if self._cpus is None:
            rows = [self._psutil.cpu_times()]
        else:
            per_cpu = self._psutil.cpu_times(percpu=True)
            rows = [per_cpu[i] for i in self._cpus if i < len(per_cpu)]
        total = 0.0
        for t in rows:
            total += t.user + t.system
            total += sum(getattr(t, name, 0.0) for name in ("irq", "softirq", "steal"))
            if self._count_nice:
                total += getattr(t, "nice", 0.0)
        return total

    def _read(self) -> tuple[float, float, float]:
        import time

        own = os.times()
        return time.monotonic(), self._busy(), own.user + own.system

    def sample(self) -> float | None:
        now = self._read()
        (t0, busy0, own0), self._last = self._last, now
        elapsed = now[0] - t0
        if elapsed <= 0.01:  # too short to tell (clock ticks are 10 ms)
            return None
        return max(0.0, (now[1] - busy0) - (now[2] - own0)) / elapsed

    def reset(self) -> None:
        self._last = self._read()


@dataclass
class ThreadStats:
    """What a policy did: counters and the counts in use (a snapshot)."""

    auto: bool
    n_threads: int
    """Generation threads in use now."""
    n_threads_batch: int
    """Prompt (batch) threads in use now."""
    max_threads: int
    windows: int = 0
    """Measurement windows evaluated."""
    changes: int = 0
    """Times a count changed (``Context.set_threads`` calls)."""
    probes: int = 0
    """Windows run at a probed count."""
    probes_won: int = 0
    """Probes whose count was adopted."""
    other_cores: float | None = None
    """Other processes' CPU use in the last window (cores), when known."""


def check_threads(value: object, name: str = "n_threads") -> ThreadSetting:
    """``value`` as a thread setting (a positive int or ``"auto"``), or a ValueError
    naming what was wrong."""
    if value == AUTO and isinstance(value, str):
        return AUTO
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ValueError(f"{name} must be a positive integer or 'auto', got {value!r}")


class _Rule:
    """The load rule with hysteresis for one count."""

    __slots__ = ("down", "keep", "rise", "up")

    def __init__(self, keep: float, rise: float) -> None:
        self.keep, self.rise = keep, rise
        self.down = self.up = 0  # windows in a row asking to drop / to rise

    def clear(self) -> None:
        self.down = self.up = 0

    def update(self, n: int, free: float, most: int) -> int:
        """The count after one window with ``free`` cores."""
        if n > max(1, math.floor(free + self.keep)):
            self.up = 0
            self.down += 1
            if self.down >= DOWN_WINDOWS:
                self.down = 0
                return max(1, min(most, math.floor(free + self.keep)))
            return n
        self.down = 0
        target = max(1, min(most, math.floor(free + self.rise)))
        if target > n:
            self.up += 1
            if self.up >= UP_WINDOWS:
                self.up = 0
                return target
            return n
        self.up = 0
        return n


class ThreadPolicy:
    """Chooses the thread counts of one context (see the module docstring).

    Args:
        n_threads: a fixed count (used as is, never changed) or ``"auto"``.
        max_threads: the most threads ``"auto"`` uses (default: the physical cores,
            :func:`fireside.defaults.default_n_threads`).
        n_threads_batch: with a fixed ``n_threads``, a different fixed prompt count.
        batched: the loop's generation steps are multi-token batches (the server):
            prompts and generation use the same count.
        source: where the machine's load comes from (default :class:`CpuLoad`; tests
            inject their own).
        window_s: seconds of decoding per measurement window.

    Not thread-safe: one loop feeds it (under that loop's lock); others may read
    :attr:`n_threads`, :attr:`n_threads_batch` and :meth:`stats`.
    """

    def __init__(
        self,
        n_threads: ThreadSetting = AUTO,
        *,
        max_threads: int | None = None,
        n_threads_batch: int | None = None,
        batched: bool = False,
        source: LoadSource | None = None,
        window_s: float = WINDOW_S,
    ) -> None:
        setting = check_threads(n_threads)
        if max_threads is not None:
            check_threads(max_threads, "max_threads")
        if n_threads_batch is not None:
            check_threads(n_threads_batch, "n_threads_batch")
            if setting == AUTO:
                raise ValueError("n_threads_batch is chosen by the policy when n_threads='auto'")
        if not isinstance(window_s, (int, float)) or not window_s >= 0:
            raise ValueError(f"window_s must be a number >= 0, got {window_s!r}")
        self.auto = setting == AUTO
        self.batched = batched
        if isinstance(setting, int):
            most = setting
        elif max_threads is not None:
            most = max_threads
        else:
            most = default_n_threads()
        self.max_threads = most
        self.n_threads = most
        """Generation threads for the next steps."""
        self.n_threads_batch = n_threads_batch or most
        """Prompt threads for the next steps."""
        self._stats = ThreadStats(self.auto, most, self.n_threads_batch, most)
        # a fixed count never evaluates a window: record() only adds
        self._window_s = float(window_s) if self.auto else math.inf
        self._source: LoadSource | None = None
        if self.auto:
            self._source = source if source is not None else CpuLoad()
        self._busy = 0.0
        self._tokens = 0
        self._gen_rule = _Rule(KEEP_MARGIN, RISE_MARGIN)
        self._batch_rule = _Rule(BATCH_KEEP_MARGIN, BATCH_RISE_MARGIN)
        self._best: dict[int, float] = {}  # best recent tokens/s at each count
        self._hold: float | None = None  # the load when a probed count was adopted
        self._since_probe = 0
        self._interval = {+1: PROBE_EVERY, -1: PROBE_EVERY}
        self._hold_moved = 0  # windows in a row with the load away from the held one
        self._base = (most, 0)  # (count, direction) of the probe under way
        self._probe = False  # the current window runs at the probed count
        self._before: float | None = None  # rate of the window before the probe
        self._probe_rate: float | None = None  # set while the window after it runs
        self._last_other: float | None = None

    # -- the hot path -------------------------------------------------------------------

    def record(self, seconds: float, n_tokens: int) -> bool:
        """One decode step took ``seconds`` for ``n_tokens`` tokens; ``True`` when the
        counts changed (then apply :attr:`n_threads` / :attr:`n_threads_batch`)."""
        self._busy += seconds
        self._tokens += n_tokens
        if self._busy < self._window_s:
            return False
        return self._evaluate()

    def begin(self) -> None:
        """A loop starts decoding after an idle period: the load is measured afresh."""
        if self._source is not None:
            self._source.reset()

    # -- reading ------------------------------------------------------------------------

    def stats(self) -> ThreadStats:
        """The counters and the counts in use now (a copy)."""
        return replace(self._stats)

    def __repr__(self) -> str:
        kind = "auto" if self.auto else "fixed"
        return (
            f"ThreadPolicy({kind}, n_threads={self.n_threads}, "
            f"n_threads_batch={self.n_threads_batch}, max_threads={self.max_threads})"
        )

    # -- deciding -----------------------------------------------------------------------

    def _evaluate(self) -> bool:
        rate = self._tokens / self._busy if self._busy > 0 else 0.0
        self._busy, self._tokens = 0.0, 0
        assert self._source is not None
        other = self._source.sample()
        stats = self._stats
        stats.windows += 1
        stats.other_cores = other
        n_old, b_old = self.n_threads, self.n_threads_batch
        n = n_old
        if self._probe:  # this window ran at the probed count: back to the base count
            self._probe_rate = rate
            self._remember(n, rate)
            n = self._base[0]
            self._probe = False
        elif self._probe_rate is not None:  # the window after a probe: compare
            n = self._judge(n, rate, other)
        else:
            self._remember(n, rate)
            n = self._follow_load(n, rate, other)
        if other is not None and not self.batched:
            free = self._source.capacity - other
            self.n_threads_batch = self._batch_rule.update(
                self.n_threads_batch, free, self.max_threads
            )
        self.n_threads = n
        if self.batched:
            self.n_threads_batch = n
        if (n, self.n_threads_batch) == (n_old, b_old):
            return False
        stats.changes += 1
        stats.n_threads, stats.n_threads_batch = n, self.n_threads_batch
        return True

    def _remember(self, n: int, rate: float) -> None:
        best = self._best
        for k in best:
            best[k] *= BEST_DECAY
        if rate > best.get(n, 0.0):
            best[n] = rate

    def _follow_load(self, n: int, rate: float, other: float | None) -> int:
        assert self._source is not None
        if other is not None:
            if self._hold is not None:  # a probed count: held until the load really moves
                moved = abs(other - self._hold) > HOLD_BAND
                self._hold_moved = self._hold_moved + 1 if moved else 0
                if self._hold_moved >= DOWN_WINDOWS:
                    self._hold = None
                    self._gen_rule.clear()
            if self._hold is None:
                new = self._gen_rule.update(n, self._source.capacity - other, self.max_threads)
                if new != n:  # the load moved: probe again soon
                    self._since_probe = 0
                    self._interval = {+1: PROBE_EVERY, -1: PROBE_EVERY}
                    return new
        self._since_probe += 1
        if self._gen_rule.down or self._gen_rule.up:
            return n  # the load rule is about to act: no probe now
        direction = self._probe_direction(n, rate, self._load_explains(n, other))
        if direction == 0:
            return n
        self._base = (n, direction)
        self._before = rate
        self._probe = True
        self._since_probe = 0
        self._stats.probes += 1
        return n + direction

    def _load_explains(self, n: int, other: float | None) -> bool:
        """The load rule keeps ``n`` below the maximum because of load it can see (not a
        count held from a probe): a probe of more threads would very likely lose."""
        if other is None or self._hold is not None or n >= self.max_threads:
            return False
        assert self._source is not None
        return math.floor(self._source.capacity - other + RISE_MARGIN) <= n

    def _probe_direction(self, n: int, rate: float, explained: bool) -> int:
        """+1 or -1 when a probe is due in that direction, else 0."""
        every_up = max(self._interval[+1], PROBE_EVERY_MAX) if explained else self._interval[+1]
        up = n < self.max_threads and self._since_probe >= every_up
        slow = rate < SLOW_FACTOR * self._best.get(n, 0.0)
        down = n > 1 and slow and self._since_probe >= self._interval[-1]
        if up and down:  # both due: the one waited for longer relative to its interval
            return +1 if every_up <= self._interval[-1] else -1
        return +1 if up else -1 if down else 0

    def _judge(self, n: int, after: float, other: float | None) -> int:
        """The window after a probe ran at the base count ``n`` again: adopt the probed
        count if it beat the base on both sides."""
        assert self._probe_rate is not None and self._before is not None
        probed, self._probe_rate = self._probe_rate, None
        base_rate = (self._before + after) / 2
        self._remember(n, after)
        direction = self._base[1]
        if probed > base_rate * (1.0 + PROBE_GAIN):
            self._stats.probes_won += 1
            self._interval = {+1: PROBE_EVERY, -1: PROBE_EVERY}
            self._hold, self._hold_moved = other, 0
            self._gen_rule.clear()
            return n + direction
        self._interval[direction] = min(PROBE_EVERY_MAX, 2 * self._interval[direction])
        return n
