"""float -> 8-bit codes in one pass: ``q = clamp(rint(x * float32(1 / scale)) + zero_point, qmin, qmax)``.

The formula is PyTorch's: multiply by the float32 reciprocal, round half to even, add the zero
point, clamp. ``quantize_array`` writes it in NumPy (four whole-array passes), the one place the
package spells it out: quantized tensors, fake quantization and the tests use it. The kernel
(``quantize``) reads and writes each element once.
"""
import numpy as np
from numba import njit, prange

from . import threads
from .validate import as_array

NS_PER_ELEMENT = 0.1   # one thread
CODE_DTYPES = {"qint8": np.dtype(np.int8), "quint8": np.dtype(np.uint8)}   # PyTorch's names for the codes' dtypes
CODE_RANGES = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255)}
"""The [min, max] of 8-bit codes: the package's one table of them (quant.qtensor, the int8 kernel,
requantization and this kernel read it)."""


def quantize_array(x, scale, zero_point, qmin, qmax, dtype=np.float32):
    """The formula in NumPy; ``scale``/``zero_point`` broadcast against ``x``. Codes as floats of ``dtype``.

    The reciprocal is taken in float32 (``1.0f / float(scale)``) as PyTorch does, so ties such as
    127.5 land where they land in PyTorch; the product is in ``dtype`` (fake quantization keeps
    float64 inputs in float64). ``qmin = qmax = None``: no clamp (fake quantization needs to know
    which codes the clamp moves).
    """
    inv_scale = (np.float32(1.0) / np.asarray(scale, np.float32)).astype(dtype, copy=False)
    q = np.multiply(x, inv_scale, dtype=dtype)
    np.rint(q, out=q)  # in place: one buffer for the whole formula
    np.add(q, zero_point, out=q, casting="unsafe")
    return q if qmin is None else np.clip(q, qmin, qmax, out=q)


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
    if dtype not in CODE_RANGES:
        raise TypeError(f"dtype must be int8 or uint8, got {dtype}")
    lo, hi = CODE_RANGES[dtype]
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
