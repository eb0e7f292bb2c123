"""Sparse (CSR) x dense float32 product, parallel over the sparse matrix's rows.

For row r, ``out[r, :] = sum_p data[p] * dense[indices[p], :]`` over its nonzeros p: every
update reads and writes whole contiguous rows, which vectorises, and rows are independent, so
threads need no synchronisation. Nonzeros are taken eight at a time so that each pass over
``out[r]`` does eight (fused) multiply-adds per load and store, with the dense rows indexed in
place. Against four unfused ones through a row view per nonzero that gained only 3-8% at 90%
sparsity and batch 256: the product is bound by reading a 1 KiB dense row per nonzero, not by
arithmetic. Blocking the columns so that a slice of ``dense`` stays in L2 was slower (it shortens
the inner loop), and so was taking sixteen nonzeros at a time.

For a layer ``y = x @ W.T`` with a sparse W (out, in), call it as ``(W @ x.T).T``: ``dense`` is
then ``x.T`` (in, batch), whose rows are contiguous once copied. That copy is a transpose; NumPy's
strided copy of a 256 x 1024 ``x.T`` took about as long as the product itself at 95% sparsity, so
``_blocked_copy`` does it in cache-sized blocks, in parallel. (A ``(W @ x.T).T`` result is itself
column-major, so a following sparse layer gets a contiguous ``x.T`` and copies nothing.)
"""
import numpy as np
from numba import njit, prange

from . import threads
from .validate import as_array, check_matrix


@njit(cache=True, parallel=True, fastmath={"contract"})
def _csr_vector(indptr, indices, data, x, out):
    """The one-column case (a batch of one): scalars instead of row loops of length one, which
    made it 2-3x slower; the same grouping by eight, so the sums round exactly as in ``_csr_rows``."""
    for r in prange(out.size):
        acc = np.float32(0)
        p, end = indptr[r], indptr[r + 1]
        while p + 8 <= end:
            acc += ((data[p] * x[indices[p]] + data[p + 1] * x[indices[p + 1]] + data[p + 2] * x[indices[p + 2]]
                     + data[p + 3] * x[indices[p + 3]])
                    + (data[p + 4] * x[indices[p + 4]] + data[p + 5] * x[indices[p + 5]]
                       + data[p + 6] * x[indices[p + 6]] + data[p + 7] * x[indices[p + 7]]))
            p += 8
        while p < end:
            acc += data[p] * x[indices[p]]
            p += 1
        out[r] = acc


@njit(cache=True, parallel=True, fastmath={"contract"})
def _csr_rows(indptr, indices, data, dense, out):
    """out[r] = sum over p in indptr[r]:indptr[r+1] of data[p] * dense[indices[p]]."""
    if dense.shape[1] == 1:
        _csr_vector(indptr, indices, data, dense[:, 0], out[:, 0])
        return
    for r in prange(out.shape[0]):
        row = out[r]
        row[:] = 0
        p, end = indptr[r], indptr[r + 1]
        while p + 8 <= end:
            v0, v1, v2, v3 = data[p], data[p + 1], data[p + 2], data[p + 3]
            v4, v5, v6, v7 = data[p + 4], data[p + 5], data[p + 6], data[p + 7]
            i0, i1, i2, i3 = indices[p], indices[p + 1], indices[p + 2], indices[p + 3]
            i4, i5, i6, i7 = indices[p + 4], indices[p + 5], indices[p + 6], indices[p + 7]
            for j in range(row.size):
                row[j] += ((v0 * dense[i0, j] + v1 * dense[i1, j] + v2 * dense[i2, j] + v3 * dense[i3, j])
                             + (v4 * dense[i4, j] + v5 * dense[i5, j] + v6 * dense[i6, j] + v7 * dense[i7, j]))
            p += 8
        while p < end:
            v, i0 = data[p], indices[p]
            for j in range(row.size):
                row[j] += v * dense[i0, j]
            p += 1


