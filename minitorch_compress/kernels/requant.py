"""From the int32 accumulator of ``int8_linear`` back to float32, or to 8-bit with a new scale.

With affine quantization ``x = x_scale * (x_q - x_zp)`` and ``w = w_scale * (w_q - w_zp)``::

    x @ w.T = x_scale * w_scale * ((x_q - x_zp) @ w_q.T - w_zp * rowsum(x_q - x_zp))

The int8 kernel subtracts ``x_zp * rowsum(w_q)`` itself (a per-column correction it applies
anyway); the rest is one fused pass over the int32 product (``_epilogue``): the rank-one
``w_zp`` term (only when some ``w_zp != 0``), the float32 scale per output column, the bias and,
for requantization, rounding half to even, the new zero point and the clamp. Each output is read
and written once, instead of the ~9 whole-array NumPy passes the reference takes.
"""
import math

import numpy as np
from numba import njit, prange

from . import threads
from .int8 import int8_linear, int8_matmul_reference
from .quantize import CODE_DTYPES, CODE_RANGES
from .validate import unwrap

NS_PER_OUTPUT = 0.25   # one thread, per output element


@njit(cache=True, parallel=True)
def _epilogue(acc, x_sums, w_zp, scale, bias, quantize, inv_out, out_zp, lo, hi, out):
    """out[i, j] = y = float32(acc[i, j] - w_zp[j] * x_sums[i]) * scale[j] + bias[j], or, when
    ``quantize``, clamp(rint(y * inv_out) + out_zp, lo, hi).

    ``x_sums`` is empty when every ``w_zp`` is 0. The float32 operations happen in the order the
    NumPy reference takes them, so the results are bit-identical to it.
    """
    m, n = acc.shape
    for i in prange(m):
        for j in range(n):
            v = np.int64(acc[i, j])
            if x_sums.size:
                v -= w_zp[j] * x_sums[i]
            y = np.float32(v) * scale[j] + bias[j]
            if quantize:
                q = np.rint(y * inv_out) + out_zp
                out[i, j] = min(max(q, lo), hi)
            else:
                out[i, j] = y


def _per_channel(value, n, name):
    v = np.asarray(unwrap(value), np.float64)
    if v.ndim > 1 or (v.ndim == 1 and v.shape != (n,)):
        raise ValueError(f"{name} must be a scalar or have shape ({n},), got shape {v.shape}")
    return v


def _check_scale(scale, name):
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ValueError(f"{name} must be finite and > 0, got {scale}")


def _check_out(out_scale, out_zero_point, out_dtype):
    if out_dtype not in CODE_DTYPES:
        raise ValueError(f"unknown out_dtype {out_dtype!r}; expected 'qint8' or 'quint8'")
    dtype = CODE_DTYPES[out_dtype]
    lo, hi = CODE_RANGES[dtype]
    _check_scale(out_scale, "out_scale")
    if not lo <= out_zero_point <= hi:
        raise ValueError(f"out_zero_point={out_zero_point} outside [{lo}, {hi}] for {out_dtype}")
    return dtype, lo, hi


class Epilogue:
    """A layer's per-column constants, validated and converted once: float32 ``scale`` (N,) (the
    weight's; ``at(x_scale)`` gives x_scale * w_scale), float32 ``bias`` (N,) (zeros for none) and
    int64 ``w_zp`` (N,), or None when all zero. Layers keep one and call ``linear_epilogue``.
    """

    def __init__(self, n, w_scale, w_zero_point=0, bias=None):
        w_scale = _per_channel(w_scale, n, "w_scale")
        w_zp = _per_channel(w_zero_point, n, "w_zero_point")
        _check_scale(w_scale, "w_scale")
        self.scale = np.broadcast_to(w_scale.astype(np.float32), (n,)).copy()
        self.w_zp = np.broadcast_to(w_zp.astype(np.int64), (n,)).copy() if np.any(w_zp != 0) else None
        self.bias = np.zeros(n, np.float32) if bias is None else np.asarray(unwrap(bias), np.float32).reshape(n)

    def at(self, x_scale, bias=None):
        """The constants for inputs of scale ``x_scale`` (and, if given, another float32 bias).

        Called per batch by dynamic layers, so it checks the one new number with plain floats.
        """
        if not (math.isfinite(x_scale) and x_scale > 0):
            raise ValueError(f"x_scale must be finite and > 0, got {x_scale}")
        out = object.__new__(Epilogue)
        out.scale, out.w_zp = np.float32(x_scale) * self.scale, self.w_zp
        out.bias = self.bias if bias is None else bias
        return out


