"""Register-tiled micro-kernels written in LLVM IR through Numba's ``@intrinsic``, and the
blocked, parallel loop that calls them: the one product loop of the dense and int8 kernels.

A micro-kernel computes one ``MR x NR`` tile (``NR = NV*16``; ``tile_small`` has ``MR_SMALL``
rows) of a matrix product over ``kc`` steps, keeping the whole tile in ``MR*NV`` vector registers
of 16 lanes::

    acc[i][v] = C[c_off + i*c_rs + v*16 : ... + 16] if accumulate else init[init_off + v*16 : ... + 16]
    for k in range(kc):
        for v in range(NV):   bv = B[b_off + k*NR + v*16 : ... + 16]         # packed B row
        for i in range(MR):   a = splat(A[a_off + i*a_rs + k])               # one lane, broadcast
                              acc[i][v] = combine(acc[i][v], a, bv)
    C[c_off + i*c_rs + v*16 : ... + 16] = acc[i][v]

Numba cannot hold a vector in a register across a loop from Python code (LLVM's loop and
SLP vectorisers give at most 4x4 scalar tiles), so the loop is emitted as IR here, in the idioms
of ``idioms.py`` (load, store, splat, fma). The combine
follows B's dtype; a lane is 4 bytes in all three:

- float32: ``acc += a * bv`` with ``llvm.fma`` (LLVM lowers it for any CPU);
- int16 (the portable int8 kernel): each lane holds a pair of int16, and ``acc`` (int32) gets
  the sum of the pair's two products (``int16_pairs.py``: generic IR that each CPU lowers to its
  own instructions);
- int8: each lane holds 4 bytes (uint8 in ``a``, int8 in ``bv``) and ``acc`` gets the sum of the
  4 byte products: one AVX512-VNNI instruction, ``llvm.x86.avx512.vpdpbusd.512``, on CPUs with
  ``avx512_vnni`` (see ``vnni.py``); on AVX2 CPUs without it ``vpmaddubsw`` and ``vpmaddwd``
  (``maddubs.py``), whose int16 pair sums saturate: ``int8.py`` sends them only codes that fit.

The rows of C go to strips of MR rows, the last ones to strips of ``MR_SMALL`` rows where that
pads fewer rows (``row_strips``). ``C`` is the product itself for whole tiles, so a tile goes
from registers straight to memory (a copy through a scratch tile would cost a good part of the
int8 kernel's time); tiles at the edges go through a scratch tile: ``load_tile`` fills it with
what C holds so far, the micro-kernel continues from it, ``store_tile`` copies the part inside
back. Every element of C is so one chain ``init + a_0 b_0 + a_1 b_1 + ...`` in the order of k,
whatever the tile shape (which follows the CPU) and however K is blocked: the same bits on every
CPU.
``init`` is a per-column start value: zeros for a plain product, the int8 kernels' zero-point
correction.

``tile_python`` (and ``tile_small_python``) is the loop above in NumPy, bit for bit the same
(``fma32`` rounds as ``llvm.fma`` does); it is what runs with ``NUMBA_DISABLE_JIT=1``, where
every kernel is plain Python that a debugger can step through.
"""
import numpy as np
from llvmlite import ir
from numba import config, njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.numpy_support import as_dtype

from . import idioms
from .fma import fma32
from .int16_pairs import madd_pairs, madd_pairs_python
from .maddubs import has_maddubs, maddubs, maddubs_python
from .vnni import has_vnni, vpdpbusd, vpdpbusd_python
from .workspace import scratch

LANES = 16

# Accumulators must fit the vector registers. AVX-512 has 32 of 512 bits: an 8 x 2 tile of
# 16-lane vectors leaves room for the B row and a broadcast. With 256 bits (AVX2: 16 registers) a
# 16-lane vector takes two, so 6 x 1 (12 registers), the classic Haswell tile; 8 x 2 there would
# spill registers. (ARM's NEON, 32 registers of 128 bits, would fit 6 x 1 too; untested.)
VECTOR_BITS = 512 if "avx512f" in idioms.target_features() else 256
MR, NV = (8, 2) if VECTOR_BITS == 512 else (6, 1)
NR = NV * LANES
# The last rows of C, when M is not a multiple of MR, go to tiles of MR_SMALL rows where that pads
# fewer rows (``row_strips``; 128 = 20 x 6 + 2 x 4 on AVX2, where a 6-row tile for the last 2 rows
# did the work of 6). 4 x NV vectors still make 8 independent chains, as two FMA units need.
MR_SMALL = 4
MC = 8 * MR     # rows of C per task: 8 row strips (of MR rows, or fewer at the end)
# Columns of C per task, for both tiles: small enough that LeNet's 300 x 784 x 256 splits evenly
# over 2 threads, large enough that a task reuses its A rows (benchmarks/README.md).
NT = 128
# k-steps per loop trip in the float32 tile: fewer loop instructions per FMA; the AVX2 tile alone
# ran about 5% faster (benchmarks/README.md)
K_UNROLL = 4


