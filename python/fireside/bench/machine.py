"""What a benchmark ran on: CPU, cores, memory, OS, Python, and the code's versions."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit(start: Path) -> str | None:
    """The commit of the git checkout holding ``start`` (``+dirty`` when modified)."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(start), "rev-parse", "HEAD"],
            check=False,
            capture_output=True,
            text=True,
            timeout=10,
        )
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(start), "status", "--porcelain", "--untracked-files=no"],
            check=False,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info() -> dict[str, Any]:
    """CPU model, logical CPUs, physical cores used by default, RAM, OS and Python."""
    from fireside.defaults import physical_cores, total_ram

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "physical_cores": physical_cores(),
        "ram_bytes": total_ram(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "load_average_at_start": list(load) if load else None,
    }


def versions() -> dict[str, Any]:
    """fireside's version and commit, and the llama.cpp commit its native module uses."""
    import fireside

    try:
        from fireside import _core

        llama: str | None = _core.LLAMA_CPP_COMMIT
        system: str | None = _core.system_info()
    except ImportError:
        llama, system = None, None
    return {
        "fireside": fireside.__version__,
        "fireside_commit": _git_commit(Path(fireside.__file__).resolve().parent),
        "llama_cpp_commit": llama,
        "system_info": system,
    }
