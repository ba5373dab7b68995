"""How close two logit vectors must be to count as "the same computation".

llama.cpp's CPU kernels are not bit-exact across instruction sets: which kernel runs (and so
the order of float accumulations and the rounding of activations quantized to 8 bits) depends
on the CPU and on the batch shape. Two evaluations that are equal in exact arithmetic (the
same tokens in another batch layout, or at positions shifted by a constant, which RoPE
attention cannot tell apart) then differ by rounding noise. On the development machine that
noise is 0.1-0.3 RMS on logits whose spread (standard deviation) is about 3.5, i.e. 3-9% of
the spread; a genuinely different computation (another position's logits, one cached key
at a wrong position) differs by 50-400% of it. So "same" is an RMS difference within 10% of
the spread and the same top token: loose enough for every CPU's rounding, an order of
magnitude below what a wrong result gives.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Logits = npt.NDArray[np.float32]

SAME_SPREAD_FRACTION = 0.1


def rms_difference(a: Logits, b: Logits) -> float:
    return float(np.sqrt(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def same_logits(a: Logits, b: Logits) -> bool:
    """Equal up to the kernels' rounding noise (see the module docstring)."""
    if a.shape != b.shape:
        return False
    spread = float(np.std(b.astype(np.float64)))
    close = rms_difference(a, b) <= SAME_SPREAD_FRACTION * spread
    return close and int(np.argmax(a)) == int(np.argmax(b))
