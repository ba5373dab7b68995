#!/usr/bin/env python3
"""Build llama.cpp's own benchmark tools from the vendored tree fireside is built from.

The reference side of the benchmarks is llama.cpp itself: ``llama-bench``,
``llama-completion``, ``llama-batched-bench``, ``llama-embedding`` (LocalDocs indexing),
``llama-lookup`` (the ``speculative`` section: llama.cpp's prompt-lookup example) and
``llama-server`` (the ``server`` and ``busy`` sections; ``--no-server`` skips it), compiled
from the same pinned source (``vendor/fetch_llama_cpp.py`` resolves it) with the same
options that matter for speed as the extension module (Release, static, position-independent,
``GGML_NATIVE``, and the same CPU kernels: ``vendor/cpu-kernels.cmake``).
They go into a separate build directory (default ``build/reference``) and are never part
of the wheel.

    python benchmarks/build_reference.py            # build (incremental; ccache if present)
    python benchmarks/build_reference.py --print    # print the binaries' directory only

Standard library only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CPU_KERNELS = ROOT / "vendor" / "cpu-kernels.cmake"
"""Which ggml CPU kernels are compiled (no AMX), shared with the extension's build."""
TARGETS = (
    "llama-bench",
    "llama-completion",
    "llama-batched-bench",
    "llama-embedding",
    "llama-lookup",  # the speculative section: llama.cpp's prompt-lookup speculation
)
SERVER_TARGET = "llama-server"
DEFAULT_BUILD_DIR = ROOT / "build" / "reference"


def llama_source() -> Path:
    """The pinned llama.cpp tree (the last stdout line of the fetch script)."""
    fetch = ROOT / "vendor" / "fetch_llama_cpp.py"
    out = subprocess.run(
        [sys.executable, str(fetch)], check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    return Path(out.strip().splitlines()[-1])


def configure_args(
    source: Path, build_dir: Path, *, portable: bool, server: bool = True
) -> list[str]:
    """CMake arguments: only what the tools need, built like the extension module."""
    args = [
        "cmake",
        "-S",
        str(source),
        "-B",
        str(build_dir),
        "-DCMAKE_BUILD_TYPE=Release",
        "-DBUILD_SHARED_LIBS=OFF",
        "-DCMAKE_POSITION_INDEPENDENT_CODE=ON",
        f"-DGGML_NATIVE={'OFF' if portable else 'ON'}",
        "-DGGML_RPC=ON",
        f"-DCMAKE_PROJECT_INCLUDE={CPU_KERNELS}",
        # the tools live in tools/ (llama-embedding, llama-lookup in examples/) and link
        # llama-common;
        # only the targets named are built
        "-DLLAMA_BUILD_COMMON=ON",
        "-DLLAMA_BUILD_TOOLS=ON",
        "-DLLAMA_BUILD_EXAMPLES=ON",
        "-DLLAMA_BUILD_TESTS=OFF",
        f"-DLLAMA_BUILD_SERVER={'ON' if server else 'OFF'}",
        # llama-server without its web UI (no npm, no download): the API is what is measured
        "-DLLAMA_BUILD_UI=OFF",
        "-DLLAMA_USE_PREBUILT_UI=OFF",
        "-DLLAMA_BUILD_APP=OFF",
        "-DLLAMA_OPENSSL=OFF",
    ]
    if shutil.which("ninja"):
        args += ["-G", "Ninja"]
    if shutil.which("ccache"):
        args += ["-DCMAKE_C_COMPILER_LAUNCHER=ccache", "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"]
    return args


def binaries_dir(build_dir: Path) -> Path:
    return build_dir / "bin"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD_DIR)
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--portable", action="store_true", help="GGML_NATIVE=OFF")
    parser.add_argument("--print", action="store_true", help="print the binaries' directory")
    parser.add_argument("--no-server", action="store_true", help="do not build llama-server")
    args = parser.parse_args(argv)
    build_dir: Path = args.build_dir.resolve()
    if args.print:
        print(binaries_dir(build_dir))
        return 0
    for tool in ("cmake",):
        if not shutil.which(tool):
            print(f"build_reference: {tool} is not on PATH", file=sys.stderr)
            return 2
    source = llama_source()
    print(f"build_reference: llama.cpp source {source}", file=sys.stderr)
    server = not args.no_server
    configure = configure_args(source, build_dir, portable=args.portable, server=server)
    subprocess.run(configure, check=True)
    targets = (*TARGETS, SERVER_TARGET) if server else TARGETS
    build = ["cmake", "--build", str(build_dir), "--config", "Release", "-j", str(args.jobs)]
    subprocess.run([*build, "--target", *targets], check=True)
    missing = [t for t in targets if not (binaries_dir(build_dir) / t).exists()]
    if missing:
        print(f"build_reference: not built: {', '.join(missing)}", file=sys.stderr)
        return 1
    print(binaries_dir(build_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
