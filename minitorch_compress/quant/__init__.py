"""Quantization, as ``torch.ao.quantization``: integers instead of floats, 4x smaller and faster.

- ``qtensor``: ``quantize_per_tensor``/``quantize_per_channel`` -> ``QTensor`` (the arithmetic).
- ``observers``: ``MinMaxObserver``, ``MovingAverageMinMaxObserver``, ``PerChannelMinMaxObserver``,
  ``HistogramObserver`` choose scale and zero point from the values they see.
- ``fake_quant``: ``fake_quantize_per_tensor_affine`` and ``FakeQuantize`` (straight-through estimator).
- ``fusion``, ``intrinsic``: ``fuse_modules`` turns a Linear (Conv2d) and the ReLU after it into one
  ``intrinsic.LinearReLU`` (``ConvReLU2d``), so that the output is observed after the ReLU; a
  BatchNorm is folded in eval mode, or kept for QAT by ``fuse_modules_qat`` (``qat.ConvBn2d``).
- ``qconfig``, ``stubs``, ``qat``, ``modules``, ``convert``: the workflow ``prepare`` -> calibrate ->
  ``convert``, ``prepare_qat`` -> train -> ``convert``, and ``quantize_dynamic``. Converted layers
  (``quant.nn.Linear``, ``quant.nn.Conv2d``, ``quant.nn.DynamicLinear``) run on the int8 kernel;
  ``{nn.Linear, nn.MultiheadAttention}`` in ``quantize_dynamic``'s spec also makes attention's four
  projections int8 (``quant.nn.DynamicMultiheadAttention``, an extension of PyTorch).

Beyond PyTorch: ``kmeans`` (Deep Compression's weight sharing), ``size`` (exact bytes of float,
b-bit, k-means and CSR storage), ``sweep`` (accuracy against size over bit widths) and ``binary``
(one-bit weights and activations: ``BinaryLinear``, ``BinaryActivation``) and ``smooth``
(SmoothQuant: activation outliers migrated into the weights before int8).
"""
from . import binary, intrinsic, kmeans, modules, qat, size, smooth, sweep
from . import modules as nn
from .convert import (DEFAULT_DYNAMIC_QUANT_MODULE_MAPPINGS, DEFAULT_QAT_MODULE_MAPPINGS,
                      DEFAULT_STATIC_QUANT_MODULE_MAPPINGS, convert, prepare, prepare_qat, propagate_qconfig_,
                      quantize, quantize_dynamic, quantize_qat)
from .fusion import fuse_conv_bn_eval, fuse_conv_bn_weights, fuse_known_modules, fuse_modules, fuse_modules_qat
from .fake_quant import (FakeQuantize, default_fake_quant, default_per_channel_weight_fake_quant,
                         default_weight_fake_quant, disable_fake_quant, disable_observer, enable_fake_quant,
                         enable_observer, fake_quantize_per_channel_affine, fake_quantize_per_tensor_affine)
from .observers import (HistogramObserver, MinMaxObserver, MovingAverageMinMaxObserver,
                        MovingAveragePerChannelMinMaxObserver, ObserverBase, PerChannelMinMaxObserver,
                        default_histogram_observer, default_observer, default_per_channel_weight_observer,
                        default_weight_observer)
from .qconfig import (QConfig, default_dynamic_qconfig, default_per_channel_qconfig, default_qat_qconfig,
                      default_qconfig, get_default_qat_qconfig, get_default_qconfig, qconfig_for_bits)
from .qtensor import QTensor, dtype_range, quantize_per_channel, quantize_per_tensor
from .kmeans import kmeans_quantize
from .size import model_size_bytes, size_breakdown
from .smooth import get_act_scales, smooth_ln_fcs, smooth_model, smoothing_scales
from .stubs import DeQuantize, DeQuantStub, Quantize, QuantStub
from .sweep import bitwidth_sweep

qint8, quint8 = "qint8", "quint8"
