"""Exact model sizes in bytes, for each storage format the course compares.

Extends ``metrics.model_size`` (same conventions: raw arrays without file overhead; ``"csr"``
stores every matrix as its nonzero values plus an int32 column index per value and rows + 1
int32 row pointers, as ``sparse.CSRMatrix`` does) to compressed weights:

- a float parameter: 4 bytes per value (a pruned one counts as ``orig * mask``);
- a quantized weight (``quant.nn.Linear``, ``Conv2d``, ``DynamicLinear``): its codes packed at b bits
  each, b = the bits the layer's code range [quant_min, quant_max] needs (8 for int8), plus one
  float32 scale and a 1-byte zero point per tensor or per output channel; the bias stays float32
  (as in PyTorch); a static layer and a ``Quantize`` stub also keep one output scale and zero point.
  Pruned + int8 is ``format="csr"``: 1-byte values and int32 indices;
- a k-means shared weight: b-bit cluster indices plus the codebook of 2^b float32 centroids
  (Han et al., 2016, Sec. 3: n*b + 2^b*32 bits instead of n*32). A layer clustered after pruning
  (``sparse=True``) stores its indices in CSR whatever the format.

Observers, fake quantizers and pruning masks are training-time state and are not counted.
"""
import math

import numpy as np

from ..metrics import parameters
from ..sparse import SparseLinear, csr_bytes
from .kmeans import KMeansQuantization
from .modules import PackedLayer, StaticLayer
from .stubs import Quantize

FORMATS = ("dense", "csr")
FLOAT_BITS = 32
SCALE_BYTES, ZERO_POINT_BYTES = 4, 1


def packed_bytes(count, bits):
    """Bytes for ``count`` values of ``bits`` bits each, packed without gaps."""
    return -(-int(count) * int(bits) // 8)


def code_bits(quant_min, quant_max):
    """Bits per code for the integer range [quant_min, quant_max] (8 for qint8's -128..127)."""
    return max(1, math.ceil(math.log2(quant_max - quant_min + 1)))


def array_bytes(nonzero, value_bits, format):
    """Dense bytes, or CSR bytes for a matrix in the ``"csr"`` format (vectors stay dense)."""
    if format == "csr" and nonzero.ndim >= 2:
        return csr_bytes(nonzero, value_bits)
    return packed_bytes(nonzero.size, value_bits)


def _module_items(module, format):
    """(what, bytes) for the compressed arrays ``module`` itself (not its children) stores."""
    if isinstance(module, PackedLayer):
        qweight = module.weight()
        codes = qweight.int_repr().data
        if qweight.qscheme() == "per_tensor_affine":
            zero_point, n_params = qweight.q_zero_point(), 1
        else:
            zero_points = qweight.q_per_channel_zero_points().data
            zero_point, n_params = zero_points.reshape((-1,) + (1,) * (codes.ndim - 1)), zero_points.size
        yield "weight", array_bytes(codes != zero_point, code_bits(*module.weight_quant_range), format)
        yield "weight qparams", n_params * (SCALE_BYTES + ZERO_POINT_BYTES)
        if module.bias() is not None:
            yield "bias", packed_bytes(module.bias().size, FLOAT_BITS)
        if isinstance(module, StaticLayer):
            yield "output qparams", SCALE_BYTES + ZERO_POINT_BYTES
    elif isinstance(module, Quantize):
        yield "qparams", SCALE_BYTES + ZERO_POINT_BYTES
    elif isinstance(module, SparseLinear):
        yield "weight", csr_bytes(module.weight_csr.to_dense() != 0, FLOAT_BITS)
        if module.bias is not None:
            yield "bias", packed_bytes(module.out_features, FLOAT_BITS)
    for _, method in module.forward_pre_hooks():
        if isinstance(method, KMeansQuantization):
            if method.sparse:
                stored = getattr(module, method.name + "_mask").data != 0
                yield f"{method.name} indices", csr_bytes(stored, method.bits)
            else:
                indices = getattr(module, method.name + "_indices").data
                yield f"{method.name} indices", array_bytes(np.ones(indices.shape, bool), method.bits, format)


def size_breakdown(model, format="dense"):
    """[(name, bytes)] for every stored array of ``model``: float parameters (the codebooks of
    k-means layers among them), then the quantized and shared weights."""
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; expected one of {FORMATS}")
    items = [(name, array_bytes(value != 0, FLOAT_BITS, format)) for name, value in parameters(model).items()]
    items += [(f"{prefix}.{what}" if prefix else what, nbytes)
              for prefix, module in model.named_modules()
              for what, nbytes in _module_items(module, format)]
    return items


def model_size_bytes(model, format="dense"):
    """Total bytes to store ``model`` in the formats above."""
    return sum(nbytes for _, nbytes in size_breakdown(model, format))
