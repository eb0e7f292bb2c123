"""Exact model sizes in bytes, for each storage format the course compares.

Formats (raw arrays, no file-format overhead):

- a float parameter: 4 bytes per value (float32);
- a quantized weight (``quant.nn.Linear``, ``quant.nn.DynamicLinear``): its codes packed at b bits
  each, b = the bits the layer's code range [quant_min, quant_max] needs (8 for int8), plus one
  float32 scale and a 1-byte zero point per tensor or per output channel; the bias stays float32
  (as in PyTorch); a static layer and a ``Quantize`` stub also keep one output scale and zero point;
- a k-means shared weight: b-bit cluster indices plus the codebook of 2^b float32 centroids
  (Han et al., 2016, Sec. 3: n*b + 2^b*32 bits instead of n*32);
- with ``sparse=True``, each weight matrix is stored in CSR when that is smaller than dense: the
  nonzero values (at their bit width), a column index per nonzero and rows+1 row pointers, each
  index in the smallest of 1, 2, 4 or 8 bytes that holds it. Pruning + int8 is this with 8-bit
  values. A k-means layer clustered with ``sparse=True`` (pruned first) is always stored in CSR.

Observers, fake quantizers and pruning masks are training-time state and are not counted.
"""
import math

import numpy as np

from ..sparse import SparseLinear
from .kmeans import KMeansQuantization
from .modules import Linear as QuantizedLinear, _PackedLinear
from .stubs import Quantize

FLOAT_BITS = 32
SCALE_BYTES, ZERO_POINT_BYTES = 4, 1


def packed_bytes(count, bits):
    """Bytes for ``count`` values of ``bits`` bits each, packed without gaps."""
    return -(-int(count) * int(bits) // 8)


def index_bytes(largest):
    """The smallest integer width (1, 2, 4 or 8 bytes) that holds 0..largest."""
    for width in (1, 2, 4, 8):
        if largest < 256 ** width:
            return width
    raise ValueError(f"index {largest} does not fit in 8 bytes")


def code_bits(quant_min, quant_max):
    """Bits per code for the integer range [quant_min, quant_max] (8 for qint8's -128..127)."""
    return max(1, math.ceil(math.log2(quant_max - quant_min + 1)))


def csr_bytes(nonzero, value_bits):
    """Bytes of a matrix in CSR, given the boolean matrix of its stored entries."""
    rows, cols = nonzero.shape
    nnz = int(np.count_nonzero(nonzero))
    return packed_bytes(nnz, value_bits) + nnz * index_bytes(max(cols - 1, 0)) + (rows + 1) * index_bytes(nnz)


def matrix_bytes(nonzero, value_bits, sparse):
    """Dense bytes, or CSR bytes when ``sparse`` and the matrix is 2-D and CSR is smaller."""
    dense = packed_bytes(nonzero.size, value_bits)
    return min(dense, csr_bytes(nonzero, value_bits)) if sparse and nonzero.ndim == 2 else dense


def _kmeans_methods(module):
    return [h for h in module._forward_pre_hooks.values() if isinstance(h, KMeansQuantization)]


def _module_items(module, sparse):
    """(what, bytes) for everything ``module`` itself (not its children) stores."""
    if isinstance(module, _PackedLinear):
        qweight = module.weight()
        codes = qweight.int_repr().data
        if qweight.qscheme() == "per_tensor_affine":
            zero_point, n_params = qweight.q_zero_point(), 1
        else:
            zero_point, n_params = qweight.q_per_channel_zero_points().data[:, None], codes.shape[0]
        yield "weight", matrix_bytes(codes != zero_point, code_bits(*module.weight_quant_range), sparse)
        yield "weight qparams", n_params * (SCALE_BYTES + ZERO_POINT_BYTES)
        if module.bias() is not None:
            yield "bias", packed_bytes(module.out_features, FLOAT_BITS)
        if isinstance(module, QuantizedLinear):
            yield "output qparams", SCALE_BYTES + ZERO_POINT_BYTES
        return
    if isinstance(module, Quantize):
        yield "qparams", SCALE_BYTES + ZERO_POINT_BYTES
        return
    if isinstance(module, SparseLinear):
        yield "weight", csr_bytes(module.weight_csr.to_dense() != 0, FLOAT_BITS)
        if module.bias is not None:
            yield "bias", packed_bytes(module.out_features, FLOAT_BITS)
        return
    for method in _kmeans_methods(module):
        indices = getattr(module, method.name + "_indices").data
        if method.sparse:
            yield f"{method.name} indices", csr_bytes(getattr(module, method.name + "_mask").data != 0, method.bits)
        else:
            yield f"{method.name} indices", packed_bytes(indices.size, method.bits)
    for name, param in module._parameters.items():
        if param is None:
            continue
        stored = param.data != 0
        mask = module._buffers.get(name[:-len("_orig")] + "_mask") if name.endswith("_orig") else None
        if mask is not None:  # pruned (torch.nn.utils.prune naming): what is stored is orig * mask
            stored = stored & (mask.data != 0)
        yield name, matrix_bytes(stored, FLOAT_BITS, sparse)


def size_breakdown(model, sparse=False):
    """[(qualified name, bytes)] for every stored array of ``model``, in module order."""
    return [(f"{prefix}.{what}" if prefix else what, nbytes)
            for prefix, module in model.named_modules()
            for what, nbytes in _module_items(module, sparse)]


def model_size_bytes(model, sparse=False):
    """Total bytes to store ``model`` in the formats above."""
    return sum(nbytes for _, nbytes in size_breakdown(model, sparse))