def _fma(builder, acc, a, b):
    return idioms.fma(builder, a, b, acc)


# B's dtype -> (lane type, combine in IR, the same in NumPy). int8 lanes of 4 bytes go to VNNI's
# one instruction, else to AVX2's two (saturating, so ``int8.py`` only sends codes that fit).
_BYTES = (vpdpbusd, vpdpbusd_python) if has_vnni() or not has_maddubs() else (maddubs, maddubs_python)
_KINDS = {np.dtype(np.float32): (ir.FloatType(), _fma, lambda acc, a, b: fma32(a, b, acc)),
          np.dtype(np.int16): (ir.IntType(32), madd_pairs, madd_pairs_python),
          np.dtype(np.int8): (ir.IntType(32), *_BYTES)}


def _tile_kernel(mr):
    """An intrinsic ``tile(a, a_off, a_rs, b, b_off, kc, c, c_off, c_rs, init, init_off, accumulate)``:
    one ``mr x NR`` tile (see the module docstring); ``accumulate`` is an integer, nonzero to add
    to C. Offsets and strides count 4-byte lanes; the arrays are reinterpreted as lanes."""

    @intrinsic
    def tile(typingctx, a, a_off, a_rs, b, b_off, kc, c, c_off, c_rs, init, init_off, accumulate):
        return _tile_codegen(mr, a, b, c, init)

    return tile


def _tile_codegen(mr, a, b, c, init):
    """``tile``'s signature and code generator for ``mr`` rows, or None for other argument types."""
    for arr in (a, b, c, init):
        if not isinstance(arr, types.Array):
            return None
    if as_dtype(b.dtype) not in _KINDS:
        return None
    scalar, combine, _ = _KINDS[as_dtype(b.dtype)]
    vec = ir.VectorType(scalar, LANES)
    intp = types.intp
    sig = types.void(a, intp, intp, b, intp, intp, c, intp, intp, init, intp, intp)

    def codegen(context, builder, signature, args):
        a_arr, a_off, a_rs, b_arr, b_off, kc, c_arr, c_off, c_rs, i_arr, init_off, accumulate = args
        a_ptr, b_ptr, c_ptr, i_ptr = (idioms.data_pointer(context, builder, signature.args[k], args[k], scalar)
                                      for k in (0, 3, 6, 9))

        def const(value):
            return ir.Constant(a_off.type, value)

        c_rows = [builder.add(c_off, builder.mul(const(i), c_rs)) for i in range(mr)]
        c_at = [[builder.add(c_rows[i], const(v * LANES)) for v in range(NV)] for i in range(mr)]
        # Accumulators live in allocas; LLVM's mem2reg turns them into registers.
        accs = [[cgutils.alloca_once(builder, vec) for _ in range(NV)] for _ in range(mr)]
        with builder.if_else(builder.icmp_signed("!=", accumulate, const(0))) as (from_c, from_init):
            with from_c:
                for i in range(mr):
                    for v in range(NV):
                        builder.store(idioms.load(builder, c_ptr, c_at[i][v], vec), accs[i][v])
            with from_init:
                for v in range(NV):
                    start = idioms.load(builder, i_ptr, builder.add(init_off, const(v * LANES)), vec)
                    for i in range(mr):
                        builder.store(start, accs[i][v])
        # A's rows, found once before the loop
        a_rows = [builder.gep(a_ptr, [builder.add(a_off, builder.mul(const(i), a_rs))]) for i in range(mr)]

        def step(k):
            b_row = builder.add(b_off, builder.mul(k, const(NR)))
            bvs = [idioms.load(builder, b_ptr, builder.add(b_row, const(v * LANES)), vec) for v in range(NV)]
            for i in range(mr):
                av = idioms.splat(builder, builder.load(builder.gep(a_rows[i], [k]), align=4), vec)
                for v in range(NV):
                    builder.store(combine(builder, builder.load(accs[i][v]), av, bvs[v]), accs[i][v])

        # float32: K_UNROLL steps per trip (fewer loop instructions per step), then the rest one
        # by one; each accumulator still sees k in order. The integer tiles need a register or
        # two more per step, and unrolled, LLVM spilled every accumulator of the AVX2 byte tile.
        unroll = K_UNROLL if isinstance(scalar, ir.FloatType) else 1
        trips = builder.sdiv(kc, const(unroll))
        with cgutils.for_range(builder, trips) as loop:
            for u in range(unroll):
                step(builder.add(builder.mul(loop.index, const(unroll)), const(u)))
        if unroll > 1:
            with cgutils.for_range(builder, kc, start=builder.mul(trips, const(unroll))) as loop:
                step(loop.index)
        for i in range(mr):
            for v in range(NV):
                idioms.store(builder, builder.load(accs[i][v]), c_ptr, c_at[i][v])
        return context.get_dummy_value()

    return sig, codegen


