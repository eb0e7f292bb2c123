"""Dense float32 GEMM ``C = A @ B``: packed, cache-blocked, register-tiled, parallel.

Both operands are first packed (in one parallel region) into reused scratch buffers: A into strips of ``MR`` rows
stored k-major, B into strips of ``NR`` columns stored k-major, zero-padded at the edges. The
product then runs as independent tasks (``MC`` rows x ``NT`` columns of C) under ``prange``; each
task walks K in blocks of at most ``KC`` (so an A block stays in L2 and a B strip in L1/L2) and
calls the ``MR x NR`` micro-kernel of ``microkernel.py``, whose 16 accumulators are AVX-512
registers. Packing costs O(MK + KN) against the O(MNK) product.
"""
import numpy as np
from numba import njit, prange

from . import threads
from .microkernel import LANES, make_tile_kernel, store_tile
from .validate import check_inner, check_matrix
from .workspace import scratch

MR, NV = 8, 2
NR = NV * LANES
KC = 256        # k-block: an MR x KC strip of A is 8 KiB, a KC x NR strip of B 32 KiB
MC = 64         # rows of C per task (a multiple of MR)
NT = 256        # columns of C per task (a multiple of NR)
NS_PER_MAC = 0.024   # one thread

_tile = make_tile_kernel("fma", MR, NV)


@njit(cache=True, parallel=True)
def _pack(a, ap, b, bp):
    """Pack both operands in one parallel region (each region costs a thread wake-up).

    ap[s, k, i] = a[s*MR + i, k]: strips of MR rows, k-major, zero past the last row.
    bp[s, k, j] = b[k, s*NR + j]: strips of NR columns, k-major, zero past the last column.
    A is packed a strip at a time, B a row at a time, so both are read in order (walking B by
    column strips strides through memory, slow when its width is a multiple of 1024).
    """
    m, k = a.shape
    n = b.shape[1]
    a_strips = ap.size // (k * MR)
    full, tail = n // NR, n % NR
    for t in prange(a_strips + k):
        if t < a_strips:
            base = t * k * MR
            if (t + 1) * MR > m:
                ap[base:base + k * MR] = 0
            for i in range(min(MR, m - t * MR)):
                src = a[t * MR + i]
                for kk in range(k):
                    ap[base + kk * MR + i] = src[kk]
        else:
            kk = t - a_strips
            src = b[kk]
            for s in range(full):
                dst = s * k * NR + kk * NR
                for j in range(NR):
                    bp[dst + j] = src[s * NR + j]
            if tail:
                dst = full * k * NR + kk * NR
                for j in range(NR):
                    bp[dst + j] = src[full * NR + j] if j < tail else 0


@njit(cache=True, parallel=True)
def _gemm_packed(ap, bp, c, k, kc, zeros):
    """c = A @ B from the packed operands (see the module docstring); ``kc`` is the k-block.

    ``zeros`` is n zeros: where the tiles start (the int8 kernel starts from a correction).
    """
    m, n = c.shape
    mtasks = (m + MC - 1) // MC
    ntasks = (n + NT - 1) // NT
    for t in prange(mtasks * ntasks):
        row_strips = range(t // ntasks * (MC // MR), min((t // ntasks + 1) * (MC // MR), (m + MR - 1) // MR))
        col_strips = range(t % ntasks * (NT // NR), min((t % ntasks + 1) * (NT // NR), (n + NR - 1) // NR))
        edge, edge_zeros = np.empty(MR * NR, np.float32), np.zeros(NR, np.float32)
        for p0 in range(0, k, kc):
            steps = min(kc, k - p0)
            for js in col_strips:
                for is_ in row_strips:
                    r0, c0 = is_ * MR, js * NR
                    a_off, b_off = is_ * k * MR + p0 * MR, js * k * NR + p0 * NR
                    if r0 + MR <= m and c0 + NR <= n:
                        _tile(ap, a_off, 1, MR, bp, b_off, steps, c, r0 * n + c0, n, zeros, c0, p0)
                    else:
                        _tile(ap, a_off, 1, MR, bp, b_off, steps, edge, 0, NR, edge_zeros, 0, 0)
                        store_tile(c, edge, r0, c0, NR, p0 == 0, zeros)


def matmul(a, b):
    """``a @ b`` for 2-D float32 arrays (or Tensors), computed by our Numba GEMM; returns float32."""
    a = check_matrix(a, "a", [np.float32])
    b = check_matrix(b, "b", [np.float32])
    k = check_inner(a.shape, b.shape)
    m, n = a.shape[0], b.shape[1]
    if m == 0 or n == 0 or k == 0:
        return np.zeros((m, n), np.float32)
    ap = scratch("dense_a", -(-m // MR) * MR * k, np.float32)
    bp = scratch("dense_b", -(-n // NR) * NR * k, np.float32)
    ns = m * n * k * NS_PER_MAC
    threads.run(_pack, ns, a, ap, b, bp)
    c = np.empty((m, n), np.float32)
    blocks = -(-k // KC)
    # equal k-blocks: no short last block
    threads.run(_gemm_packed, ns, ap, bp, c, k, -(-k // blocks), np.zeros(n, np.float32))
    return c


def matmul_reference(a, b):
    """Plain NumPy ``a @ b`` in float64, rounded to float32: what the tests compare ``matmul`` with."""
    return (np.asarray(a, np.float64) @ np.asarray(b, np.float64)).astype(np.float32)
