"""Dense float32 GEMM ``C = A @ B``: packed, cache-blocked, register-tiled, parallel.

Both operands are first packed (in one parallel region) into reused scratch buffers: A into
strips of ``MR`` rows stored k-major, B into strips of ``NR`` columns stored k-major, zero-padded
at the edges. The product then runs as ``microkernel.blocked_product``: independent tasks of C
under ``prange``, each walking K in blocks of at most ``KC`` and calling the ``MR x NR``
micro-kernel, whose 16 accumulators are AVX-512 registers. Packing costs O(MK + KN) against the
O(MNK) product.
"""
import numpy as np
from numba import njit, prange

from . import threads
from .microkernel import MR, NR, blocked_product
from .validate import check_inner, check_matrix
from .workspace import scratch

KC = 256        # k-block: an MR x KC strip of A is 8 KiB, a KC x NR strip of B 32 KiB
NS_PER_MAC = 0.024   # one thread


@njit(cache=True, parallel=True)
def _pack(a, ap, mr, b, bp, nr):
    """Pack both operands in one parallel region (each region costs a thread wake-up).

    ap[s, k, i] = a[s*mr + i, k]: strips of mr rows, k-major, zero past the last row.
    bp[s, k, j] = b[k, s*nr + j]: strips of nr columns, k-major, zero past the last column.
    (The tile's ``MR``/``NR`` come as arguments: Numba's cache would keep another module's
    constants as they were when it compiled.)
    A is packed a strip at a time, B a row at a time, so both are read in order (walking B by
    column strips strides through memory, slow when its width is a multiple of 1024).
    """
    m, k = a.shape
    n = b.shape[1]
    a_strips = ap.size // (k * mr)
    full, tail = n // nr, n % nr
    for t in prange(a_strips + k):
        if t < a_strips:
            base = t * k * mr
            if (t + 1) * mr > m:
                ap[base:base + k * mr] = 0
            for i in range(min(mr, m - t * mr)):
                src = a[t * mr + i]
                for kk in range(k):
                    ap[base + kk * mr + i] = src[kk]
        else:
            kk = t - a_strips
            src = b[kk]
            for s in range(full):
                dst = s * k * nr + kk * nr
                for j in range(nr):
                    bp[dst + j] = src[s * nr + j]
            if tail:
                dst = full * k * nr + kk * nr
                for j in range(nr):
                    bp[dst + j] = src[full * nr + j] if j < tail else 0


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
    threads.run(_pack, ns, a, ap, MR, b, bp, NR)
    c = np.empty((m, n), np.float32)
    blocks = -(-k // KC)
    # equal k-blocks: no short last block
    threads.run(blocked_product, ns, ap, k * MR, 1, MR, bp, k, -(-k // blocks), np.zeros(n, np.float32), c)
    return c


def matmul_reference(a, b):
    """Plain NumPy ``a @ b`` in float64, rounded to float32: what the tests compare ``matmul`` with."""
    return (np.asarray(a, np.float64) @ np.asarray(b, np.float64)).astype(np.float32)
