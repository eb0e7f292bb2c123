"""Sparse (CSR) x dense float32 product, parallel over blocks of the dense matrix's columns.

For row r, ``out[r, :] = sum_p data[p] * dense[indices[p], :]`` over its nonzeros p: every
update reads a contiguous piece of a dense row, which vectorises, and rows are independent, so
threads need no synchronisation. The product is bound by reading those dense rows (a 1 KiB row
per nonzero at batch 256), so three things matter:

- the columns are cut into blocks of ``CW = 64`` (256 bytes a row; 32 without AVX-512): the
  block of ``dense`` a task reads (256 KiB for 1024 rows) stays in the core's L2 cache for all
  the rows of ``out``;
- the micro-kernel (``_row_kernel``, LLVM IR like ``microkernel.py``) keeps the CW outputs of a
  row in registers over all its nonzeros, in ``U = 2`` sets of accumulators that take the
  nonzeros in turn (independent chains of fused multiply-adds; the last odd one goes to set 0),
  summed at the end as ``s0 + s1``. The same kernel with one lane does the last columns (fewer
  than 16) and the batch-of-one product, so every column of ``out`` is rounded the same way
  whatever the batch size. With AVX-512 it prefetches the dense row of the nonzero ``AHEAD``
  places on, which the hardware prefetcher cannot guess;
- with AVX2, a task whose block outgrows L1 takes it in chunks of ``CHUNK_ROWS`` rows (32 KiB)
  when rows have ``CHUNK_NNZ`` nonzeros per chunk, walking its rows once per chunk: a row's
  nonzeros in the chunk (found by ``chunk_bounds``; the columns must be sorted within rows) go
  to the same sets as in one pass, which wait in memory between chunks. The sums and their
  order, so the bits, do not change. Such a task takes ``CW_CHUNKED = 48`` columns, and as a
  row starts, the first indices and values of the next row's nonzeros in the chunk are
  prefetched: they lie far from this row's.

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
# With AVX2, a task that takes its block in chunks (below) takes 48 columns: U x 48 fill 12 of the
# 16 registers, and a nonzero's index and value, read once for 32 columns, serve 48. That pays
# where rows have many nonzeros; with fewer, 32 stayed faster (benchmarks/README.md).
CW_CHUNKED = 48 if VECTOR_BITS == 256 else CW
# nonzeros between prefetching a dense row and reading it; 0: no prefetch. With AVX2's 32-column
# blocks the prefetch cost more instructions than it saved (benchmarks/README.md)
AHEAD = 16 if VECTOR_BITS == 512 else 0
# A task's block of dense (K x CW) stays in L2; a row's nonzeros read it at random, and from L1
# the row kernel runs about twice as fast. So with AVX2, when the block outgrows L1, a task walks
# its rows once per chunk of rows of it, keeping each row's accumulator sets in memory between
# chunks. Chunks have CHUNK_ROWS rows of CW columns (32 KiB; as many bytes at CW_CHUNKED) or fewer,
# and each costs a row call: so there are chunks only when rows have CHUNK_NNZ nonzeros per chunk
# on average (fewer but larger chunks, which outgrow L1, lost: benchmarks/README.md). With
# AVX-512's 64-column blocks chunks never paid.
L1_BYTES = 32 * 1024
CHUNK_ROWS = L1_BYTES // (CW * 4) if VECTOR_BITS == 256 else 0
CHUNK_NNZ = 40
# Cache lines of the next row's indices, and of its values, asked for as a row starts in a chunk:
# its nonzeros there start far from this row's, where the hardware prefetcher has no stream to
# follow (in one pass they follow on, and the prefetch only cost time: benchmarks/README.md).
PREFETCH_LINES = 2


def _row_kernel(lanes, nv):
    """An intrinsic ``row(indices, data, q0, q1, p0, whole, dense, col, state, s_off, resume, finish,
    out, o_off)``: with ``w = nv*lanes``, adds ``data[p] * dense[indices[p], col:col+w]`` for the
    nonzeros p in [q0, q1) of a row whose nonzeros are [p0, p1) to U accumulator sets: set
    ``(p - p0) % U`` if ``p < whole`` (``p0 + (p1 - p0) // U * U``), else set 0 (see the module
    docstring). q0 and q1 are each p1 or p0 plus a multiple of U. The sets start at zero, or with
    ``resume`` from ``state.flat[s_off:s_off + U*w]``; with ``finish`` their sum goes to
    ``out.flat[o_off:o_off+w]``, else they go back to ``state``. A whole row is one call (q0 = p0,
    q1 = p1, no resume, finish); a row taken in chunks of the dense block is several
    (``chunk_bounds``), with the same sums in the same order."""
    vec = ir.VectorType(ir.FloatType(), lanes)

    @intrinsic
    def row(typingctx, indices, data, q0, q1, p0, whole, dense, col, state, s_off, resume, finish, out, o_off):
        if not all(isinstance(arr, types.Array) for arr in (indices, data, dense, state, out)):
            return None
        intp = types.intp
        sig = types.void(indices, data, intp, intp, intp, intp, dense, intp, state, intp, intp, intp, out, intp)

        def codegen(context, builder, signature, args):
            idx_arr, data_arr, q0, q1, p0, whole, dense_arr, col, state_arr, s_off, resume, finish, out_arr, o_off = args
            arrays = [context.make_array(t)(context, builder, v)
                      for t, v in zip(signature.args, args) if isinstance(t, types.Array)]
            idx_ptr, data_ptr, dense_ptr, state_ptr, out_ptr = (a.data for a in arrays)
            ld = cgutils.unpack_tuple(builder, arrays[2].shape, 2)[1]
            intp_ir = q0.type

            def const(value):
                return ir.Constant(intp_ir, value)

            def at(u, v):
                """Where set u's v-th vector lies in ``state``."""
                return builder.add(s_off, const(u * nv * lanes + v * lanes))

            accs = [[cgutils.alloca_once(builder, vec) for _ in range(nv)] for _ in range(U)]
            with builder.if_else(builder.icmp_signed("!=", resume, const(0))) as (from_state, from_zero):
                with from_state:
                    for u in range(U):
                        for v in range(nv):
                            builder.store(idioms.load(builder, state_ptr, at(u, v), vec), accs[u][v])
                with from_zero:
                    for u in range(U):
                        for v in range(nv):
                            builder.store(ir.Constant(vec, None), accs[u][v])
            last = builder.sub(q1, const(1))

            def dense_at(p, v):
                """Where (in floats from ``dense_ptr``) the v-th vector of nonzero p's piece of its dense row starts."""
                row = builder.sext(builder.load(builder.gep(idx_ptr, [p])), intp_ir)
                return builder.add(builder.add(builder.mul(row, ld), col), const(v * lanes))

            def prefetch_ahead(p):
                ahead = builder.add(p, const(AHEAD))
                ahead = builder.select(builder.icmp_signed("<", ahead, q1), ahead, last)
                for v in range(nv):
                    idioms.prefetch(builder, builder.gep(dense_ptr, [dense_at(ahead, v)]))

            def update(p, u):
                if AHEAD:
                    prefetch_ahead(p)
                value = idioms.splat(builder, builder.load(builder.gep(data_ptr, [p])), vec)
                for v in range(nv):
                    dv = idioms.load(builder, dense_ptr, dense_at(p, v), vec)
                    builder.store(idioms.fma(builder, value, dv, builder.load(accs[u][v])), accs[u][v])

            # whole rounds of U nonzeros, from q0 (at a whole round or p1) to min(q1, whole) (no
            # rounds when q0 = p1 > whole: p1 - whole < U), then the rest to set 0
            end = builder.select(builder.icmp_signed("<", q1, whole), q1, whole)
            rounds = builder.sdiv(builder.sub(end, q0), const(U))
            with cgutils.for_range(builder, rounds) as loop:
                base = builder.add(q0, builder.mul(loop.index, const(U)))
                for u in range(U):
                    update(builder.add(base, const(u)), u)
            with cgutils.for_range_slice(builder, builder.add(q0, builder.mul(rounds, const(U))), q1, const(1)) as (p, _):
                update(p, 0)
            with builder.if_else(builder.icmp_signed("!=", finish, const(0))) as (to_out, to_state):
                with to_out:
                    for v in range(nv):
                        sums = [builder.load(accs[u][v]) for u in range(U)]
                        while len(sums) > 1:     # pairwise: (s0 + s1) + (s2 + s3)
                            sums = [builder.fadd(sums[i], sums[i + 1]) for i in range(0, len(sums), 2)]
                        idioms.store(builder, sums[0], out_ptr, builder.add(o_off, const(v * lanes)))
                with to_state:
                    for u in range(U):
                        for v in range(nv):
                            idioms.store(builder, builder.load(accs[u][v]), state_ptr, at(u, v))
            return context.get_dummy_value()

        return sig, codegen

    return row