NS_PER_UPDATE = 0.07   # one thread, per nonzero and dense column
NS_PER_COPY = 0.15     # one thread, per element of the blocked copy
BLOCK = 32      # a 32 x 32 float32 block is 4 KiB: source and destination stay in L1


@njit(cache=True, parallel=True)
def _blocked_copy(src, dst):
    """dst[:] = src for a C-contiguous dst and any strided src (e.g. a transpose), block by block.

    The inner loop runs along src's smaller stride, so each source cache line is read once, whole;
    the block's destination lines are reused and stay in L1 (with power-of-two row strides, the
    other order evicts them: 4 KiB apart, they all map to the same cache set).
    """
    m, n = src.shape
    nb = (n + BLOCK - 1) // BLOCK
    column_major = src.strides[0] <= src.strides[1]
    for t in prange(((m + BLOCK - 1) // BLOCK) * nb):
        i0, j0 = t // nb * BLOCK, t % nb * BLOCK
        i1, j1 = min(i0 + BLOCK, m), min(j0 + BLOCK, n)
        if column_major:
            for j in range(j0, j1):
                for i in range(i0, i1):
                    dst[i, j] = src[i, j]
        else:
            for i in range(i0, i1):
                for j in range(j0, j1):
                    dst[i, j] = src[i, j]


def check_csr(indptr, indices, data, n_cols):
    """Validate CSR arrays for a matrix with ``n_cols`` columns; returns them as (int32, int32, float32)."""
    indptr, indices, data = as_array(indptr, "indptr"), as_array(indices, "indices"), as_array(data, "data")
    for name, arr in (("indptr", indptr), ("indices", indices)):
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise TypeError(f"{name} must be a 1-D integer array, got dtype {arr.dtype} and shape {arr.shape}")
    if data.ndim != 1 or data.dtype != np.float32:
        raise TypeError(f"data must be a 1-D float32 array, got dtype {data.dtype} and shape {data.shape}")
    if indptr.size == 0 or indptr[0] != 0 or np.any(np.diff(indptr) < 0):
        raise ValueError("indptr must start at 0 and never decrease")
    nnz = int(indptr[-1])
    if indices.size != nnz or data.size != nnz:
        raise ValueError(f"indptr[-1]={nnz} but indices has {indices.size} and data {data.size} entries")
    if nnz and (indices.min() < 0 or indices.max() >= n_cols):
        raise ValueError(f"column indices must lie in [0, {n_cols}), got range [{indices.min()}, {indices.max()}]")
    return (np.ascontiguousarray(indptr, np.int32), np.ascontiguousarray(indices, np.int32),
            np.ascontiguousarray(data))


def csr_matmul(indptr, indices, data, dense):
    """``A @ dense`` for A given as CSR arrays (rows = len(indptr) - 1) and a 2-D float32 ``dense``.

    Returns a float32 array (rows, dense.shape[1]). ``dense`` is copied only if its rows are
    not contiguous.
    """
    dense = check_matrix(dense, "dense", [np.float32])
    return csr_product(*check_csr(indptr, indices, data, dense.shape[0]), dense)


def csr_product(indptr, indices, data, dense):
    """``csr_matmul`` for CSR arrays already checked by ``check_csr`` (``CSRMatrix`` checks once,
    when built: the checks read every index, which at batch 1 cost more than the product)."""
    if not dense.flags.c_contiguous:
        src, dense = dense, np.empty(dense.shape, np.float32)
        threads.run(_blocked_copy, dense.size * NS_PER_COPY, src, dense)
    out = np.empty((indptr.size - 1, dense.shape[1]), np.float32)
    threads.run(_csr_rows, data.size * dense.shape[1] * NS_PER_UPDATE, indptr, indices, data, dense, out)
    return out


def csr_matmul_reference(indptr, indices, data, dense):
    """Plain NumPy ``A @ dense`` (A rebuilt densely), in float64: the tests' reference."""
    a = np.zeros((len(indptr) - 1, dense.shape[0]))
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    np.add.at(a, (rows, np.asarray(indices)), np.asarray(data, np.float64))
    return a @ np.asarray(dense, np.float64)
