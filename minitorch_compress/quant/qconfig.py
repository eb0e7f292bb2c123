"""``QConfig``: which observers (or fake quantizers) a layer's activations and weights get.

As ``torch.ao.quantization.QConfig``: a pair of *constructors* (classes, or ``with_args``
partials), because ``prepare`` makes a fresh observer for every layer. Set ``model.qconfig``
(or a submodule's) before ``prepare``/``prepare_qat``/``convert``; children inherit it.

``qconfig_for_bits`` goes beyond PyTorch: the same recipes at b bits, through a custom
integer range [quant_min, quant_max] (how PyTorch itself simulates fewer than 8 bits).
"""
from collections import namedtuple

from ..nn import Module
from ..validation import check_int
from .fake_quant import (FakeQuantize, default_fake_quant, default_per_channel_weight_fake_quant,
                         default_weight_fake_quant)
from .observers import (HistogramObserver, MinMaxObserver, MovingAverageMinMaxObserver,
                        MovingAveragePerChannelMinMaxObserver, PerChannelMinMaxObserver, default_observer,
                        default_per_channel_weight_observer, default_weight_observer)


class QConfig(namedtuple("QConfig", ["activation", "weight"])):
    """Constructors for the activation observer and the weight observer of a layer."""

    def __new__(cls, activation, weight):
        if isinstance(activation, Module) or isinstance(weight, Module):
            raise ValueError("QConfig takes observer classes or Observer.with_args(...), not observer instances "
                             "(prepare makes a new observer for every layer)")
        return super().__new__(cls, activation, weight)


default_qconfig = QConfig(activation=default_observer, weight=default_weight_observer)
"""PTQ: min/max activations (quint8, 0..127) and symmetric per-tensor qint8 weights."""
default_per_channel_qconfig = QConfig(activation=default_observer, weight=default_per_channel_weight_observer)
default_dynamic_qconfig = QConfig(activation=None, weight=default_weight_observer)
"""Dynamic quantization: weights only; activation parameters are chosen per batch at run time."""
default_qat_qconfig = QConfig(activation=default_fake_quant, weight=default_weight_fake_quant)
"""QAT: moving-average min/max fake quantization of activations (0..127) and weights."""


def get_default_qconfig(backend="x86"):
    """PyTorch's PTQ recipe for a backend: histogram activations and per-channel weights on x86/fbgemm."""
    if backend in ("x86", "fbgemm"):
        return QConfig(activation=HistogramObserver.with_args(reduce_range=True),
                       weight=default_per_channel_weight_observer)
    if backend == "qnnpack":
        return QConfig(activation=HistogramObserver.with_args(reduce_range=False), weight=default_weight_observer)
    raise ValueError(f"unknown backend {backend!r}; expected 'x86', 'fbgemm' or 'qnnpack'")


def get_default_qat_qconfig(backend="x86"):
    """PyTorch's QAT recipe for a backend (its version 0: observer and fake quant as separate steps)."""
    if backend in ("x86", "fbgemm"):
        return QConfig(activation=default_fake_quant, weight=default_per_channel_weight_fake_quant)
    if backend == "qnnpack":
        return QConfig(activation=default_fake_quant.with_args(reduce_range=False), weight=default_weight_fake_quant)
    raise ValueError(f"unknown backend {backend!r}; expected 'x86', 'fbgemm' or 'qnnpack'")


def qconfig_for_bits(weight_bits=8, activation_bits=8, per_channel=False, qat=False):
    """A QConfig with ``weight_bits``-bit symmetric weights and ``activation_bits``-bit activations.

    Weights use qint8 over [-2^(b-1), 2^(b-1) - 1], per tensor or per output channel; activations
    quint8 over [0, 2^a - 1] with min/max observers (PTQ) or moving-average fake quantizers (QAT).
    The observers have ``clamp_to_quant_range``, so the converted model keeps b-bit codes (PyTorch's
    custom ranges only choose the scale and clamp to the dtype's range). At 8/8 bits and per tensor
    this is PyTorch's recipe without ``reduce_range``.
    """
    weight_bits = check_int("weight_bits", weight_bits, 2, 8)
    activation_bits = check_int("activation_bits", activation_bits, 2, 8)
    w_range = dict(quant_min=-2 ** (weight_bits - 1), quant_max=2 ** (weight_bits - 1) - 1, dtype="qint8",
                   clamp_to_quant_range=True)
    a_range = dict(quant_min=0, quant_max=2 ** activation_bits - 1, dtype="quint8", clamp_to_quant_range=True)
    if per_channel:
        w_kind = dict(qscheme="per_channel_symmetric", ch_axis=0)
        w_observer = MovingAveragePerChannelMinMaxObserver if qat else PerChannelMinMaxObserver
    else:
        w_kind = dict(qscheme="per_tensor_symmetric")
        w_observer = MovingAverageMinMaxObserver if qat else MinMaxObserver
    if qat:
        return QConfig(activation=FakeQuantize.with_args(observer=MovingAverageMinMaxObserver, **a_range),
                       weight=FakeQuantize.with_args(observer=w_observer, **w_range, **w_kind))
    return QConfig(activation=MinMaxObserver.with_args(**a_range), weight=w_observer.with_args(**w_range, **w_kind))