_NO_SUMS = np.zeros(0, np.int64)


def linear_epilogue(x_q, x_zero_point, packed, epilogue, out_dtype=None, out_scale=1.0, out_zero_point=0,
                    lo=0, hi=0):
    """float32 (``out_dtype=None``) or 8-bit output of the layer, with arguments already validated."""
    acc = int8_linear(x_q, packed, x_zero_point=x_zero_point)
    m, n = acc.shape
    x_sums, w_zp = _NO_SUMS, _NO_SUMS
    if epilogue.w_zp is not None:
        k = packed.shape[1]
        x_sums = np.asarray(unwrap(x_q)).sum(axis=1, dtype=np.int64) - k * int(x_zero_point)
        w_zp = epilogue.w_zp
    out = np.empty((m, n), np.float32 if out_dtype is None else out_dtype)
    threads.run(_epilogue, m * n * NS_PER_OUTPUT, acc, x_sums, w_zp, epilogue.scale, epilogue.bias,
                out_dtype is not None, np.float32(1.0 / out_scale), np.float32(out_zero_point), np.float32(lo),
                np.float32(hi), out)
    return out


def int8_linear_dequant(x_q, x_scale, x_zero_point, packed, w_scale, w_zero_point=0, bias=None):
    """float32 ``x @ w.T + bias`` from quantized x (int8/uint8) and a packed quantized weight."""
    epilogue = Epilogue(packed.shape[0], w_scale, w_zero_point, bias).at(x_scale)
    return linear_epilogue(x_q, x_zero_point, packed, epilogue)


def int8_linear_requant(x_q, x_scale, x_zero_point, packed, w_scale, out_scale, out_zero_point,
                        w_zero_point=0, bias=None, out_dtype="qint8"):
    """``int8_linear_dequant`` quantized again: clamp(round_half_even(y * float32(1/out_scale)) + zp)."""
    dtype, lo, hi = _check_out(out_scale, out_zero_point, out_dtype)
    epilogue = Epilogue(packed.shape[0], w_scale, w_zero_point, bias).at(x_scale)
    return linear_epilogue(x_q, x_zero_point, packed, epilogue, dtype, out_scale, out_zero_point, lo, hi)


def int8_linear_dequant_reference(x_q, x_scale, x_zero_point, weight, w_scale, w_zero_point=0, bias=None):
    """The same in whole-array NumPy passes, from the unpacked int8 weight: the tests' reference."""
    n, k = weight.shape
    w_scale = _per_channel(w_scale, n, "w_scale")
    w_zp = _per_channel(w_zero_point, n, "w_zero_point").astype(np.int64)
    acc = int8_matmul_reference(x_q, weight.T).astype(np.int64)
    acc -= int(x_zero_point) * weight.sum(axis=1, dtype=np.int64)
    acc = acc - w_zp * np.asarray(x_q, np.int64).sum(axis=1, keepdims=True) + (k * int(x_zero_point)) * w_zp
    y = acc.astype(np.float32) * (np.float32(x_scale) * w_scale.astype(np.float32))
    if bias is not None:
        y += np.asarray(bias, np.float32)
    return y


def int8_linear_requant_reference(x_q, x_scale, x_zero_point, weight, w_scale, out_scale, out_zero_point,
                                  w_zero_point=0, bias=None, out_dtype="qint8"):
    dtype = CODE_DTYPES[out_dtype]
    lo, hi = CODE_RANGES[dtype]
    y = int8_linear_dequant_reference(x_q, x_scale, x_zero_point, weight, w_scale, w_zero_point, bias)
    q = np.rint(y * np.float32(1.0 / out_scale)) + out_zero_point
    return np.clip(q, lo, hi).astype(dtype)
