"""Quantized tensors: real values stored as small integers with a scale and a zero point.

Affine quantization (Jacob et al., 2018, "Quantization and Training of Neural Networks for
Efficient Integer-Arithmetic-Only Inference") maps a real x to an integer q and back::

    q = clamp(round_half_even(x * float32(1 / scale)) + zero_point, qmin, qmax)
    x_hat = (q - zero_point) * scale

exactly as PyTorch's ``quantize_per_tensor`` (FBGEMM's ``Quantize``: multiply by the float32
reciprocal, round half to even). ``zero_point`` is the integer that represents the real 0
exactly. Ranges: qint8 -128..127, quint8 0..255; ``reduce_range`` drops one bit (-64..63,
0..127) as PyTorch does for x86 kernels whose 16-bit intermediate sums could overflow.
"""

import numpy as np

from ..kernels import CODE_DTYPES, CODE_RANGES, quantize_array  # noqa: F401  (the formula's one home)
from ..tensor import Tensor
from ..validation import is_int

DTYPES = CODE_DTYPES   # "qint8" -> int8, "quint8" -> uint8


def check_dtype(dtype):
    """``dtype`` ("qint8"/"quint8", also ``mc.qint8``) or a clear error."""
    if not isinstance(dtype, str):
        raise TypeError(f"quantized dtype must be 'qint8' or 'quint8', got {dtype!r}")
    if dtype not in DTYPES:
        raise ValueError(f"unknown quantized dtype {dtype!r}; expected 'qint8' or 'quint8'")
    return dtype


