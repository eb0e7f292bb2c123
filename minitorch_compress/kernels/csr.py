"""Sparse (CSR) x dense float32 product, parallel over blocks of the dense matrix's columns.

For row r, ``out[r, :] = sum_p data[p] * dense[indices[p], :]`` over its nonzeros p: every
update reads a contiguous piece of a dense row, which vectorises, and rows are independent, so
threads need no synchronisation. The product is bound by reading those dense rows (a 1 KiB row
per nonzero at batch 256), so two things matter:

- the columns are cut into blocks of ``CW = 64`` (256 bytes a row; 32 without AVX-512): the
  block of ``dense`` a task reads (256 KiB for 1024 rows) stays in the core's L2 cache for all
  the rows of ``out``;
- the micro-kernel (``_row_kernel``, LLVM IR like ``microkernel.py``) keeps the CW outputs of a
  row in registers over all its nonzeros, in ``U = 2`` sets of accumulators that take the
  nonzeros in turn (independent chains of fused multiply-adds), summed at the end as
  ``s0 + s1``. The same kernel with one lane does the last columns (fewer than 16)
  and the batch-of-one product, so every column of ``out`` is rounded the same way whatever the
  batch size. With AVX-512 it prefetches the dense row of the nonzero ``AHEAD`` places on, which
  the hardware prefetcher cannot guess.

``_row_python`` is the same row kernel in NumPy, which runs when the JIT is off.

Registers and column blocks are what make it fast: a plain Numba loop updating ``out[r]`` in
memory streams ``dense`` from L3 (the measurements are in benchmarks/README.md).

For a layer ``y = x @ W.T`` with a sparse W (out, in), call it as ``(W @ x.T).T``: ``dense`` is
then ``x.T`` (in, batch), a transpose. Each task copies its column block of it into a contiguous
buffer (``transpose.py``, in registers), which then stays in L2 for the product (an element-wise
copy of the whole ``x.T`` first costs a good part of the product). A ``(W @ x.T).T`` result is itself
column-major, so a following sparse layer gets a contiguous ``x.T`` and copies nothing.
"""
import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from . import idioms, threads
from .fma import fma32
from .microkernel import VECTOR_BITS, as_lanes
from .transpose import transpose_rows
from .validate import as_array, check_matrix
from .workspace import scratch

U = 2           # accumulator sets, taking the nonzeros in turn (independent FMA chains)
# columns of a task: U x CW accumulators fill half the vector registers (16 x 512 or 8 x 256 bits)
CW = 64 if VECTOR_BITS == 512 else 32
# nonzeros between prefetching a dense row and reading it; 0: no prefetch. With AVX2's 32-column
# blocks the prefetch cost more instructions than it saved (benchmarks/README.md)
AHEAD = 16 if VECTOR_BITS == 512 else 0


def _row_kernel(lanes, nv):
    """An intrinsic ``row(indices, data, p0, p1, dense, col, out, o_off)``: with ``w = nv*lanes``,
    ``out.flat[o_off:o_off+w] = sum over p in [p0, p1) of data[p] * dense[indices[p], col:col+w]``
    (see the module docstring for the order of the sums)."""
    vec = ir.VectorType(ir.FloatType(), lanes)

    @intrinsic
    def row(typingctx, indices, data, p0, p1, dense, col, out, o_off):
        if not all(isinstance(arr, types.Array) for arr in (indices, data, dense, out)):
            return None
        sig = types.void(indices, data, types.intp, types.intp, dense, types.intp, out, types.intp)

        def codegen(context, builder, signature, args):
            idx_arr, data_arr, p0, p1, dense_arr, col, out_arr, o_off = args
            arrays = [context.make_array(t)(context, builder, v)
                      for t, v in zip(signature.args, args) if isinstance(t, types.Array)]
            idx_ptr, data_ptr, dense_ptr, out_ptr = (a.data for a in arrays)
            ld = cgutils.unpack_tuple(builder, arrays[2].shape, 2)[1]
            intp = p0.type
            zeros = ir.Constant(vec, None)
            accs = [[cgutils.alloca_once_value(builder, zeros) for _ in range(nv)] for _ in range(U)]
            i8_ptr, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
            prefetch = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8_ptr] + [i32] * 3),
                                                      "llvm.prefetch.p0i8")
            last = builder.sub(p1, ir.Constant(intp, 1))

            def dense_at(p, v):
                """Where (in floats from ``dense_ptr``) the v-th vector of nonzero p's piece of its dense row starts."""
                row = builder.sext(builder.load(builder.gep(idx_ptr, [p])), intp)
                return builder.add(builder.add(builder.mul(row, ld), col), ir.Constant(intp, v * lanes))

            def prefetch_ahead(p):
                ahead = builder.add(p, ir.Constant(intp, AHEAD))
                ahead = builder.select(builder.icmp_signed("<", ahead, p1), ahead, last)
                for v in range(nv):     # read for writing later (0), keep in all caches (3), data (1)
                    where = builder.gep(dense_ptr, [dense_at(ahead, v)])
                    builder.call(prefetch, [builder.bitcast(where, i8_ptr)] + [ir.Constant(i32, c) for c in (0, 3, 1)])

            def update(p, u):
                if AHEAD:
                    prefetch_ahead(p)
                value = idioms.splat(builder, builder.load(builder.gep(data_ptr, [p])), vec)
                for v in range(nv):
                    dv = idioms.load(builder, dense_ptr, dense_at(p, v), vec)
                    builder.store(idioms.fma(builder, value, dv, builder.load(accs[u][v])), accs[u][v])

            rounds = builder.sdiv(builder.sub(p1, p0), ir.Constant(intp, U))
            with cgutils.for_range(builder, rounds) as loop:
                base = builder.add(p0, builder.mul(loop.index, ir.Constant(intp, U)))
                for u in range(U):
                    update(builder.add(base, ir.Constant(intp, u)), u)
            tail = builder.add(p0, builder.mul(rounds, ir.Constant(intp, U)))
            with cgutils.for_range_slice(builder, tail, p1, ir.Constant(intp, 1)) as (p, _):
                update(p, 0)
            for v in range(nv):
                sums = [builder.load(accs[u][v]) for u in range(U)]
                while len(sums) > 1:     # pairwise: (s0 + s1) + (s2 + s3)
                    sums = [builder.fadd(sums[i], sums[i + 1]) for i in range(0, len(sums), 2)]
                idioms.store(builder, sums[0], out_ptr, builder.add(o_off, ir.Constant(intp, v * lanes)))
            return context.get_dummy_value()

        return sig, codegen

    return row


