"""Fake quantization: round to the integer grid and straight back to float, inside training.

As ``torch.fake_quantize_per_tensor_affine`` and ``torch.ao.quantization.FakeQuantize``::

    q   = round_half_even(x * float32(1 / scale)) + zero_point
    out = (clamp(q, quant_min, quant_max) - zero_point) * scale

Rounding has derivative 0 almost everywhere, so training would stop. The straight-through
estimator (Bengio et al., 2013; used for quantization-aware training by Jacob et al., 2018)
passes the gradient through unchanged where q was inside [quant_min, quant_max] and blocks it
where the value was clamped::

    d out / d x = 1 if quant_min <= q <= quant_max else 0
"""
import numpy as np

from ..autograd import Function
from ..nn import Module
from ..tensor import Tensor
from .observers import (MovingAverageMinMaxObserver, MovingAveragePerChannelMinMaxObserver, with_args)
from .qtensor import check_scale, check_zero_point, dtype_range, quantize_array


class _FakeQuantizeAffine(Function):
    """Forward: quantize and dequantize. Backward: the straight-through estimator."""

    @staticmethod
    def forward(ctx, x, scale, zero_point, quant_min, quant_max):
        q = quantize_array(x, scale, zero_point, None, None, x.dtype)
        zero_point = zero_point.astype(x.dtype)
        inside = (q >= quant_min) & (q <= quant_max)
        ctx.save_for_backward(inside)
        return (np.clip(q, quant_min, quant_max) - zero_point) * scale.astype(np.float32).astype(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None, None, None


def _check(x, scale, zero_point, quant_min, quant_max):
    if not isinstance(x, Tensor) or x.dtype.kind != "f":
        raise TypeError(f"fake quantization needs a float Tensor, got {type(x).__name__}")
    if not quant_min <= quant_max:
        raise ValueError(f"quant_min={quant_min} must be <= quant_max={quant_max}")
    return check_scale(scale), check_zero_point(zero_point, quant_min, quant_max)


def fake_quantize_per_tensor_affine(input, scale, zero_point, quant_min, quant_max):
    """Quantize-dequantize ``input`` with one scale and zero point; gradient by the STE."""
    scale, zero_point = _check(input, scale, zero_point, quant_min, quant_max)
    if scale.size != 1 or zero_point.size != 1:
        raise ValueError(f"per-tensor fake quantization takes one scale and zero point, "
                         f"got {scale.size} and {zero_point.size}")
    return _FakeQuantizeAffine.apply(input, scale.reshape(()), zero_point.reshape(()), quant_min, quant_max)


def fake_quantize_per_channel_affine(input, scale, zero_point, axis, quant_min, quant_max):
    """Quantize-dequantize each slice of ``input`` along ``axis`` with its own scale and zero point."""
    scale, zero_point = _check(input, scale, zero_point, quant_min, quant_max)
    if not -input.ndim <= axis < input.ndim:
        raise ValueError(f"axis={axis} is not a dimension of a tensor of shape {input.shape}")
    channels = input.shape[axis]
    if scale.shape != (channels,) or zero_point.shape != (channels,):
        raise ValueError(f"scale shape {scale.shape} and zero_point shape {zero_point.shape} must both be "
                         f"({channels},) for axis {axis} of input shape {input.shape}")
    shape = [1] * input.ndim
    shape[axis] = -1
    return _FakeQuantizeAffine.apply(input, scale.reshape(shape), zero_point.reshape(shape), quant_min, quant_max)


class FakeQuantize(Module):
    """An observer plus fake quantization: what QAT puts on weights and activations.

    Each call first lets the observer (``activation_post_process``) see the input and copies its
    ``(scale, zero_point)`` into buffers, then fake-quantizes with them. ``disable_observer()``
    freezes the parameters; ``disable_fake_quant()`` makes the module the identity.
    """

    with_args = classmethod(with_args)

    def __init__(self, observer=MovingAverageMinMaxObserver, quant_min=None, quant_max=None, **observer_kwargs):
        super().__init__()
        if quant_min is not None and quant_max is not None:
            lo, hi = dtype_range(observer_kwargs.get("dtype", "quint8"))
            if not lo <= quant_min <= quant_max <= hi:
                raise ValueError(f"quant range [{quant_min}, {quant_max}] must be ordered and fit in [{lo}, {hi}]")
            observer_kwargs.update(quant_min=quant_min, quant_max=quant_max)
        self.activation_post_process = observer(**observer_kwargs)
        self.quant_min = self.activation_post_process.quant_min
        self.quant_max = self.activation_post_process.quant_max
        self.dtype = self.activation_post_process.dtype
        self.qscheme = self.activation_post_process.qscheme
        self.is_per_channel = self.qscheme.startswith("per_channel")
        self.ch_axis = self.activation_post_process.ch_axis if self.is_per_channel else -1
        self.register_buffer("scale", Tensor(np.ones(1, np.float32)))
        self.register_buffer("zero_point", Tensor(np.zeros(1, np.int64)))
        self.register_buffer("fake_quant_enabled", Tensor(np.ones(1, np.uint8)))
        self.register_buffer("observer_enabled", Tensor(np.ones(1, np.uint8)))

    @property
    def calibrated(self):
        return self.activation_post_process.calibrated

    @property
    def clamp_to_quant_range(self):
        return self.activation_post_process.clamp_to_quant_range

    def calculate_qparams(self):
        return self.activation_post_process.calculate_qparams()

    def enable_fake_quant(self, enabled=True):
        self.fake_quant_enabled.data[0] = int(enabled)

    def disable_fake_quant(self):
        self.enable_fake_quant(False)

    def enable_observer(self, enabled=True):
        self.observer_enabled.data[0] = int(enabled)

    def disable_observer(self):
        self.enable_observer(False)

    def forward(self, X):
        if self.observer_enabled.data[0]:
            self.activation_post_process(X.detach())
            scale, zero_point = self.calculate_qparams()
            self.scale.data, self.zero_point.data = scale.data, zero_point.data
        if self.fake_quant_enabled.data[0]:
            if self.is_per_channel:
                X = fake_quantize_per_channel_affine(X, self.scale, self.zero_point, self.ch_axis,
                                                     self.quant_min, self.quant_max)
            else:
                X = fake_quantize_per_tensor_affine(X, self.scale, self.zero_point, self.quant_min, self.quant_max)
        return X

    def extra_repr(self):
        return (f"fake_quant_enabled={int(self.fake_quant_enabled.data[0])}, "
                f"observer_enabled={int(self.observer_enabled.data[0])}, quant_min={self.quant_min}, "
                f"quant_max={self.quant_max}, dtype={self.dtype}, qscheme={self.qscheme}, "
                f"scale={self.scale.data}, zero_point={self.zero_point.data}")


def disable_fake_quant(module):
    """For ``model.apply(disable_fake_quant)``: turn fake quantization off where there is some."""
    if isinstance(module, FakeQuantize):
        module.disable_fake_quant()


def enable_fake_quant(module):
    if isinstance(module, FakeQuantize):
        module.enable_fake_quant()


def disable_observer(module):
    """For ``model.apply(disable_observer)``: freeze every scale and zero point (late in QAT)."""
    if isinstance(module, FakeQuantize):
        module.disable_observer()


def enable_observer(module):
    if isinstance(module, FakeQuantize):
        module.enable_observer()


default_fake_quant = FakeQuantize.with_args(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255,
                                            dtype="quint8", qscheme="per_tensor_affine", reduce_range=True)
"""PyTorch's default for activations: quint8 over 0..127 (reduce_range), moving-average min/max."""
default_weight_fake_quant = FakeQuantize.with_args(observer=MovingAverageMinMaxObserver, quant_min=-128,
                                                   quant_max=127, dtype="qint8", qscheme="per_tensor_symmetric")
"""PyTorch's default for weights: qint8, symmetric, per tensor."""
default_per_channel_weight_fake_quant = FakeQuantize.with_args(
    observer=MovingAveragePerChannelMinMaxObserver, quant_min=-128, quant_max=127, dtype="qint8",
    qscheme="per_channel_symmetric", ch_axis=0)
"""qint8, symmetric, one scale per output channel."""
