"""float -> 8-bit codes in one pass: ``q = clamp(rint(x * float32(1 / scale)) + zero_point, qmin, qmax)``.

The formula is PyTorch's (and ``quant.qtensor.quantize_array``'s, the reference the tests
compare with): multiply by the float32 reciprocal, round half to even, add the zero point, clamp.
NumPy takes four whole-array passes and a cast for it; here each element is read and written once.
"""
import numpy as np
from numba import njit, prange

from .validate import as_array

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
    out = np.empty(x.shape, dtype)
    flat = np.ascontiguousarray(x, np.float32).reshape(-1)
    _quantize(flat, np.float32(1.0) / np.float32(scale), np.float32(zero_point), np.float32(qmin),
              np.float32(qmax), out.reshape(-1))
    return out
