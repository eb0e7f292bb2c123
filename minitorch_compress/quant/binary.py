"""Binary networks: quantization's limit, one bit per weight (and per activation).

- **Binary weights** (BinaryConnect, Courbariaux et al. 2015, with XNOR-Net's scale, Rastegari
  et al. 2016): the forward pass uses ``w_b = alpha_o * sign(w)`` with one scale per output
  channel, ``alpha_o = mean_k |w_ok|`` (the alpha minimising ||w - alpha sign(w)||^2). The float
  weights are kept for training; the straight-through estimator passes the gradient to them,
  cancelled where ``|w| > 1`` (there a small step cannot flip the sign, and the weight would grow
  without bound): ``dL/dw = dL/dw_b * 1[|w| <= 1]``, alpha treated as a constant.
- **Binary activations** (Hubara et al. 2016): ``sign(x)`` forward, ``g * 1[|x| <= 1]`` backward
  (the gradient of hard tanh).

``sign(0) = +1``, so every value is exactly +-1 (+-alpha). ``BinaryLinear`` and ``BinaryConv2d``
(alpha per output channel = per filter) store 1 bit per weight plus their float32 scales and bias:
``packed_bytes``.
"""
import numpy as np

from .. import functional as F
from ..autograd import Function
from ..nn import Conv2d, Linear, Module


def _sign(x):
    return np.where(x >= 0, 1, -1).astype(x.dtype)


class _BinarizeWeight(Function):
    @staticmethod
    def forward(ctx, w):
        ctx.save_for_backward(np.abs(w) <= 1)
        alpha = np.abs(w).reshape(len(w), -1).mean(axis=1).reshape((-1,) + (1,) * (w.ndim - 1))
        return alpha * _sign(w)

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return grad * inside


class _SignSTE(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(np.abs(x) <= 1)
        return _sign(x)

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return grad * inside


def binarize_weight(w):
    """``alpha_o * sign(w)`` per output channel (dim 0), gradient by the clipped straight-through estimator."""
    return _BinarizeWeight.apply(w)


def sign_ste(x):
    """``sign(x)`` (+-1), gradient ``g * 1[|x| <= 1]``."""
    return _SignSTE.apply(x)


class BinaryLinear(Linear):
    """A ``Linear`` whose forward pass uses ``binarize_weight(weight)``; trained like any layer."""

    def forward(self, x):
        return F.linear(x, binarize_weight(self.weight), self.bias)


class BinaryConv2d(Conv2d):
    """A ``Conv2d`` whose forward pass uses ``binarize_weight(weight)`` (one alpha per filter)."""

    def forward(self, x):
        return F.conv2d(x, binarize_weight(self.weight), self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


class BinaryActivation(Module):
    """``sign_ste`` as a layer."""

    def forward(self, x):
        return sign_ste(x)


def packed_bytes(layer):
    """Bytes to store a ``BinaryLinear`` or ``BinaryConv2d``: 1 bit per weight (rounded up to whole
    bytes per layer), plus float32 per-channel scales and bias."""
    if not isinstance(layer, (BinaryLinear, BinaryConv2d)):
        raise TypeError(f"packed_bytes takes a BinaryLinear or BinaryConv2d, got {type(layer).__name__}")
    out_channels = layer.weight.shape[0]
    bias = 0 if layer.bias is None else 4 * out_channels
    return -(-layer.weight.size // 8) + 4 * out_channels + bias
