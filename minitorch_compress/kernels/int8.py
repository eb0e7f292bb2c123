"""Exact int8 x int8 -> int32 matrix products, and the packed weight that quantized layers keep.

Layout is ``Linear``'s: ``C = X @ W.T`` with X (M, K) activations and W (N, K) weights, both
row-major, so each output is a dot product of two contiguous rows. Activations are shifted to
uint8 (``x + 128``, a bit flip) once per call; the shift is undone by subtracting
``128 * sum_k W[n, k]`` per column, precomputed with the packed weight. Unsigned x signed bytes is
what VNNI multiplies natively, and lets the portable kernel widen with zero-extension.

Two kernels, chosen per call: ``vnni.py`` where the CPU has AVX512-VNNI, else the portable 4x4
register-tiled kernel below. Both are exact: int32 lanes wrap, and with K <= 2**16 every true
result fits in int32 (|x*w| <= 2**14), so the wrapped sum equals it.
"""
import numpy as np
from numba import njit, prange

from . import threads, vnni
from .validate import check_inner, check_matrix
from .workspace import scratch

MAX_K = 2 ** 16
NS_PER_MAC = 0.007    # one thread, VNNI; the portable kernel is slower, which only errs towards parallel


class PackedInt8Weight:
    """An int8 weight W (out_features, in_features) prepared once for ``int8_linear``.

    Attributes: ``shape`` (N, K); ``weight`` the contiguous int8 W (portable kernel); ``vnni``
    W repacked for the VNNI kernel, or None where the CPU lacks it; ``row_sums`` int64
    ``W.sum(axis=1)`` (zero-point corrections use it).
    """

    def __init__(self, weight, vnni_packed, row_sums):
        self.weight, self.vnni, self.row_sums = weight, vnni_packed, row_sums
        self.shape = weight.shape
        self._offsets = {}

    def offset(self, shift):
        """int32 ``-shift * row_sums`` (wrapping), the per-column term the kernels add; a layer
        sees one or two shifts (its input zero point), so each is computed once."""
        offset = self._offsets.get(shift)
        if offset is None:
            offset = self._offsets[shift] = (self.row_sums * -shift).astype(np.int32)
        return offset

    def __repr__(self):
        return f"PackedInt8Weight(shape={self.shape}, vnni={self.vnni is not None})"


