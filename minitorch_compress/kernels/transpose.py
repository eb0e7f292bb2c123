"""Transposing copy of float32 rows, square blocks at a time in vector registers.

The CSR product reads ``x.T`` for a layer's input ``x`` (batch, in), so it first copies a block
of it into contiguous rows; GEMMs pack a ``Linear`` weight's ``W.T`` the same way. Element by
element, a transpose either reads or writes with a large stride, one float per cache line
touched, and the vectorised form of such a loop is a gather or a scatter: slow on most CPUs. In
registers it is cheap: load a block's rows, shuffle, store its columns. A block fills the vector
registers (``BLOCK``):

- 16 x 16 with AVX-512 (``_transpose16``): four rounds of interleaving rows ``i`` and ``i + 8``
  (``lo``: lanes 0-7 of both, alternating; ``hi``: lanes 8-15) leave row ``i`` holding column
  ``i``: 64 shuffles, ``vpermt2ps``;
- 8 x 8 elsewhere (``_transpose8``), the classic AVX recipe: rows interleaved in pairs within
  their 128-bit halves (``vunpcklps``/``vunpckhps``), pairs of those pairs combined
  (``vshufps``), then the halves exchanged (``vperm2f128``): 24 shuffles. A 16 x 16 block in
  256-bit registers is 32 of them, twice what AVX2 has: it spilled, and ran at less than half
  this speed (benchmarks/README.md).

The shuffles are generic LLVM IR, which each CPU lowers to its own instructions. Edges that do
not fill a block are copied element by element. With the JIT off, ``_block_python`` copies the
block instead.
"""
from llvmlite import ir
from numba import config, njit, prange, types
from numba.extending import intrinsic

from . import idioms
from .microkernel import VECTOR_BITS, as_lanes

BLOCK = 16 if VECTOR_BITS == 512 else 8
LINE = 16      # floats in a 64-byte cache line
_LO = [i // 2 + (i % 2) * 16 for i in range(16)]        # a0 b0 a1 b1 ... a7 b7
_HI = [8 + i // 2 + (i % 2) * 16 for i in range(16)]    # a8 b8 ... a15 b15


def _shuffles16(builder, rows):
    """The 16 columns of 16 rows of 16 lanes."""
    masks = [ir.Constant(ir.VectorType(ir.IntType(32), 16), m) for m in (_LO, _HI)]
    for _ in range(4):
        rows = [builder.shuffle_vector(rows[i], rows[i + 8], mask) for i in range(8) for mask in masks]
    return rows


def _shuffles8(builder, rows):
    """The 8 columns of 8 rows of 8 lanes (a_ij: row i, lane j)."""
    def mix(a, b, mask):    # lanes of a are 0-7, of b 8-15
        return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(ir.IntType(32), 8), mask))

    # pairs of rows, within halves: a00 a10 a01 a11 | a04 a14 a05 a15 and a02 a12 a03 a13 | a06 ...
    t = [mix(rows[i], rows[i + 1], mask) for i in range(0, 8, 2)
         for mask in ([0, 8, 1, 9, 4, 12, 5, 13], [2, 10, 3, 11, 6, 14, 7, 15])]
    # pairs of pairs: u[c] holds columns c and c + 4 of rows 0-3, u[c + 4] of rows 4-7
    u = [mix(t[i + j], t[i + j + 2], mask) for i in (0, 4) for j in (0, 1)
         for mask in ([0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15])]
    # halves: column c from the low halves, column c + 4 from the high ones
    return ([mix(u[c], u[c + 4], [0, 1, 2, 3, 8, 9, 10, 11]) for c in range(4)]
            + [mix(u[c], u[c + 4], [4, 5, 6, 7, 12, 13, 14, 15]) for c in range(4)])


def _block(lanes, shuffles):
    """An intrinsic ``transpose(src, s_off, s_rs, dst, d_off, d_rs)``:
    dst.flat[d_off + i*d_rs + j] = src.flat[s_off + j*s_rs + i] for i, j < ``lanes`` (float32)."""
    @intrinsic
    def transpose(typingctx, src, s_off, s_rs, dst, d_off, d_rs):
        if not (isinstance(src, types.Array) and isinstance(dst, types.Array)):
            return None
        sig = types.void(src, types.intp, types.intp, dst, types.intp, types.intp)

        def codegen(context, builder, signature, args):
            src_arr, s_off, s_rs, dst_arr, d_off, d_rs = args
            scalar = ir.FloatType()
            vec = ir.VectorType(scalar, lanes)
            s_ptr = idioms.data_pointer(context, builder, signature.args[0], src_arr, scalar)
            d_ptr = idioms.data_pointer(context, builder, signature.args[3], dst_arr, scalar)

            def row_at(off, rs, i):
                return builder.add(off, builder.mul(rs, ir.Constant(off.type, i)))

            rows = shuffles(builder, [idioms.load(builder, s_ptr, row_at(s_off, s_rs, i), vec) for i in range(lanes)])
            for i, row in enumerate(rows):
                idioms.store(builder, row, d_ptr, row_at(d_off, d_rs, i))
            return context.get_dummy_value()

        return sig, codegen

    return transpose


def _block_python(lanes):
    """The same block copy in NumPy: what runs with ``NUMBA_DISABLE_JIT=1``."""
    def transpose(src, s_off, s_rs, dst, d_off, d_rs):
        s, d = as_lanes(src), as_lanes(dst)
        for i in range(lanes):
            d[d_off + i * d_rs:d_off + i * d_rs + lanes] = s[s_off + i:s_off + i + lanes * s_rs:s_rs]

    return transpose


if config.DISABLE_JIT:
    _transpose16, _transpose8 = _block_python(16), _block_python(8)
else:
    _transpose16, _transpose8 = _block(16, _shuffles16), _block(8, _shuffles8)
_transpose = _transpose16 if BLOCK == 16 else _transpose8


@njit(cache=True)
def transpose_rows(src, r0, r1, dst):
    """dst[i, j] = src[r0 + j, i] for i < src.shape[1], j < r1 - r0: rows r0..r1 of ``src``
    become the first columns of ``dst``. Both arrays are C-contiguous, with 4-byte elements
    (float32, or int32 holding four int8)."""
    k, width, ld = src.shape[1], r1 - r0, dst.shape[1]
    full_k, full_w = k - k % BLOCK, width - width % BLOCK
    for i0 in range(0, full_k, LINE):   # a whole cache line of each row of src, while it is in L1
        for j0 in range(0, full_w, BLOCK):
            for i1 in range(i0, min(i0 + LINE, full_k), BLOCK):
                _transpose(src, (r0 + j0) * k + i1, k, dst, i1 * ld + j0, ld)
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