def as_lanes(arr):
    """``arr``'s memory as 4-byte lanes: (n,) for float32/int32, (n, 2) for int16, (n, 4) for bytes."""
    flat = arr.reshape(-1)
    if not np.shares_memory(flat, arr):
        raise ValueError(f"a kernel needs contiguous arrays, got strides {arr.strides} for shape {arr.shape}")
    return flat if flat.itemsize == 4 else flat.reshape(-1, 4 // flat.itemsize)


def _tile_python(mr):
    """``tile`` as the loop of the module docstring, for ``mr`` rows (a row of the tile at a time:
    its rows are independent chains)."""

    def tile(a, a_off, a_rs, b, b_off, kc, c, c_off, c_rs, init, init_off, accumulate):
        combine = _KINDS[b.dtype][2]
        a, b, c, init = as_lanes(a), as_lanes(b), as_lanes(c), as_lanes(init)
        for i in range(mr):
            row = slice(c_off + i * c_rs, c_off + i * c_rs + NR)
            acc = c[row] if accumulate else init[init_off:init_off + NR]
            for k in range(kc):
                acc = combine(acc, a[a_off + i * a_rs + k], b[b_off + k * NR:b_off + (k + 1) * NR])
            c[row] = acc

    return tile


tile_python, tile_small_python = _tile_python(MR), _tile_python(MR_SMALL)
if config.DISABLE_JIT:   # no machine code to call: the kernels below call the loop itself
    tile, tile_small = tile_python, tile_small_python
else:
    tile, tile_small = _tile_kernel(MR), _tile_kernel(MR_SMALL)


def row_buffer(name, m, k, dtype):
    """A reused (M rounded up to MR, width) scratch buffer for A as the micro-kernel reads it: rows
    of K values of ``dtype`` rounded up to whole 4-byte lanes."""
    itemsize = np.dtype(dtype).itemsize
    width = -(-k * itemsize // 4) * 4 // itemsize
    return scratch(f"{name}_{np.dtype(dtype).name}", -(-m // MR) * MR * width, dtype).reshape(-1, width)


@njit(cache=True)
def row_strips(m):
    """(big, small): C's M rows as ``big`` strips of MR rows, then ``small`` of MR_SMALL, that pad
    the fewest rows (then, of those, the fewest strips). A strip's rows all meet the same B strip,
    and each element of C is the same chain in any strip: the split changes only speed."""
    best_big, best_small = (m + MR - 1) // MR, 0
    for small in range(1, MR // MR_SMALL + 2):
        big = max(0, (m - small * MR_SMALL + MR - 1) // MR)
        rows, best_rows = big * MR + small * MR_SMALL, best_big * MR + best_small * MR_SMALL
        if rows < best_rows or rows == best_rows and big + small < best_big + best_small:
            best_big, best_small = big, small
    return best_big, best_small


@njit(cache=True, inline="always")
def strip_rows(strip, big):
    """(first row, height) of row strip ``strip`` when the first ``big`` strips have MR rows."""
    if strip < big:
        return strip * MR, MR
    return big * MR + (strip - big) * MR_SMALL, MR_SMALL


def reads_in_place(a):
    """Whether the micro-kernel can read A (M, K) where it is, unpadded: C-contiguous rows of whole
    4-byte lanes. The rows of a last strip that runs past M are then read from a padded copy
    (``tail_rows``)."""
    return a.flags.c_contiguous and a.shape[1] * a.itemsize % 4 == 0


def tail_rows(a):
    """The rows of A's last row strip (``row_strips``) copied into a reused (MR, K) buffer when
    that strip runs past M, for ``blocked_product`` when A is read in place; else an empty (0, K)
    array."""
    m, k = a.shape
    big, small = row_strips(m)
    r0, height = strip_rows(big + small - 1, big)
    rows = m - r0 if r0 + height > m else 0
    tail = scratch(f"tail_{a.dtype.name}", MR * k if rows else 0, a.dtype).reshape(-1, k)
    tail[:rows] = a[m - rows:]
    return tail


@njit(cache=True, inline="always")
def load_tile(c, tile, r0, c0, height, first, init):
    """Fill an edge tile (``height`` rows of ``NR``) with what the micro-kernel continues from:
    ``init[col]`` on the first k-block, C's part at (r0, c0) on later ones; zeros outside C."""
    m, n = c.shape
    rows, cols = min(height, m - r0), min(NR, n - c0)
    tile[:] = 0
    for i in range(rows):
        for j in range(cols):
            tile[i, j] = init[c0 + j] if first else c[r0 + i, c0 + j]


@njit(cache=True, inline="always")
def store_tile(c, tile, r0, c0, height):
    """Copy the part of an edge tile (``height`` rows) that lies inside ``c``, at (r0, c0)."""
    m, n = c.shape
    rows, cols = min(height, m - r0), min(NR, n - c0)
    for i in range(rows):
        for j in range(cols):
            c[r0 + i, c0 + j] = tile[i, j]


@njit(cache=True, parallel=True)
def blocked_product(a, a_rs, b, k, kb, init, c, tail):
    """c = A @ B + init (per column), in parallel over tasks of 8 row strips (``row_strips``: MR
    rows, the last ones maybe MR_SMALL) x ``NT`` columns of C.

    A is row-major with rows ``a_rs`` lanes apart (at least ``k`` of them), and rows up to its
    last strip's end, unless ``tail`` holds that strip's rows (``tail_rows``: the same stride),
    which it then reads; B is packed in strips of NR columns, ``k`` steps of NR lanes each.
    Each task walks the steps in blocks of ``kb``, so that the A block stays in L2 and a B strip
    in L2, and within a block reuses each B strip for all of its row strips.
    """
    m, n = c.shape
    big, small = row_strips(m)
    strips, per_task = big + small, MC // MR
    mtasks, ntasks = (strips + per_task - 1) // per_task, (n + NT - 1) // NT
    for t in prange(mtasks * ntasks):
        mine = range(t // ntasks * per_task, min((t // ntasks + 1) * per_task, strips))
        col_strips = range(t % ntasks * (NT // NR), min((t % ntasks + 1) * (NT // NR), (n + NR - 1) // NR))
        edge = np.empty((MR, NR), c.dtype)
        for p0 in range(0, k, kb):
            steps = min(kb, k - p0)
            for js in col_strips:
                for is_ in mine:
                    (r0, height), c0 = strip_rows(is_, big), js * NR
                    b_off = (js * k + p0) * NR
                    if r0 + height > m and tail.shape[0]:
                        src, s_off = tail, p0
                    else:
                        src, s_off = a, r0 * a_rs + p0
                    whole = r0 + height <= m and c0 + NR <= n
                    if whole:
                        out, o_off, o_rs, acc = c, r0 * n + c0, n, p0
                    else:  # through a scratch tile, continuing the same chain as a whole tile would
                        load_tile(c, edge, r0, c0, height, p0 == 0, init)
                        out, o_off, o_rs, acc = edge, 0, NR, 1
                    if height == MR:
                        tile(src, s_off, a_rs, b, b_off, steps, out, o_off, o_rs, init, c0, acc)
                    else:
                        tile_small(src, s_off, a_rs, b, b_off, steps, out, o_off, o_rs, init, c0, acc)
                    if not whole:
                        store_tile(c, edge, r0, c0, height)
