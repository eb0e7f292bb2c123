"""Layers for quantization-aware training: float layers whose weight is fake-quantized on every call.

As ``torch.ao.nn.qat``. ``prepare_qat`` swaps each ``nn.Linear`` for ``qat.Linear`` sharing its
parameters; training then sees the rounding error of the integer model (and learns around it,
through the straight-through estimator), and ``convert`` turns the layer into ``quant.nn.Linear``.
"""
from .. import functional as F
from .. import nn
from ..nn import Module


class Linear(nn.Linear):
    """``y = x fq(W)^T + b`` with ``fq = qconfig.weight()`` (a ``FakeQuantize``)."""

    def __init__(self, in_features, out_features, bias=True, qconfig=None):
        super().__init__(in_features, out_features, bias)
        self._attach(qconfig)

    def _attach(self, qconfig):
        if qconfig is None or qconfig.weight is None:
            raise ValueError("a QAT layer needs a qconfig with a weight fake quantizer")
        self.qconfig = qconfig
        self.weight_fake_quant = qconfig.weight()

    @classmethod
    def from_float(cls, mod):
        """A QAT Linear sharing ``mod``'s weight and bias Parameters (no new random draws)."""
        qat = cls.__new__(cls)
        Module.__init__(qat)
        qat.in_features, qat.out_features = mod.in_features, mod.out_features
        qat.weight = mod.weight
        if mod.bias is None:
            qat.register_parameter("bias", None)
        else:
            qat.bias = mod.bias
        qat._attach(getattr(mod, "qconfig", None))
        return qat

    def forward(self, x):
        return F.linear(x, self.weight_fake_quant(self.weight), self.bias)
