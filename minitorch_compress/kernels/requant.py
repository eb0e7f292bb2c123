"""From the int32 accumulator of ``int8_linear`` back to float32, or to 8-bit with a new scale.

With affine quantization ``x = x_scale * (x_q - x_zp)`` and ``w = w_scale * (w_q - w_zp)``::

    x @ w.T = x_scale * w_scale * (x_q @ w_q.T - x_zp * rowsum(w_q) - w_zp * rowsum(x_q) + K * x_zp * w_zp)

The integer product runs on the int8 kernel; the corrections are rank-one and cost O(M*N).
"""
import numpy as np

from .int8 import int8_linear
from .validate import unwrap

_RANGES = {"qint8": (np.int8, -128, 127), "quint8": (np.uint8, 0, 255)}


def _per_channel(value, n, name):
    v = np.asarray(unwrap(value), np.float64)
    if v.ndim > 1 or (v.ndim == 1 and v.shape != (n,)):
        raise ValueError(f"{name} must be a scalar or have shape ({n},), got shape {v.shape}")
    return v


def int8_linear_dequant(x_q, x_scale, x_zero_point, packed, w_scale, w_zero_point=0, bias=None):
    """float32 ``x @ w.T + bias`` from quantized x (int8/uint8) and a packed quantized weight."""
    n, k = packed.shape
    w_scale = _per_channel(w_scale, n, "w_scale")
    w_zp = _per_channel(w_zero_point, n, "w_zero_point")
    if not np.all(np.isfinite(w_scale)) or np.any(w_scale <= 0) or not np.isfinite(x_scale) or x_scale <= 0:
        raise ValueError(f"scales must be finite and > 0, got x_scale={x_scale}, w_scale={w_scale}")
    acc = int8_linear(x_q, packed).astype(np.int64)
    acc -= int(x_zero_point) * packed.row_sums
    if np.any(w_zp != 0):
        x_sums = np.asarray(unwrap(x_q), np.int64).sum(axis=1, keepdims=True)
        acc = acc - w_zp.astype(np.int64) * x_sums + (k * int(x_zero_point)) * w_zp.astype(np.int64)
    y = acc.astype(np.float32) * (np.float32(x_scale) * w_scale.astype(np.float32))
    if bias is not None:
        y += np.asarray(unwrap(bias), np.float32)
    return y


def int8_linear_requant(x_q, x_scale, x_zero_point, packed, w_scale, out_scale, out_zero_point,
                        w_zero_point=0, bias=None, out_dtype="qint8"):
    """``int8_linear_dequant`` quantized again: clamp(round_half_even(y * float32(1/out_scale)) + zp)."""
    if out_dtype not in _RANGES:
        raise ValueError(f"unknown out_dtype {out_dtype!r}; expected 'qint8' or 'quint8'")
    dtype, lo, hi = _RANGES[out_dtype]
    if not np.isfinite(out_scale) or out_scale <= 0:
        raise ValueError(f"out_scale must be finite and > 0, got {out_scale}")
    if not lo <= out_zero_point <= hi:
        raise ValueError(f"out_zero_point={out_zero_point} outside [{lo}, {hi}] for {out_dtype}")
    y = int8_linear_dequant(x_q, x_scale, x_zero_point, packed, w_scale, w_zero_point, bias)
    q = np.rint(y * np.float32(1.0 / out_scale)) + out_zero_point
    return np.clip(q, lo, hi).astype(dtype)
