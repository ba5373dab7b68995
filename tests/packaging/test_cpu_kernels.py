"""The vendored llama.cpp is compiled without ggml's AMX kernels (``vendor/cpu-kernels.cmake``),
in the extension's build and in the reference tools' build alike.

ggml's AMX matrix multiplication crashes on the first batch of more than one token on CPUs
with AMX-INT8 at this pin (llama.cpp's own tools too). These tests compile with the
instruction sets of such a CPU forced on, so they check the exclusion on any x86 machine,
not only on one that has AMX.
"""

from __future__ import annotations

import importlib.util
import platform
import shutil
import subprocess
from pathlib import Path

import pytest
from fireside import _core

ROOT = Path(__file__).resolve().parents[2]
CPU_KERNELS = ROOT / "vendor" / "cpu-kernels.cmake"

PROBE = """\
#if defined(__AMX_INT8__)
#error "__AMX_INT8__ is defined: ggml would compile its AMX kernels"
#endif
#if !defined(__AVX512F__)
#error "the forced instruction set did not apply"
#endif
int probe() { return 0; }
"""

x86_gnu = pytest.mark.skipif(
    platform.machine().lower() not in {"x86_64", "amd64"}
    or shutil.which("c++") is None
    or shutil.which("cmake") is None,
    reason="the AMX exclusion applies to x86-64 builds with GCC or Clang (and needs cmake)",
)


def _configure_and_build(tmp_path: Path, *, include: bool) -> subprocess.CompletedProcess[str]:
    src = tmp_path / "src"
    src.mkdir()
    (src / "probe.cpp").write_text(PROBE)
    (src / "probe.c").write_text(PROBE)
    line = f'include("{CPU_KERNELS.as_posix()}")' if include else ""
    (src / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.21)\n"
        "project(probe C CXX)\n"
        f"{line}\n"
        "add_library(probe STATIC probe.cpp probe.c)\n"
        # what -march=native gives on a Sapphire Rapids Xeon, and what ggml's portable
        # sapphirerapids variant asks for, after the flags the include set
        "target_compile_options(probe PRIVATE -march=sapphirerapids -mamx-int8)\n"
    )
    build = tmp_path / "build"
    cmake = [shutil.which("cmake") or "cmake"]
    subprocess.run(
        [*cmake, "-S", str(src), "-B", str(build)], check=True, capture_output=True, timeout=300
    )
    return subprocess.run(
        [*cmake, "--build", str(build)], check=False, capture_output=True, text=True, timeout=300
    )


@x86_gnu
def test_the_kernel_file_compiles_amx_out(tmp_path: Path) -> None:
    built = _configure_and_build(tmp_path, include=True)
    assert built.returncode == 0, built.stdout + built.stderr


@x86_gnu
def test_without_it_the_probe_sees_amx(tmp_path: Path) -> None:
    """The probe can fail: the same project without the include defines __AMX_INT8__."""
    built = _configure_and_build(tmp_path, include=False)
    assert built.returncode != 0
    assert "__AMX_INT8__ is defined" in built.stdout + built.stderr


def test_the_extension_has_no_amx_kernels() -> None:
    # ggml lists AMX_INT8 among the CPU features only where it compiled the AMX kernels
    assert "AMX_INT8 = 1" not in _core.system_info()


def test_the_reference_tools_use_the_same_kernel_file() -> None:
    spec = importlib.util.spec_from_file_location(
        "build_reference", ROOT / "benchmarks" / "build_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = module.configure_args(Path("/src"), Path("/build"), portable=False)
    assert f"-DCMAKE_PROJECT_INCLUDE={CPU_KERNELS}" in args
    assert CPU_KERNELS.is_file()
