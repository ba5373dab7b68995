"""Start-up costs, each measured in a fresh Python process: ``import fireside`` time,
model load time, and resident memory after loading (against the model file's size plus
the KV cache's).

The probes run ``python -c`` with a small script and read one JSON line back, so nothing
the benchmark process has already imported or loaded hides a cost.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

_IMPORT_PROBE = """
import time
t0 = time.perf_counter()
import fireside
print(time.perf_counter() - t0)
"""

_LOAD_PROBE = """
import json, os, sys, time
import psutil
proc = psutil.Process()
path, threads = sys.argv[1], int(sys.argv[2])
import fireside
from fireside.defaults import kv_bytes_per_token
from fireside.model import Model
rss_base = proc.memory_info().rss
t0 = time.perf_counter()
model = Model(path, n_threads=threads)
load_s = time.perf_counter() - t0
rss_load = proc.memory_info().rss
core = model.core
kv = model.n_ctx * kv_bytes_per_token(core.n_layer, core.n_embd, core.n_head, core.n_head_kv)
model.generate("Hello", max_tokens=8, temperature=0.0)
rss_generate = proc.memory_info().rss
print(json.dumps({
    "load_s": load_s, "rss_base": rss_base, "rss_load": rss_load,
    "rss_generate": rss_generate, "kv_bytes": kv, "n_ctx": model.n_ctx,
    "file_bytes": os.path.getsize(path),
}))
"""


class ProbeError(RuntimeError):
    """A probe process failed."""


def _probe(script: str, *args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        check=False,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise ProbeError(f"probe failed ({done.returncode}): {done.stderr[-1500:]}")
    return done.stdout.strip().splitlines()[-1]


def import_seconds() -> float:
    """Seconds ``import fireside`` takes in a fresh interpreter."""
    return float(_probe(_IMPORT_PROBE, timeout=60))


@dataclass
class LoadSample:
    """One load of the model in a fresh process (bytes and seconds)."""

    load_s: float
    rss_base: int
    rss_load: int
    rss_generate: int
    kv_bytes: int
    n_ctx: int
    file_bytes: int

    @property
    def overhead_load(self) -> int:
        """RSS after load beyond the file and the KV cache (bytes; may be negative)."""
        return self.rss_load - self.file_bytes - self.kv_bytes

    @property
    def overhead_generate(self) -> int:
        return self.rss_generate - self.file_bytes - self.kv_bytes


def load_sample(model: Path, *, threads: int) -> LoadSample:
    """Load ``model`` with default settings in a fresh process; memory and time."""
    data = json.loads(_probe(_LOAD_PROBE, str(model), str(threads)))
    return LoadSample(**data)
