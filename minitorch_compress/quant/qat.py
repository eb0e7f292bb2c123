"""Layers for quantization-aware training: float layers whose weight is fake-quantized on every call.

As ``torch.ao.nn.qat``. ``prepare_qat`` swaps each ``nn.Linear`` (``nn.Conv2d``) for ``qat.Linear``
(``qat.Conv2d``) sharing its parameters; training then sees the rounding error of the integer model
(and learns around it, through the straight-through estimator), and ``convert`` turns the layer
into ``quant.nn.Linear`` (``quant.nn.Conv2d``).

``ConvBn2d`` (``ConvBnReLU2d``), from ``fuse_modules_qat``, trains a convolution and its BatchNorm
as PyTorch's ``torch.ao.nn.intrinsic.qat.ConvBn2d`` does. At convert the BatchNorm is folded,
W' = s W with s = gamma / sqrt(running_var + eps), so the weight to fake-quantize is s W, not W.
With the running statistics' s (batch statistics change every step), the forward is::

    y = bn( conv(x, fq(s W)) / s + b )

In exact arithmetic and without the fake quantizer, conv(x, s W) / s = conv(x, W): the BatchNorm
sees what it would see unfused and trains as usual (batch statistics, running estimates). In eval
mode bn uses the running statistics, and y = conv(x, fq(s W)) + s (b - mean) + beta: exactly the
folded convolution ``convert`` quantizes. ``freeze_bn_stats`` stops updating the running
statistics (and uses them), the usual last epochs of QAT.
"""
from .. import functional as F
from .. import nn
from ..nn import Module
from .fusion import fuse_conv_bn_weights
from .intrinsic import ConvBn2d as FloatConvBn2d, ConvBnReLU2d as FloatConvBnReLU2d, ConvReLU2d


class _QATLayer:
    """Shared by the QAT layers: the weight fake quantizer, and conversion from a float layer."""

    def _attach(self, qconfig):
        if qconfig is None or qconfig.weight is None:
            raise ValueError("a QAT layer needs a qconfig with a weight fake quantizer")
        self.qconfig = qconfig
        self.weight_fake_quant = qconfig.weight()

    @classmethod
    def from_float(cls, mod):
        """A QAT layer sharing ``mod``'s attributes and its weight and bias Parameters (no new random draws)."""
        qat = cls.__new__(cls)
        Module.__init__(qat)
        for name, value in vars(mod).items():
            if not name.startswith("_") and name not in ("training", "qconfig"):
                object.__setattr__(qat, name, value)
        qat.weight = mod.weight
        if mod.bias is None:
            qat.register_parameter("bias", None)
        else:
            qat.bias = mod.bias
        qat._attach(getattr(mod, "qconfig", None))
        return qat


class Linear(_QATLayer, nn.Linear):
    """``y = x fq(W)^T + b`` with ``fq = qconfig.weight()`` (a ``FakeQuantize``)."""

    def __init__(self, in_features, out_features, bias=True, qconfig=None):
        super().__init__(in_features, out_features, bias)
        self._attach(qconfig)

    def forward(self, x):
        return F.linear(x, self.weight_fake_quant(self.weight), self.bias)


class Conv2d(_QATLayer, nn.Conv2d):
    """``conv2d(x, fq(W)) + b`` with ``fq = qconfig.weight()``."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 qconfig=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        self._attach(qconfig)

    def forward(self, x):
        return F.conv2d(x, self.weight_fake_quant(self.weight), self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


class ConvBn2d(Conv2d):
    """A Conv2d and its BatchNorm2d ``bn``, trained with the weight fake-quantized as it will be once
    the BatchNorm is folded (module docstring). ``bias=None`` (the default) means no bias, as PyTorch."""

    _FLOAT_MODULE = FloatConvBn2d

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=None,
                 eps=1e-5, momentum=0.1, qconfig=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias is not None and bias is not False, qconfig)
        self.bn = nn.BatchNorm2d(out_channels, eps, momentum)

    @classmethod
    def from_float(cls, mod):
        """From ``intrinsic.ConvBn2d`` (``ConvBnReLU2d``): shares the convolution's Parameters and the BatchNorm."""
        if type(mod) is not cls._FLOAT_MODULE:
            raise TypeError(f"{cls.__name__}.from_float expects a {cls._FLOAT_MODULE.__name__}, got {type(mod).__name__}")
        conv, bn = mod[0], mod[1]
        conv.qconfig = getattr(mod, "qconfig", None)
        qat = super().from_float(conv)
        qat.bn = bn
        qat.training = mod.training
        return qat

    def forward(self, x):
        std = (self.bn.running_var + self.bn.eps).sqrt()
        scale = self.bn.weight / std
        weight = self.weight_fake_quant(self.weight * scale.reshape(-1, 1, 1, 1))
        y = F.conv2d(x, weight, None, self.stride, self.padding, self.dilation, self.groups) / scale.reshape(1, -1, 1, 1)
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1, 1, 1)
        return self.bn(y)

    def to_float(self):
        """The float convolution with the BatchNorm folded in (``fuse_conv_bn_weights``; no new random draws)."""
        conv = nn.Conv2d.__new__(nn.Conv2d)
        Module.__init__(conv)
        for name, value in vars(self).items():
            if not name.startswith("_") and name not in ("training", "qconfig"):
                object.__setattr__(conv, name, value)
        conv.weight, conv.bias = fuse_conv_bn_weights(self.weight, self.bias, self.bn.running_mean,
                                                      self.bn.running_var, self.bn.eps, self.bn.weight, self.bn.bias)
        return conv.train(self.training)


class ConvBnReLU2d(ConvBn2d):
    """``relu`` of ``ConvBn2d`` (``torch.ao.nn.intrinsic.qat.ConvBnReLU2d``)."""

    _FLOAT_MODULE = FloatConvBnReLU2d

    def forward(self, x):
        return F.relu(super().forward(x))

    def to_float(self):
        return ConvReLU2d(super().to_float(), nn.ReLU()).train(self.training)