def _row_python(lanes, nv):
    """The same ``row`` in NumPy, bit for bit (``fma32`` rounds as ``llvm.fma`` does): what runs
    with ``NUMBA_DISABLE_JIT=1``."""
    w = lanes * nv

    def row(indices, data, q0, q1, p0, whole, dense, col, state, s_off, resume, finish, out, o_off):
        accs = as_lanes(state)[s_off:s_off + U * w].reshape(U, w).copy() if resume else np.zeros((U, w), np.float32)
        for p in range(q0, q1):
            u = (p - p0) % U if p < whole else 0
            accs[u] = fma32(data[p], dense[indices[p], col:col + w], accs[u])
        if finish:
            sums = list(accs)
            while len(sums) > 1:     # pairwise: (s0 + s1) + (s2 + s3)
                sums = [sums[i] + sums[i + 1] for i in range(0, len(sums), 2)]
            as_lanes(out)[o_off:o_off + w] = sums[0]
        else:
            as_lanes(state)[s_off:s_off + U * w] = accs.reshape(-1)

    return row


@intrinsic
def _prefetch_kernel(typingctx, arr, index):
    """``prefetch(arr, index)``: ask for the cache line holding ``arr.flat[index]``, which is read
    soon (``idioms.prefetch``; any index, even past the end)."""
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        idioms.prefetch(builder, builder.gep(data, [args[1]]))
        return context.get_dummy_value()

    return types.void(arr, types.intp), codegen


