"""int8 products with AVX512-VNNI: ``vpdpbusd`` on a weight packed once.

``vpdpbusd acc, a, b`` multiplies 64 unsigned bytes of ``a`` by 64 signed bytes of ``b`` and adds
each group of 4 products into one of 16 int32 lanes of ``acc``: 64 multiply-adds in one
instruction, where float32 FMA does 16. To feed it, the weight ``W`` (N, K) is repacked once into
strips of ``NR = 32`` output columns; inside a strip, for each k-group of 4, the 32 columns' 4 bytes
lie side by side (128 bytes = two vectors). The activations stay row-major (one k-group of a row
is an int32 broadcast to all lanes). The micro-kernel holds an 8 x 2 tile of int32 vectors (8 rows
x 32 columns) and the product runs in parallel over tiles of C, like ``dense.py``.

The instruction only exists on CPUs with ``avx512_vnni``; ``has_vnni()`` says whether this one
has it (and Numba compiles for it), and callers fall back to ``int8.py``'s portable kernel.
"""
import llvmlite.binding as llvm
import numpy as np
from numba import config, njit, prange

from .microkernel import LANES, make_tile_kernel, store_tile

MR, NV = 8, 2
NR = NV * LANES
KG = 256        # k-groups per block: 1 KiB of each activation row, 32 KiB of a weight strip
MC, NT = 64, 256

_tile = make_tile_kernel("vpdpbusd", MR, NV)


def has_vnni():
    """True when the host CPU has AVX512-VNNI and Numba compiles for the host CPU."""
    if config.CPU_NAME not in (None, "host"):
        return False      # e.g. NUMBA_CPU_NAME=generic for portable caches: no VNNI code
    return bool(llvm.get_host_cpu_features().get("avx512vnni", False))


@njit(cache=True, parallel=True)
def pack_vnni(w, out):
    """out[s, g, j, b] = w[s*NR + j, 4*g + b] as a flat int8 array (zero past the edges)."""
    n, k = w.shape
    groups = (k + 3) // 4
    strips = out.size // (groups * NR * 4)
    for s in prange(strips):
        base = s * groups * NR * 4
        out[base:base + groups * NR * 4] = 0
        for j in range(min(NR, n - s * NR)):
            row = w[s * NR + j]
            for kk in range(k):
                out[base + (kk // 4) * NR * 4 + j * 4 + kk % 4] = row[kk]


@njit(cache=True, parallel=True)
def vnni_linear(xu, wp, groups, offset, out):
    """out = xu[:, :4*groups] @ W.T + offset, with ``wp`` = W packed by ``pack_vnni``.

    ``xu`` is uint8 (rows padded to a multiple of MR, width a multiple of 4); ``offset`` int32 per
    output column. The int32 lanes wrap, so the result is exact whenever it fits in int32.
    """
    m, n = out.shape
    a_rs = xu.shape[1] // 4
    mtasks, ntasks = (m + MC - 1) // MC, (n + NT - 1) // NT
    for t in prange(mtasks * ntasks):
        row_strips = range(t // ntasks * (MC // MR), min((t // ntasks + 1) * (MC // MR), (m + MR - 1) // MR))
        col_strips = range(t % ntasks * (NT // NR), min((t % ntasks + 1) * (NT // NR), (n + NR - 1) // NR))
        edge, edge_zeros = np.empty(MR * NR, np.int32), np.zeros(NR, np.int32)
        for g0 in range(0, groups, KG):
            steps = min(KG, groups - g0)
            for js in col_strips:
                for is_ in row_strips:
                    r0, c0 = is_ * MR, js * NR
                    a_off, b_off = r0 * a_rs + g0, js * groups * NR + g0 * NR
                    if r0 + MR <= m and c0 + NR <= n:
                        _tile(xu, a_off, a_rs, 1, wp, b_off, steps, out, r0 * n + c0, n, offset, c0, g0)
                    else:
                        _tile(xu, a_off, a_rs, 1, wp, b_off, steps, edge, 0, NR, edge_zeros, 0, 0)
                        store_tile(out, edge, r0, c0, NR, g0 == 0, offset)
