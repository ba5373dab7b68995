"""The installed package works on this machine: the test that wheels run after installing.

It needs nothing but the package and the test model, so it runs the same against an editable
install, a source build, or a repaired portable wheel in a fresh environment without a
compiler (``.ci/portable-wheel``; cibuildwheel's test command).
"""

from __future__ import annotations

import re
from pathlib import Path

import fireside
from fireside import Model, _core


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    found = re.search(r"^flags\s*:(.*)$", text, re.MULTILINE)
    return set(found[1].split()) if found else set()


def test_generates_with_the_test_model(model_path: Path) -> None:
    with Model(model_path, n_ctx=256, n_threads=1) as model:
        first = model.generate("The capital of France is", max_tokens=8, temperature=0)
        again = model.generate("The capital of France is", max_tokens=8, temperature=0)
    assert first.text.strip() and first.tokens == again.tokens
    assert any(d.type == "cpu" for d in fireside.devices())


def test_portable_build_loaded_the_best_cpu_variant() -> None:
    """Portable wheels carry one CPU backend per instruction-set level; the one loaded must
    use what this CPU has (AVX2 on an AVX2 machine, not the baseline)."""
    package = Path(_core.__file__).parent
    variants = sorted(package.glob("*ggml-cpu-*"))
    info = _core.system_info()
    flags = cpu_flags()
    if not variants:
        # a native build: compiled for this very CPU
        assert "CPU :" in info
        return
    assert len(variants) >= 4, variants  # x64 baseline up to AVX-512 levels
    for flag, feature in (("avx2", "AVX2"), ("avx", "AVX"), ("fma", "FMA"), ("f16c", "F16C")):
        if flag in flags:
            assert f"{feature} = 1" in info, (flag, info)
    assert _core.supports_rpc()
