"""Sparse matrices (CSR) and a sparse ``Linear`` layer, running on ``kernels.csr_matmul``.

After pruning, most weights of a layer are zero. Stored as CSR (for each row, the columns and
values of its nonzeros), the product skips them: at 90% sparsity it does a tenth of the work.
``SparseLinear.from_linear(linear)`` converts a (pruned) ``nn.Linear`` for inference::

    sparse_fc = SparseLinear.from_linear(fc)      # same outputs as fc, faster when sparse
"""
import numpy as np

from .autograd import Function
from .kernels import as_array, check_csr, check_inner, check_matrix, csr_product, has_sorted_indices
from .nn import Module
from .nn.module import check_shapes
from .tensor import Tensor

INDEX_BYTES = 4   # column indices and row pointers are int32


def csr_bytes(nonzero, value_bits=32):
    """Bytes of a matrix (rows = first axis) stored as CSR, given the boolean array of its stored
    entries: the values at ``value_bits`` bits each, packed without gaps, one int32 column index per
    value and rows + 1 int32 row pointers (``metrics.model_size`` and ``quant.size`` count with it)."""
    nnz = int(np.count_nonzero(nonzero))
    return -(-nnz * int(value_bits) // 8) + nnz * INDEX_BYTES + (nonzero.shape[0] + 1) * INDEX_BYTES


class CSRMatrix:
    """A float32 matrix in compressed sparse row form: ``indptr`` (rows+1), ``indices``, ``data``.

    ``A @ dense`` takes a 2-D float32 ndarray or Tensor (a Tensor result records the gradient
    with respect to ``dense``); ``A.T`` is the transposed CSR matrix, built once and cached,
    which backward passes multiply with. ``has_sorted_indices`` says whether each row's column
    indices are in order (as ``from_dense`` and ``T`` build them), which makes products faster.
    """

    def __init__(self, indptr, indices, data, shape):
        rows, cols = (int(s) for s in shape)
        if len(indptr) != rows + 1:
            raise ValueError(f"indptr has {len(indptr)} entries; shape {shape} needs {rows + 1}")
        self.indptr, self.indices, self.data = check_csr(indptr, indices, data, cols)
        self.has_sorted_indices = has_sorted_indices(self.indptr, self.indices)
        self.shape = (rows, cols)
        self._transpose = None

    @classmethod
    def from_dense(cls, array):
        """The CSR form of a 2-D float32 array (or Tensor), keeping its nonzero entries."""
        a = check_matrix(array, "array", [np.float32])
        rows, cols = np.nonzero(a)     # row-major order, as CSR stores them
        indptr = np.zeros(a.shape[0] + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=a.shape[0]), out=indptr[1:])
        return cls(indptr, cols, a[rows, cols], a.shape)

    @property
    def nnz(self):
        return int(self.indptr[-1])

    @property
    def density(self):
        """Fraction of entries stored (1 - sparsity)."""
        return self.nnz / max(self.shape[0] * self.shape[1], 1)

    def to_dense(self):
        out = np.zeros(self.shape, np.float32)
        out[np.repeat(np.arange(self.shape[0]), np.diff(self.indptr)), self.indices] = self.data
        return out

    @property
    def T(self):
        if self._transpose is None:
            rows = np.repeat(np.arange(self.shape[0], dtype=np.int32), np.diff(self.indptr))
            order = np.argsort(self.indices, kind="stable")   # by column, then row
            indptr = np.zeros(self.shape[1] + 1, np.int64)
            np.cumsum(np.bincount(self.indices, minlength=self.shape[1]), out=indptr[1:])
            self._transpose = CSRMatrix(indptr, rows[order], self.data[order], self.shape[::-1])
            self._transpose._transpose = self
        return self._transpose

    def __matmul__(self, other):
        if isinstance(other, Tensor):
            return _CSRMatmul.apply(other, self)
        return self._product(as_array(other, "other"))

    def _product(self, dense):
        """self @ dense on the kernel; the CSR arrays were checked when this matrix was built."""
        dense = check_matrix(dense, "dense", [np.float32])
        check_inner(self.shape, dense.shape, what="A @ dense")
        return csr_product(self.indptr, self.indices, self.data, dense, self.has_sorted_indices)

    def __repr__(self):
        return f"CSRMatrix(shape={self.shape}, nnz={self.nnz})"


class _CSRMatmul(Function):
    """``A @ X`` for a fixed sparse A: the gradient with respect to X is ``A.T @ grad``."""

    @staticmethod
    def forward(ctx, x, a):
        ctx.a = a
        return a._product(x)

    @staticmethod
    def backward(ctx, grad):
        return ctx.a.T @ np.ascontiguousarray(grad, np.float32), None


_CSR_ARRAYS = ("indptr", "indices", "data")


class SparseLinear(Module):
    """``y = x @ W.T + b`` with W stored as a ``CSRMatrix``; weights are fixed (inference).

    Gradients flow to the input (through ``W.T``) so a sparse layer can sit inside a network
    that is fine-tuned around it, but W and b themselves are not parameters (b is a buffer). The
    state dict holds W as its CSR arrays ``weight_indptr``, ``weight_indices``, ``weight_data``, then ``bias``.
    """

    def __init__(self, weight, bias=None):
        super().__init__()
        if not isinstance(weight, CSRMatrix):
            raise TypeError(f"weight must be a CSRMatrix, got {type(weight).__name__}")
        self.out_features, self.in_features = weight.shape
        self.weight_csr = weight
        if bias is not None:
            bias = np.asarray(as_array(bias, "bias"), np.float32)
            if bias.shape != (self.out_features,):
                raise ValueError(f"bias shape {bias.shape} does not match out_features={self.out_features}")
        self.register_buffer("bias", None if bias is None else Tensor(bias))

    @classmethod
    def from_linear(cls, linear):
        """A SparseLinear computing what ``linear`` computes now (pruning mask applied)."""
        weight = np.asarray(as_array(linear.weight, "linear.weight"), np.float32)
        bias = None if linear.bias is None else as_array(linear.bias, "linear.bias")
        return cls(CSRMatrix.from_dense(weight), bias)

    def _save_to_state_dict(self, destination, prefix):
        for name in _CSR_ARRAYS:
            destination[f"{prefix}weight_{name}"] = Tensor(getattr(self.weight_csr, name))
        super()._save_to_state_dict(destination, prefix)

    def _load_from_state_dict(self, state, prefix):
        """A new CSR weight from the saved arrays: only ``weight_indptr``'s shape is fixed by the layer,
        the checkpoint may have another number of nonzeros."""
        load_bias = super()._load_from_state_dict(state, prefix)
        keys = {name: f"{prefix}weight_{name}" for name in _CSR_ARRAYS}
        check_shapes({keys["indptr"]: self.weight_csr.indptr}, state)
        arrays = [np.array(state.get(keys[name], getattr(self.weight_csr, name))) for name in _CSR_ARRAYS]
        try:
            weight = CSRMatrix(*arrays, self.weight_csr.shape)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{', '.join(keys.values())}: {error}") from error

        def load():
            load_bias()
            self.weight_csr = weight
        return load

    def forward(self, x):
        if not isinstance(x, Tensor):
            raise TypeError(f"SparseLinear expects a Tensor, got {type(x).__name__}")
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"input shape {x.shape} does not match in_features={self.in_features}")
        y = (self.weight_csr @ x.T).T     # (W @ x.T).T: the kernel's inner loop runs over the batch
        return y if self.bias is None else y + self.bias

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"nnz={self.weight_csr.nnz}, density={self.weight_csr.density:.3f}")
