"""float -> 8-bit codes in one pass: ``q = clamp(rint(x * float32(1 / scale)) + zero_point, qmin, qmax)``.

The formula is PyTorch's (and ``quant.qtensor.quantize_array``'s, the reference the tests
compare with): multiply by the float32 reciprocal, round half to even, add the zero point, clamp.
NumPy takes four whole-array passes and a cast for it; here each element is read and written once.
"""
import numpy as np
from numba import njit, prange

from . import threads
from .validate import as_array

NS_PER_ELEMENT = 0.1   # one thread
_CODE_DTYPES = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255)}


@njit(cache=True, parallel=True)
def _quantize(x, inv_scale, zero_point, qmin, qmax, out):
    for i in prange(x.size):
        q = np.rint(x[i] * inv_scale) + zero_point
        out[i] = min(max(q, qmin), qmax)


def quantize(x, scale, zero_point, qmin, qmax, dtype):
    """Codes of ``x`` (a real ndarray or Tensor, any shape) with one scale and zero point, as ``dtype``
    (int8 or uint8) clamped to [qmin, qmax]. float64 input is rounded to float32 first, as PyTorch does.
    """
    x = as_array(x, "x")
    if x.dtype.kind not in "fiu":
        raise TypeError(f"x must be a real-valued array, got dtype {x.dtype}")
    dtype = np.dtype(dtype)
    if dtype not in _CODE_DTYPES:
        raise TypeError(f"dtype must be int8 or uint8, got {dtype}")
    lo, hi = _CODE_DTYPES[dtype]
    if not lo <= qmin <= qmax <= hi:
        raise ValueError(f"[qmin, qmax] = [{qmin}, {qmax}] is not a range inside [{lo}, {hi}] for {dtype}")
    if not lo <= zero_point <= hi or zero_point != int(zero_point):
        raise ValueError(f"zero_point must be an integer in [{lo}, {hi}] for {dtype}, got {zero_point!r}")
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be finite and > 0, got {scale}")
    return quantize_checked(x, scale, zero_point, qmin, qmax, dtype)


def quantize_checked(x, scale, zero_point, qmin, qmax, dtype):
    """``quantize`` for arguments already checked (a layer checks its own once; at batch 1 the
    checks cost as much as the work)."""
    out = np.empty(x.shape, dtype)
    flat = np.ascontiguousarray(x, np.float32).reshape(-1)
    threads.run(_quantize, flat.size * NS_PER_ELEMENT, flat, np.float32(1.0) / np.float32(scale),
                np.float32(zero_point), np.float32(qmin), np.float32(qmax), out.reshape(-1))
    return out