def _prefetch_python(arr, index):
    """A hint has nothing to do in Python."""


_row = _row_python if numba.config.DISABLE_JIT else _row_kernel
_row_block = _row(16, CW // 16)
_row_chunked = _row(16, CW_CHUNKED // 16) if CW_CHUNKED != CW else _row_block
_row_vector = _row(16, 1)
_row_column = _row(1, 1)
_prefetch = _prefetch_python if numba.config.DISABLE_JIT else _prefetch_kernel


@njit(cache=True, parallel=True)
def _csr_rows(indptr, indices, data, src, transposed, cw, col_starts, row_tasks, chunk, bounds, blocks, states,
              out):
    """out[r] = sum over p in indptr[r]:indptr[r+1] of data[p] * dense[indices[p]], where
    ``dense`` is ``src`` or, when ``transposed``, ``src.T``.

    Tasks are blocks of columns, ``col_starts[b]:col_starts[b + 1]`` (``column_blocks``: at most
    ``cw`` of them, CW or CW_CHUNKED) x a share of the rows (one of ``row_tasks``), numbered column
    block first, so that each thread keeps to its own column blocks of ``dense``. With
    ``transposed``, each task first copies its block of ``src.T`` into its own C-contiguous
    buffer (``blocks[t]``, K x cw), which then stays in L2 for the product. A task walks its rows
    once per ``chunk`` rows of ``dense``, chunk j of row r taking its nonzeros
    ``bounds[r, j-1]:bounds[r, j]`` (``chunk_bounds``; the row's first and last nonzero at the
    ends), and keeps each row's accumulator sets in ``states[t]`` between chunks.
    """
    rows, n = out.shape
    k = src.shape[1] if transposed else src.shape[0]
    col_tasks = col_starts.size - 1
    share = (rows + row_tasks - 1) // row_tasks
    for t in prange(col_tasks * row_tasks):
        c0, c1 = col_starts[t // row_tasks], col_starts[t // row_tasks + 1]
        r0 = t % row_tasks * share
        r1 = min(r0 + share, rows)
        if transposed:
            dense, first = blocks[t], 0
            transpose_rows(src, c0, c1, dense)
        else:
            dense, first = src, c0
        state = states[t]
        chunks = max(1, (k + chunk - 1) // chunk)   # one pass even for K = 0: it writes the zeros
        for j in range(chunks):
            resume, finish = int(j > 0), int(j == chunks - 1)
            for r in range(r0, r1):
                if chunks > 1 and r + 1 < r1:   # the next row's nonzeros in this chunk: far from here
                    q_next = bounds[r + 1, j - 1] if resume else indptr[r + 1]
                    for line in range(PREFETCH_LINES):
                        _prefetch(indices, q_next + 16 * line)
                        _prefetch(data, q_next + 16 * line)
                p0, p1 = indptr[r], indptr[r + 1]
                whole = p0 + (p1 - p0) // U * U
                q0 = bounds[r, j - 1] if resume else p0
                q1 = p1 if finish else bounds[r, j]
                s_off = (r - r0) * U * cw
                c = 0
                if c1 - c0 >= CW_CHUNKED:     # a whole block of CW_CHUNKED columns (only when cw is)
                    _row_chunked(indices, data, q0, q1, p0, whole, dense, first, state, s_off, resume, finish,
                                 out, r * n + c0)
                    c = CW_CHUNKED
                elif c1 - c0 >= CW:
                    _row_block(indices, data, q0, q1, p0, whole, dense, first, state, s_off, resume, finish,
                               out, r * n + c0)
                    c = CW
                while c0 + c + 16 <= c1:
                    _row_vector(indices, data, q0, q1, p0, whole, dense, first + c, state, s_off + U * c, resume,
                                finish, out, r * n + c0 + c)
                    c += 16
                while c0 + c < c1:
                    _row_column(indices, data, q0, q1, p0, whole, dense, first + c, state, s_off + U * c, resume,
                                finish, out, r * n + c0 + c)
                    c += 1


@njit(cache=True, parallel=True)
def chunk_bounds(indptr, indices, chunk, bounds):
    """bounds[r, j]: where row r's nonzeros for chunk j + 1 of ``chunk`` rows of the dense matrix
    start (columns are sorted within a row; chunk 0 starts at the row's first nonzero): the first
    nonzero whose column is at least (j + 1) * chunk, or the next one after it that starts a round
    of the U accumulator sets, or p1. Any split of a row's nonzeros gives the same sums; with whole
    rounds only, the row kernel needs no code for half ones (a chunk reads up to U - 1 dense rows
    past its end)."""
    for r in prange(indptr.size - 1):
        p0, p1 = indptr[r], indptr[r + 1]
        for j in range(bounds.shape[1]):
            p = p0 + np.searchsorted(indices[p0:p1], (j + 1) * chunk)
            bounds[r, j] = min(p0 + (p - p0 + U - 1) // U * U, p1)


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


def _chunks(k, n, nnz_per_row, cw):
    """How many chunks of rows of the dense matrix (K, N) a product in blocks of ``cw`` columns
    takes (see ``CHUNK_ROWS``)."""
    if CHUNK_ROWS == 0 or k * min(n, cw) * 4 <= L1_BYTES:
        return 1
    chunks = -(-k // max(1, CHUNK_ROWS * CW // cw))
    return chunks if nnz_per_row >= CHUNK_NNZ * chunks else 1


def _plan(k, n, indptr, indices, sorted_indices):
    """(cw, chunks) for a product: CW_CHUNKED columns a task where it takes chunks, else CW with
    chunks or none. Chunks need sorted indices (``sorted_indices``, found here if None)."""
    for cw in (CW_CHUNKED, CW):
        chunks = _chunks(k, n, indices.size / (indptr.size - 1), cw)
        if chunks > 1:
            if sorted_indices is None:
                sorted_indices = has_sorted_indices(indptr, indices)
            return (cw, chunks) if sorted_indices else (CW, 1)
    return CW, 1


def column_blocks(n, cw, threads):
    """Where the tasks' blocks of columns start, then ``n``: blocks of CW columns; at CW_CHUNKED,
    each thread's even share of the 16-column vectors, cut into as few blocks of at most
    CW_CHUNKED columns as it takes, as even as they can be. (A thread takes consecutive tasks: with
    2 threads, 256 columns are 32 + 48 + 48 for each, where 5 x 48 + 16 would leave one 144.)"""
    if cw == CW:
        return np.append(np.arange(0, n, cw), n)
    vectors, per_block = -(-n // 16), cw // 16
    starts = [0]
    for t in range(threads):
        mine = vectors * (t + 1) // threads - vectors * t // threads
        count = -(-mine // per_block)
        for b in range(count):
            starts.append(starts[-1] + 16 * (mine * (b + 1) // count - mine * b // count))
    return np.minimum(np.array(starts, np.int64), n)


def has_sorted_indices(indptr, indices):
    """Whether the column indices never decrease within a row (SciPy's ``has_sorted_indices``;
    ``CSRMatrix.from_dense`` builds them so). Only then may ``csr_product`` take the dense matrix
    in chunks of rows, as it finds each chunk's nonzeros by a binary search."""
    falls = np.diff(indices) < 0
    starts = indptr[1:-1]
    falls[starts[(starts > 0) & (starts < indices.size)] - 1] = False     # between rows
    return not falls.any()


def csr_matmul(indptr, indices, data, dense):
    """``A @ dense`` for A given as CSR arrays (rows = len(indptr) - 1) and a 2-D float32 ``dense``.

    Returns a float32 array (rows, dense.shape[1]). ``dense`` is copied only if its rows are
    not contiguous.
    """
    dense = check_matrix(dense, "dense", [np.float32])
    indptr, indices, data = check_csr(indptr, indices, data, dense.shape[0])
    return csr_product(indptr, indices, data, dense)


def csr_product(indptr, indices, data, dense, sorted_indices=None):
    """``csr_matmul`` for CSR arrays already checked by ``check_csr`` (``CSRMatrix`` checks once,
    when built: the checks read every index, which at batch 1 cost more than the product).
    ``sorted_indices``: ``has_sorted_indices`` of the arrays if known (None: found when chunks
    would pay), which allows chunks (faster, the same bits); True for unsorted rows is wrong."""
    k, n = dense.shape
    out = np.empty((indptr.size - 1, n), np.float32)
    if out.size == 0:
        return out
    rows = out.shape[0]
    cw, chunks = _plan(k, n, indptr, indices, sorted_indices)
    col_starts = column_blocks(n, cw, numba.get_num_threads())
    col_tasks = col_starts.size - 1
    row_tasks = -(-numba.get_num_threads() // col_tasks)    # at least one task a thread
    transposed = not dense.flags.c_contiguous and dense.T.flags.c_contiguous
    if transposed:
        src = dense.T
        # scratch starts on a cache line, so a block's rows (cw floats) are whole lines: none is split
        blocks = scratch("csr_blocks", col_tasks * row_tasks * k * cw, np.float32).reshape(-1, k, cw)
    else:
        src = np.ascontiguousarray(dense)     # a copy only for other strides (e.g. every other column)
        blocks = scratch("csr_blocks", 0, np.float32).reshape(0, k, cw)
    tasks, share = col_tasks * row_tasks, -(-rows // row_tasks)
    chunked = chunks > 1
    chunk = -(-k // chunks) if chunked else max(k, 1)     # equal chunks
    # each task's rows' accumulator sets, and each row's inner chunk starts (none without chunks)
    state_size, inner = (share * U * cw, chunks - 1) if chunked else (0, 0)
    states = scratch("csr_states", tasks * state_size, np.float32).reshape(tasks, state_size)
    bounds = scratch("csr_bounds", rows * inner, np.int32).reshape(rows, inner)
    if chunked:
        threads.run(chunk_bounds, rows * chunks * 20, indptr, indices, chunk, bounds)
    threads.run(_csr_rows, data.size * n * NS_PER_UPDATE, indptr, indices, data, src, transposed, cw, col_starts,
                row_tasks, chunk, bounds, blocks, states, out)
    return out


def csr_matmul_reference(indptr, indices, data, dense):
    """Plain NumPy ``A @ dense`` (A rebuilt densely), in float64: the tests' reference."""
    a = np.zeros((len(indptr) - 1, dense.shape[0]))
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    np.add.at(a, (rows, np.asarray(indices)), np.asarray(data, np.float64))
    return a @ np.asarray(dense, np.float64)