def dtype_range(dtype, reduce_range=False):
    """(qmin, qmax) of ``dtype``; ``reduce_range`` gives the 7-bit range PyTorch uses on x86."""
    qmin, qmax = CODE_RANGES[DTYPES[check_dtype(dtype)]]
    return (qmin // 2, qmax // 2) if reduce_range else (qmin, qmax)


def _array(x, name="x"):
    data = x.data if isinstance(x, Tensor) else x
    if not isinstance(data, np.ndarray) or data.dtype.kind != "f":
        raise TypeError(f"{name} must be a float Tensor or ndarray, got {type(x).__name__}"
                        + (f" of dtype {data.dtype}" if isinstance(data, np.ndarray) else ""))
    return data


def check_scale(scale, name="scale"):
    """float64 array of scales, each finite and > 0 (PyTorch accepts 0 or NaN silently; we do not)."""
    s = np.asarray(scale.data if isinstance(scale, Tensor) else scale, dtype=np.float64)
    bad = ~(np.isfinite(s) & (s > 0))
    if bad.any():
        raise ValueError(f"{name} must be finite and > 0, got {s[bad].flat[0]}")
    return s


def check_zero_point(zero_point, qmin, qmax, name="zero_point"):
    """int64 array of zero points, each an integer in [qmin, qmax]."""
    raw = np.asarray(zero_point.data if isinstance(zero_point, Tensor) else zero_point)
    if raw.dtype.kind == "f" and not np.all(raw == np.round(raw)):
        raise ValueError(f"{name} must be an integer, got {raw[raw != np.round(raw)].flat[0]}")
    if raw.dtype.kind not in "iuf" or raw.dtype == np.bool_:
        raise TypeError(f"{name} must be an integer, got {zero_point!r}")
    z = raw.astype(np.int64)
    bad = (z < qmin) | (z > qmax)
    if bad.any():
        raise ValueError(f"{name}={z[bad].flat[0]} is outside the quantized range [{qmin}, {qmax}]")
    return z


def dequantize_array(q, scale, zero_point):
    """(q - zero_point) * scale in float32."""
    return (q.astype(np.int32) - np.asarray(zero_point, np.int32)).astype(np.float32) * np.asarray(scale, np.float32)


class QTensor:
    """A quantized tensor, like a PyTorch tensor of dtype ``torch.qint8``/``torch.quint8``.

    Holds the integers (``int_repr()``), the dtype and the quantization parameters: one scale
    and zero point (``qscheme() == "per_tensor_affine"``), or one per slice along ``axis``
    (``"per_channel_affine"``). ``dequantize()`` gives back float32 values.
    """

    def __init__(self, int_repr, scale, zero_point, dtype, axis=None):
        self._int = int_repr
        self._scale, self._zero_point = scale, zero_point
        self.dtype, self._axis = dtype, axis

    shape = property(lambda self: self._int.shape)
    ndim = property(lambda self: self._int.ndim)

    def __len__(self):
        return len(self._int)

    def int_repr(self):
        """The stored integers as an int8/uint8 Tensor."""
        return Tensor(self._int)

    def qscheme(self):
        return "per_tensor_affine" if self._axis is None else "per_channel_affine"

    def _scalar_params(self, what):
        if self._axis is not None:
            raise ValueError(f"{what} is for per-tensor quantization; this tensor is per channel "
                             f"(use q_per_channel_scales() / q_per_channel_zero_points())")

    def q_scale(self):
        self._scalar_params("q_scale()")
        return float(self._scale)

    def q_zero_point(self):
        self._scalar_params("q_zero_point()")
        return int(self._zero_point)

    def _channel_params(self, what):
        if self._axis is None:
            raise ValueError(f"{what} is for per-channel quantization; this tensor is per tensor")

    def q_per_channel_scales(self):
        self._channel_params("q_per_channel_scales()")
        return Tensor(self._scale.astype(np.float64))

    def q_per_channel_zero_points(self):
        self._channel_params("q_per_channel_zero_points()")
        return Tensor(self._zero_point.astype(np.int64))

    def q_per_channel_axis(self):
        self._channel_params("q_per_channel_axis()")
        return self._axis

    def _broadcast(self, values):
        """Per-channel parameters shaped to broadcast along ``axis``."""
        if self._axis is None:
            return values
        shape = [1] * self._int.ndim
        shape[self._axis] = -1
        return values.reshape(shape)

    def dequantize(self):
        """(q - zero_point) * scale as a float32 Tensor."""
        return Tensor(dequantize_array(self._int, self._broadcast(self._scale), self._broadcast(self._zero_point)))

    def with_int_repr(self, int_repr):
        """A QTensor with the same quantization parameters and new integers (e.g. after relu or reshape)."""
        if self._axis is not None and int_repr.shape[self._axis] != self._int.shape[self._axis]:
            raise ValueError(f"new integers of shape {int_repr.shape} do not keep axis {self._axis} "
                             f"of shape {self._int.shape}")
        return QTensor(int_repr, self._scale, self._zero_point, self.dtype, self._axis)

    def __repr__(self):
        if self._axis is None:
            params = f"scale={self.q_scale():.6g}, zero_point={self.q_zero_point()}"
        else:
            params = f"per channel along axis {self._axis}"
        body = np.array2string(self._int, threshold=20, separator=", ", prefix="QTensor(")
        return f"QTensor({body}, dtype={self.dtype}, {params})"


def quantize_per_tensor(x, scale, zero_point, dtype):
    """Quantize every element of ``x`` with one ``scale`` and ``zero_point`` (like ``torch.quantize_per_tensor``)."""
    data = _array(x)
    qmin, qmax = dtype_range(dtype)
    scale = check_scale(scale)
    zero_point = check_zero_point(zero_point, qmin, qmax)
    if scale.size != 1 or zero_point.size != 1:
        raise ValueError(f"quantize_per_tensor takes one scale and zero point, got {scale.size} and {zero_point.size}")
    s, z = float(scale.reshape(())), int(zero_point.reshape(()))
    q = quantize_array(data, s, z, qmin, qmax).astype(DTYPES[dtype])
    return QTensor(q, s, z, dtype)


def quantize_per_channel(x, scales, zero_points, axis, dtype):
    """Quantize each slice ``x[..., i, ...]`` along ``axis`` with its own scale and zero point."""
    data = _array(x)
    qmin, qmax = dtype_range(dtype)
    if not is_int(axis) or not -data.ndim <= axis < data.ndim:
        raise ValueError(f"axis={axis!r} is not a dimension of a tensor of shape {data.shape}")
    axis = int(axis) % data.ndim
    scales = check_scale(scales, "scales").reshape(-1)
    zero_points = check_zero_point(zero_points, qmin, qmax, "zero_points").reshape(-1)
    if scales.shape != (data.shape[axis],) or zero_points.shape != (data.shape[axis],):
        raise ValueError(f"scales shape {scales.shape} and zero_points shape {zero_points.shape} must both be "
                         f"({data.shape[axis]},) for axis {axis} of a tensor of shape {data.shape}")
    shape = [1] * data.ndim
    shape[axis] = -1
    q = quantize_array(data, scales.reshape(shape), zero_points.reshape(shape), qmin, qmax).astype(DTYPES[dtype])
    return QTensor(q, scales, zero_points, dtype, axis)
