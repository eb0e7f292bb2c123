"""Fused float modules, as ``torch.ao.nn.intrinsic``: a layer and the ReLU after it, as one module.

``fuse_modules`` puts them in a model before quantization. In float they compute exactly what the
two modules computed (a ``Sequential`` of the same two modules); what changes is what ``prepare``
observes: the output of the *pair*, after the ReLU, so the quantized layer's output scale spends
its levels on values >= 0 only. ``convert`` turns ``LinearReLU`` into ``quant.nn.LinearReLU``
(and ``ConvReLU2d`` into ``quant.nn.ConvReLU2d``), which apply the ReLU as the lower clamp of
their requantization, as FBGEMM and XNNPACK do.

``ConvBn2d`` and ``ConvBnReLU2d`` are what ``fuse_modules_qat`` makes of a Conv2d and its
BatchNorm(, ReLU) in training: the BatchNorm stays (``prepare_qat`` turns them into
``quant.qat.ConvBn2d`` / ``ConvBnReLU2d``, which train it) and is folded at ``convert``.
"""
from .. import nn


class FusedModule(nn.Sequential):
    """A Sequential that ``prepare`` treats as one layer: one output observer, after the last module."""

    _TYPES = ()

    def __init__(self, *modules):
        found = tuple(type(m) for m in modules)
        if found != self._TYPES:
            raise TypeError(f"{type(self).__name__} fuses {', '.join(t.__name__ for t in self._TYPES)}; "
                            f"got {', '.join(t.__name__ for t in found)}")
        super().__init__(*modules)


class LinearReLU(FusedModule):
    """``relu(linear(x))``: an ``nn.Linear`` then an ``nn.ReLU``, fused (``torch.ao.nn.intrinsic.LinearReLU``)."""

    _TYPES = (nn.Linear, nn.ReLU)

    def __init__(self, linear, relu):
        super().__init__(linear, relu)


class ConvReLU2d(FusedModule):
    """``relu(conv(x))``: an ``nn.Conv2d`` then an ``nn.ReLU``, fused (``torch.ao.nn.intrinsic.ConvReLU2d``)."""

    _TYPES = (nn.Conv2d, nn.ReLU)

    def __init__(self, conv, relu):
        super().__init__(conv, relu)


class ConvBn2d(FusedModule):
    """``bn(conv(x))``: an ``nn.Conv2d`` then an ``nn.BatchNorm2d``, kept apart for QAT (``torch.ao.nn.intrinsic.ConvBn2d``)."""

    _TYPES = (nn.Conv2d, nn.BatchNorm2d)

    def __init__(self, conv, bn):
        super().__init__(conv, bn)


class ConvBnReLU2d(FusedModule):
    """``relu(bn(conv(x)))``, kept apart for QAT (``torch.ao.nn.intrinsic.ConvBnReLU2d``)."""

    _TYPES = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU)

    def __init__(self, conv, bn, relu):
        super().__init__(conv, bn, relu)