def _row_python(lanes, nv):
    """The same ``row`` in NumPy, bit for bit (``fma32`` rounds as ``llvm.fma`` does): what runs
    with ``NUMBA_DISABLE_JIT=1``. Nonzero p goes to accumulator set (p - p0) % U, the last
    (p1 - p0) % U to set 0, as in the IR."""
    w = lanes * nv

    def row(indices, data, p0, p1, dense, col, out, o_off):
        accs = np.zeros((U, w), np.float32)
        whole = p0 + (p1 - p0) // U * U
        for p in range(p0, p1):
            u = (p - p0) % U if p < whole else 0
            accs[u] = fma32(data[p], dense[indices[p], col:col + w], accs[u])
        sums = list(accs)
        while len(sums) > 1:     # pairwise: (s0 + s1) + (s2 + s3)
            sums = [sums[i] + sums[i + 1] for i in range(0, len(sums), 2)]
        as_lanes(out)[o_off:o_off + w] = sums[0]

    return row


_row = _row_python if numba.config.DISABLE_JIT else _row_kernel
_row_block = _row(16, CW // 16)
_row_vector = _row(16, 1)
_row_column = _row(1, 1)


@njit(cache=True, parallel=True)
def _csr_rows(indptr, indices, data, src, transposed, row_tasks, blocks, out):
    """out[r] = sum over p in indptr[r]:indptr[r+1] of data[p] * dense[indices[p]], where
    ``dense`` is ``src`` or, when ``transposed``, ``src.T``.

    Tasks are blocks of CW columns x a share of the rows (one of ``row_tasks``), numbered column
    block first, so that each thread keeps to its own column blocks of ``dense``. With
    ``transposed``, each task first copies its block of ``src.T`` into its own C-contiguous buffer
    (``blocks[t]``, K x CW), which then stays in L2 for the product.
    """
    rows, n = out.shape
    col_tasks = (n + CW - 1) // CW
    share = (rows + row_tasks - 1) // row_tasks
    for t in prange(col_tasks * row_tasks):
        c0, r0 = t // row_tasks * CW, t % row_tasks * share
        c1 = min(c0 + CW, n)
        if transposed:
            dense, first = blocks[t], 0
            transpose_rows(src, c0, c1, dense)
        else:
            dense, first = src, c0
        for r in range(r0, min(r0 + share, rows)):
            p0, p1 = indptr[r], indptr[r + 1]
            c = 0
            if c1 - c0 == CW:
                _row_block(indices, data, p0, p1, dense, first, out, r * n + c0)
                c = CW
            while c0 + c + 16 <= c1:
                _row_vector(indices, data, p0, p1, dense, first + c, out, r * n + c0 + c)
                c += 16
            while c0 + c < c1:
                _row_column(indices, data, p0, p1, dense, first + c, out, r * n + c0 + c)
                c += 1


NS_PER_UPDATE = 0.07   # one thread, per nonzero and dense column


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
    k, n = dense.shape
    out = np.empty((indptr.size - 1, n), np.float32)
    if out.size == 0:
        return out
    col_tasks = -(-n // CW)
    row_tasks = -(-numba.get_num_threads() // col_tasks)    # at least one task a thread
    transposed = not dense.flags.c_contiguous and dense.T.flags.c_contiguous
    if transposed:
        src = dense.T
        blocks = scratch("csr_blocks", col_tasks * row_tasks * k * CW, np.float32).reshape(-1, k, CW)
    else:
        src = np.ascontiguousarray(dense)     # a copy only for other strides (e.g. every other column)
        blocks = scratch("csr_blocks", 0, np.float32).reshape(0, k, CW)
    threads.run(_csr_rows, data.size * n * NS_PER_UPDATE, indptr, indices, data, src, transposed, row_tasks,
                blocks, out)
    return out


def csr_matmul_reference(indptr, indices, data, dense):
    """Plain NumPy ``A @ dense`` (A rebuilt densely), in float64: the tests' reference."""
    a = np.zeros((len(indptr) - 1, dense.shape[0]))
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    np.add.at(a, (rows, np.asarray(indices)), np.asarray(data, np.float64))
    return a @ np.asarray(dense, np.float64)
