"""Dense float32 GEMM ``C = A @ B``: packed, cache-blocked, register-tiled, parallel.

B is packed into a reused scratch buffer, in strips of ``NR`` columns stored k-major and
zero-padded at the edge, so that the micro-kernel reads one contiguous row of NR values per step
(from B's rows, or, for a transposed B such as the ``W.T`` of ``x @ W.T``, by in-register
transposes of W's rows).
A is read where it is, row by row (each step broadcasts one value from each of MR rows; the rows
of a last strip that runs past M from a padded copy), or from a copy of all its rows when it is
not C-contiguous (``microkernel.row_buffer``); packing A as well costs more than it gains in the
loop. The product then runs as
``microkernel.blocked_product``: independent tasks of C under ``prange``, each walking K in
blocks of at most ``KC`` and calling the ``MR x NR`` micro-kernel (``MR_SMALL x NR`` for the last
rows when that pads fewer), whose accumulators stay in vector registers. Packing costs O(KN)
against the O(MNK) product.
"""
import glob

import numpy as np
from llvmlite import ir
from numba import config, njit, prange, types
from numba.extending import intrinsic

from . import idioms, threads
from .microkernel import LANES, MC, NR, as_lanes, blocked_product, reads_in_place, row_buffer, tail_rows
from .transpose import pack_transposed_strips, transpose_rows
from .validate import check_inner, check_matrix
from .workspace import scratch


def l2_bytes():
    """The L2 cache of the first CPU in bytes, as Linux reports it ("1024K", "1M" or bytes); 256 KiB
    (a Haswell's) where it does not. Only speed depends on it."""
    for index in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*"):
        try:
            with open(f"{index}/level") as level, open(f"{index}/size") as size:
                if level.read().strip() == "2":
                    text = size.read().strip()
                    scale = {"K": 1024, "M": 1024 ** 2}.get(text[-1:], 1)
                    return int(text[:-1] if scale > 1 else text) * scale
        except (OSError, ValueError):
            pass
    return 256 * 1024


# k-block: a task's A block (MC rows of KC floats: 192 KiB on AVX2, 256 KiB with AVX-512 at
# KC = 1024) stays within half the L2, beside the B strip it meets. Longer blocks mean fewer
# passes of C through the tiles (benchmarks/README.md). Blocking does not change the bits.
KC = 1024 if MC * 1024 * 4 <= l2_bytes() // 2 else 512
NS_PER_MAC = 0.024   # one thread
NS_PER_PACKED = 0.5  # one thread, per element of B packed


@intrinsic
def _copy16(typingctx, src, s_off, dst, d_off):
    """dst.flat[d_off:d_off + 16] = src.flat[s_off:s_off + 16] (float32): one vector load and store,
    where a Numba slice assignment of 16 floats cost about three times as much in ``_pack_b``."""
    if not all(isinstance(arr, types.Array) and arr.dtype == types.float32 and arr.layout == "C" for arr in (src, dst)):
        return None
    sig = types.void(src, types.intp, dst, types.intp)

    def codegen(context, builder, signature, args):
        src_arr, s_off, dst_arr, d_off = args
        scalar = ir.FloatType()
        s_ptr = idioms.data_pointer(context, builder, signature.args[0], src_arr, scalar)
        d_ptr = idioms.data_pointer(context, builder, signature.args[2], dst_arr, scalar)
        idioms.store(builder, idioms.load(builder, s_ptr, s_off, ir.VectorType(scalar, LANES)), d_ptr, d_off)
        return context.get_dummy_value()

    return sig, codegen


def _copy16_python(src, s_off, dst, d_off):
    """``_copy16`` in NumPy: what runs with ``NUMBA_DISABLE_JIT=1``."""
    as_lanes(dst)[d_off:d_off + LANES] = as_lanes(src)[s_off:s_off + LANES]


if config.DISABLE_JIT:
    _copy16 = _copy16_python


PACK_ROWS = 8   # rows of B per packing task (see ``_pack_b``)


@njit(cache=True, parallel=True)
def _pack_b(b, bp, nr):
    """bp[s, k, j] = b[k, s*nr + j] for a C-contiguous ``b``: strips of ``nr`` columns (the tile's
    NR, a multiple of 16 and an argument because Numba's cache would keep another module's constant
    as it was), k-major, zero past the last column.

    A task takes ``PACK_ROWS`` rows of B and writes them strip by strip, so each row is read in
    order and each strip gets PACK_ROWS steps (512 bytes on AVX2) in a row. One row at a time
    wrote 64 bytes to each of N/16 places far apart (3x slower at 1024 x 1024); a whole strip at a
    time strides through B (slow when its width is a multiple of 1024)."""
    k, n = b.shape
    full, tail = n // nr, n % nr
    for block in prange((k + PACK_ROWS - 1) // PACK_ROWS):
        k0, k1 = block * PACK_ROWS, min(block * PACK_ROWS + PACK_ROWS, k)
        for s in range(full):
            for kk in range(k0, k1):
                dst = (s * k + kk) * nr
                for v in range(0, nr, LANES):
                    _copy16(b, kk * n + s * nr + v, bp, dst + v)
        if tail:
            for kk in range(k0, k1):
                dst = (full * k + kk) * nr
                bp[dst:dst + tail] = b[kk, full * nr:]
                bp[dst + tail:dst + nr] = 0


def matmul(a, b):
    """``a @ b`` for 2-D float32 arrays (or Tensors), computed by our Numba GEMM; returns float32."""
    a = check_matrix(a, "a", [np.float32])
    b = check_matrix(b, "b", [np.float32])
    k = check_inner(a.shape, b.shape)
    m, n = a.shape[0], b.shape[1]
    if m == 0 or n == 0 or k == 0:
        return np.zeros((m, n), np.float32)
    if reads_in_place(a):
        tail = tail_rows(a)
    else:
        a, src, tail = row_buffer("dense_a", m, k, np.float32), a, np.empty((0, k), np.float32)
        if src.T.flags.c_contiguous:     # a transpose, e.g. x.T in a weight's gradient: in registers
            transpose_rows(src.T, 0, k, a)
        else:
            a[:m, :k] = src
    bp = scratch("dense_b", -(-n // NR) * NR * k, np.float32)
    ns = m * n * k * NS_PER_MAC
    pack_ns = k * n * NS_PER_PACKED
    if b.T.flags.c_contiguous and not b.flags.c_contiguous:
        threads.run(pack_transposed_strips, pack_ns, b.T, bp.reshape(-1, k, NR))
    else:
        threads.run(_pack_b, pack_ns, np.ascontiguousarray(b), bp, NR)
    c = np.empty((m, n), np.float32)
    blocks = -(-k // KC)
    # equal k-blocks: no short last block
    threads.run(blocked_product, ns, a, a.shape[1], bp, k, -(-k // blocks), np.zeros(n, np.float32), c, tail)
    return c


def matmul_reference(a, b):
    """Plain NumPy ``a @ b`` in float64, rounded to float32: what the tests compare ``matmul`` with."""
    return (np.asarray(a, np.float64) @ np.asarray(b, np.float64)).astype(np.float32)
