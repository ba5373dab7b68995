"""Defaults a user would pick for this machine: threads and context size.

Two rules, both chosen to never make things slower than necessary:

* **Threads** = the physical cores this process may run on. llama.cpp's matrix kernels
  saturate a core each; hyper-threads add contention, not throughput, and running more
  threads than cores makes every decode wait for the slowest, descheduled thread (several
  times slower). On Linux the cores are counted behind the CPU affinity mask (containers,
  ``taskset``) from the sysfs topology; elsewhere :mod:`psutil`'s physical count (or half
  the logical CPUs); a cgroup CPU quota caps the result. That is the most threads
  ``n_threads="auto"`` (the default) uses: while other processes keep cores busy it uses
  fewer (:mod:`fireside.generation.threads`).
* **Context** = the model's trained context, capped at :data:`MAX_DEFAULT_N_CTX` tokens
  and at what a KV cache can use of the machine's memory (:data:`KV_RAM_FRACTION` of the
  total RAM), rounded down to a multiple of 256 and never below :data:`MIN_N_CTX`. A
  128k-token context is rarely needed, costs gigabytes of KV cache and makes every
  attention step slower; ask for it explicitly with ``n_ctx=``.
"""

from __future__ import annotations

import os

MAX_DEFAULT_N_CTX = 8192
"""The largest context chosen without being asked (tokens)."""

MIN_N_CTX = 512
"""The smallest context chosen automatically (tokens)."""

KV_RAM_FRACTION = 1 / 8
"""Share of the total RAM the default context's KV cache may take."""

_N_CTX_STEP = 256


def allowed_cpus() -> set[int] | None:
    """The logical CPUs this process may run on (its affinity mask); ``None`` where the
    platform cannot tell (macOS, Windows)."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no sched_getaffinity
        return None


def _cores_of(cpus: set[int]) -> int | None:
    """Distinct physical cores among these logical CPUs, from Linux's sysfs topology."""
    cores = set()
    for cpu in cpus:
        base = f"/sys/devices/system/cpu/cpu{cpu}/topology/"
        try:
            with open(base + "core_id") as f, open(base + "physical_package_id") as g:
                cores.add((f.read().strip(), g.read().strip()))
        except OSError:
            return None
    return len(cores) or None


def _cgroup_cpu_limit() -> int | None:
    """The CPUs a cgroup v2 quota allows (``docker --cpus``), rounded up; ``None``: no quota."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, -(-int(quota) // int(period)))


def physical_cores() -> int:
    """The physical CPU cores this process may use (at least 1).

    The cores behind the CPU affinity mask (Linux topology), else psutil's physical count,
    else half the logical CPUs; capped by a cgroup CPU quota.
    """
    allowed = allowed_cpus()
    cores = _cores_of(allowed) if allowed else None
    if cores is None:
        try:
            import psutil

            cores = psutil.cpu_count(logical=False)
        except ImportError:
            pass
    if cores is None:
        cores = max(1, (os.cpu_count() or 2) // 2)
    if allowed:
        cores = min(cores, len(allowed))
    limit = _cgroup_cpu_limit()
    if limit is not None:
        cores = min(cores, limit)
    return max(1, cores)


def default_n_threads() -> int:
    """The most threads for decoding: the physical cores (see the module docstring)."""
    return physical_cores()


def total_ram() -> int | None:
    """Total RAM in bytes, or ``None`` when it cannot be told."""
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except ImportError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def kv_bytes_per_token(n_layer: int, n_embd: int, n_head: int, n_head_kv: int) -> int:
    """Bytes of f16 K and V cache one token takes (grouped-query attention aware)."""
    head_dim = n_embd // max(1, n_head)
    return 2 * n_layer * max(1, n_head_kv) * head_dim * 2


def default_n_ctx(n_ctx_train: int, kv_per_token: int, ram: int | None = None) -> int:
    """The context size to use when the caller gives none (see the module docstring).

    ``n_ctx_train`` is the model's trained context (0 when unknown); ``kv_per_token`` the
    KV cache bytes per token; ``ram`` the total memory (``None``: this machine's).
    """
    n_ctx = n_ctx_train if n_ctx_train > 0 else MAX_DEFAULT_N_CTX
    n_ctx = min(n_ctx, MAX_DEFAULT_N_CTX)
    ram = total_ram() if ram is None else ram
    if ram and kv_per_token > 0:
        n_ctx = min(n_ctx, int(ram * KV_RAM_FRACTION) // kv_per_token)
    n_ctx = n_ctx // _N_CTX_STEP * _N_CTX_STEP
    floor = min(MIN_N_CTX, n_ctx_train) if n_ctx_train > 0 else MIN_N_CTX
    return max(n_ctx, floor)
