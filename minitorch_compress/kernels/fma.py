"""``fma32(a, b, c)``: float32 ``a * b + c`` rounded once, as ``llvm.fma`` computes it, in NumPy.

The kernels' plain-Python twins (what runs with ``NUMBA_DISABLE_JIT=1``) need the very bits of
the fused multiply-add the compiled kernels use. In float64 the product of two float32 values is
exact (24 + 24 bits fit in 53), but the sum is rounded, and rounding that to float32 again can go
the wrong way (double rounding: a value just below a float32 midpoint that float64 rounds onto
it). Round-to-odd fixes this (Boldo & Melquiond 2008): when the float64 sum is inexact, replace
it by its neighbour with an odd last bit; rounding that to float32, with 29 spare bits, gives the
correctly rounded result. The float64 sum's error is exact by Knuth's TwoSum.
"""
import numpy as np


def fma32(a, b, c):
    """float32 ``a * b + c`` with a single rounding (broadcasting NumPy arrays or scalars).

    IEEE special values pass through silently, as in the instruction: a kernel's padding lanes
    may hold any bits, NaNs included, and their results are thrown away.
    """
    with np.errstate(all="ignore"):
        a, b, c = (np.asarray(x, np.float32).astype(np.float64) for x in (a, b, c))
        p = a * b                              # exact
        s = p + c                              # rounded to float64
        v = s - p                              # TwoSum: p + c = s + err exactly
        err = (p - (s - v)) + (c - v)
        inexact = np.isfinite(s) & (err != 0)
        even = (s.view(np.int64) & 1) == 0
        s = np.where(inexact & even, np.nextafter(s, np.where(err > 0, np.inf, -np.inf)), s)
        return s.astype(np.float32)
