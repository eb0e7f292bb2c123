"""Transposing copy of float32 rows, 16 x 16 blocks at a time in vector registers.

The CSR product reads ``x.T`` for a layer's input ``x`` (batch, in), so it first copies a block
of it into contiguous rows. Element by element, a transpose either reads or writes with a large
stride, one float per cache line touched, and the vectorised form of such a loop is a gather or a
scatter: slow on most CPUs. In registers it is
cheap: load 16 rows of 16 floats, and four rounds of interleaving rows ``i`` and ``i + 8``
(``lo``: lanes 0-7 of both, alternating; ``hi``: lanes 8-15) leave row ``i`` holding column
``i``. The 64 shuffles are generic LLVM IR (``vpermt2ps`` on AVX-512, ``vunpcklps``/``vperm2f128``
on AVX2). Edges that do not fill a block are copied element by element. With the JIT off,
``_transpose16_python`` copies the block instead.
"""
from llvmlite import ir
from numba import config, njit, prange, types
from numba.extending import intrinsic

from . import idioms
from .microkernel import as_lanes

LANES = 16
_LO = [i // 2 + (i % 2) * LANES for i in range(LANES)]                # a0 b0 a1 b1 ... a7 b7
_HI = [LANES // 2 + i // 2 + (i % 2) * LANES for i in range(LANES)]   # a8 b8 ... a15 b15


@intrinsic
def _transpose16(typingctx, src, s_off, s_rs, dst, d_off, d_rs):
    """dst.flat[d_off + i*d_rs + j] = src.flat[s_off + j*s_rs + i] for i, j < 16 (float32)."""
    if not (isinstance(src, types.Array) and isinstance(dst, types.Array)):
        return None
    sig = types.void(src, types.intp, types.intp, dst, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        src_arr, s_off, s_rs, dst_arr, d_off, d_rs = args
        scalar = ir.FloatType()
        vec = ir.VectorType(scalar, LANES)
        s_ptr = idioms.data_pointer(context, builder, signature.args[0], src_arr, scalar)
        d_ptr = idioms.data_pointer(context, builder, signature.args[3], dst_arr, scalar)

        def row_at(off, rs, i):
            return builder.add(off, builder.mul(rs, ir.Constant(off.type, i)))

        rows = [idioms.load(builder, s_ptr, row_at(s_off, s_rs, i), vec) for i in range(LANES)]
        masks = [ir.Constant(ir.VectorType(ir.IntType(32), LANES), m) for m in (_LO, _HI)]
        for _ in range(4):
            rows = [builder.shuffle_vector(rows[i], rows[i + LANES // 2], mask)
                    for i in range(LANES // 2) for mask in masks]
        for i, row in enumerate(rows):
            idioms.store(builder, row, d_ptr, row_at(d_off, d_rs, i))
        return context.get_dummy_value()

    return sig, codegen


def _transpose16_python(src, s_off, s_rs, dst, d_off, d_rs):
    """``_transpose16`` in NumPy: what runs with ``NUMBA_DISABLE_JIT=1``."""
    s, d = as_lanes(src), as_lanes(dst)
    for i in range(LANES):
        d[d_off + i * d_rs:d_off + i * d_rs + LANES] = s[s_off + i:s_off + i + LANES * s_rs:s_rs]


if config.DISABLE_JIT:
    _transpose16 = _transpose16_python


@njit(cache=True)
def transpose_rows(src, r0, r1, dst):
    """dst[i, j] = src[r0 + j, i] for i < src.shape[1], j < r1 - r0: rows r0..r1 of ``src``
    become the first columns of ``dst``. Both arrays are C-contiguous, with 4-byte elements
    (float32, or int32 holding four int8)."""
    k, width, ld = src.shape[1], r1 - r0, dst.shape[1]
    full_k, full_w = k - k % LANES, width - width % LANES
    for i0 in range(0, full_k, LANES):
        for j0 in range(0, full_w, LANES):
            _transpose16(src, (r0 + j0) * k + i0, k, dst, i0 * ld + j0, ld)
    for j in range(width):            # the edges: the last columns of dst, then its last rows
        start = 0 if j >= full_w else full_k
        row = src[r0 + j]
        for i in range(start, k):
            dst[i, j] = row[i]


@njit(cache=True, parallel=True)
def pack_transposed_strips(src, dst):
    """dst[s] = src[s*nr:(s+1)*nr].T for dst (strips, K, nr) and src (N, K), both C-contiguous with
    4-byte elements; columns past N are zero. This is a GEMM's packed B when src is B.T (a
    ``Linear`` weight in ``x @ W.T``), and the VNNI layout of an int8 weight viewed as int32."""
    n = src.shape[0]
    nr = dst.shape[2]
    for s in prange(dst.shape[0]):
        width = min(nr, n - s * nr)
        if width < nr:
            dst[s, :, width:] = 0
        transpose_rows(src, s * nr, s * nr + width, dst[s])


def transpose_reference(src, r0, r1, dst):
    """The same with NumPy: the tests' reference."""
    dst[:, :r1 - r0] = src[r0:r1].T
