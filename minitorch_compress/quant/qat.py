"""Layers for quantization-aware training: float layers whose weight is fake-quantized on every call.

As ``torch.ao.nn.qat``. ``prepare_qat`` swaps each ``nn.Linear`` (``nn.Conv2d``) for ``qat.Linear``
(``qat.Conv2d``) sharing its parameters; training then sees the rounding error of the integer model
(and learns around it, through the straight-through estimator), and ``convert`` turns the layer
into ``quant.nn.Linear`` (``quant.nn.Conv2d``).
"""
from .. import functional as F
from .. import nn
from ..nn import Module


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