def pack_int8_weight(weight, use_vnni=None):
    """Pack an int8 weight (N, K) — ndarray or Tensor — for ``int8_linear``; do it once per weight.

    ``use_vnni=None`` packs for VNNI when ``vnni.has_vnni()``; False skips that layout.
    """
    w = check_matrix(weight, "weight", [np.int8])
    if w.shape[1] > MAX_K:
        raise ValueError(f"K={w.shape[1]} exceeds {MAX_K}: the int32 accumulation could overflow")
    w = np.ascontiguousarray(w)
    if use_vnni is None:
        use_vnni = vnni.has_vnni()
    packed = None
    if use_vnni:
        packed = np.empty(-(-w.shape[0] // vnni.NR) * vnni.NR * -(-w.shape[1] // 4) * 4, np.int8)
        if w.size:
            vnni.pack_vnni(w, packed)
    return PackedInt8Weight(w, packed, w.sum(axis=1, dtype=np.int64))


@njit(cache=True, parallel=True)
def portable_linear(xu, w, offset, out):
    """out = xu[:, :K] @ w.T + offset: uint8 (M', >=K) x int8 (N, K) -> int32, 4x4 register tiles.

    ``xu`` has at least M rounded up to 4 rows. Each update is wrapped back to int32
    (``np.int32(...)``), otherwise Numba widens the sums to int64 and the loop runs at half width.
    """
    m, n = out.shape
    k = w.shape[1]
    for ib in prange((m + 3) // 4):
        i0 = ib * 4
        a0, a1, a2, a3 = xu[i0], xu[i0 + 1], xu[i0 + 2], xu[i0 + 3]
        for j0 in range(0, n, 4):
            # past the last column, reuse the last row of w; those results are not stored
            b0, b1, b2, b3 = w[j0], w[min(j0 + 1, n - 1)], w[min(j0 + 2, n - 1)], w[min(j0 + 3, n - 1)]
            c00 = c01 = c02 = c03 = c10 = c11 = c12 = c13 = np.int32(0)
            c20 = c21 = c22 = c23 = c30 = c31 = c32 = c33 = np.int32(0)
            for kk in range(k):
                x0, x1, x2, x3 = np.int32(a0[kk]), np.int32(a1[kk]), np.int32(a2[kk]), np.int32(a3[kk])
                y0, y1, y2, y3 = np.int32(b0[kk]), np.int32(b1[kk]), np.int32(b2[kk]), np.int32(b3[kk])
                c00 = np.int32(c00 + x0 * y0); c01 = np.int32(c01 + x0 * y1)  # noqa: E702
                c02 = np.int32(c02 + x0 * y2); c03 = np.int32(c03 + x0 * y3)  # noqa: E702
                c10 = np.int32(c10 + x1 * y0); c11 = np.int32(c11 + x1 * y1)  # noqa: E702
                c12 = np.int32(c12 + x1 * y2); c13 = np.int32(c13 + x1 * y3)  # noqa: E702
                c20 = np.int32(c20 + x2 * y0); c21 = np.int32(c21 + x2 * y1)  # noqa: E702
                c22 = np.int32(c22 + x2 * y2); c23 = np.int32(c23 + x2 * y3)  # noqa: E702
                c30 = np.int32(c30 + x3 * y0); c31 = np.int32(c31 + x3 * y1)  # noqa: E702
                c32 = np.int32(c32 + x3 * y2); c33 = np.int32(c33 + x3 * y3)  # noqa: E702
            tile = ((c00, c01, c02, c03), (c10, c11, c12, c13), (c20, c21, c22, c23), (c30, c31, c32, c33))
            for i in range(min(4, m - i0)):
                for j in range(min(4, n - j0)):
                    out[i0 + i, j0 + j] = tile[i][j] + offset[j0 + j]


def _shifted_activations(x, groups):
    """x as uint8 in a reused (M rounded to 8, width) buffer: int8 + 128 (a bit flip), uint8 as is.

    The width is ``4*groups`` plus 64 bytes when that is a multiple of 1024, so that the rows
    read together by a tile do not all fall in the same cache sets. Padding is left unset: the
    packed weight is zero there.
    """
    m, k = x.shape
    width = 4 * groups + (64 if (4 * groups) % 1024 == 0 else 0)
    xu = scratch("int8_x", -(-m // vnni.MR) * vnni.MR * width, np.uint8).reshape(-1, width)
    if x.dtype == np.int8:
        np.bitwise_xor(x.view(np.uint8), 0x80, out=xu[:m, :k])
    else:
        xu[:m, :k] = x
    return xu


def int8_linear(x, packed, kernel=None, x_zero_point=0):
    """``(x - x_zero_point) @ W.T`` as exact int32, with W pre-packed by ``pack_int8_weight``.

    ``x`` is int8 or uint8 (M, K), ndarray or Tensor; ``x_zero_point`` an integer in x's range
    (|x - x_zero_point| <= 255, so the result fits in int32 for K <= 2**16). ``kernel`` is None
    (VNNI when the weight was packed for it, else portable), ``"vnni"`` or ``"portable"``.
    """
    if not isinstance(packed, PackedInt8Weight):
        raise TypeError(f"packed must be a PackedInt8Weight (see pack_int8_weight), got {type(packed).__name__}")
    x = check_matrix(x, "x", [np.int8, np.uint8])
    n, k = packed.shape
    check_inner(x.shape, packed.shape, 1, 1, "x @ W.T")
    if kernel not in (None, "vnni", "portable"):
        raise ValueError(f"unknown int8 kernel {kernel!r}; expected None, 'vnni' or 'portable'")
    if kernel == "vnni" and packed.vnni is None:
        raise ValueError("kernel='vnni' needs a weight packed for VNNI (this CPU lacks it, or use_vnni=False)")
    lo, hi = (-128, 127) if x.dtype == np.int8 else (0, 255)
    if not isinstance(x_zero_point, (int, np.integer)) or not lo <= x_zero_point <= hi:
        raise ValueError(f"x_zero_point must be an integer in [{lo}, {hi}] for {x.dtype} x, got {x_zero_point!r}")
    m = x.shape[0]
    if m == 0 or n == 0 or k == 0:
        return np.zeros((m, n), np.int32)
    out = np.empty((m, n), np.int32)
    # the uint8 shift adds 128 * sum_k W[n, k] to every output and the zero point takes away
    # x_zero_point * sum_k W[n, k]: one per-column correction, applied as the tiles are stored
    # (int32 wrap keeps it exact)
    offset = packed.offset((128 if x.dtype == np.int8 else 0) + int(x_zero_point))
    groups = -(-k // 4)
    xu = _shifted_activations(x, groups)
    ns = -(-m // vnni.MR) * vnni.MR * -(-n // vnni.NR) * vnni.NR * groups * 4 * NS_PER_MAC   # tiles are padded
    if packed.vnni is not None and kernel != "portable":
        threads.run(vnni.vnni_linear, ns, xu, packed.vnni, groups, offset, out)
    else:
        threads.run(portable_linear, ns, xu, packed.weight, offset, out)
    return out


def int8_matmul(a, b, kernel=None):
    """Exact ``a @ b`` for int8 matrices a (M, K), b (K, N), as int32. K <= 2**16.

    Packs ``b`` on every call (O(KN), against the O(MNK) product); layers that reuse a weight
    keep a ``PackedInt8Weight`` and call ``int8_linear``.
    """
    a = check_matrix(a, "a", [np.int8])
    b = check_matrix(b, "b", [np.int8])
    check_inner(a.shape, b.shape)
    return int8_linear(a, pack_int8_weight(b.T, use_vnni=False if kernel == "portable" else None), kernel)


def int8_matmul_reference(a, b):
    """Plain NumPy ``a @ b`` in int64, checked to fit int32: the tests' reference."""
    out = np.asarray(a, np.int64) @ np.asarray(b, np.int64)
    assert np.abs(out).max(initial=0) < 2 ** 31
    return out.astype(np.int32)
