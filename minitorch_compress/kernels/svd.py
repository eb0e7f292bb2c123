"""Singular value decomposition by one-sided Jacobi rotations, the same bits on every CPU.

LAPACK's SVD (``np.linalg.svd``) runs on BLAS kernels that OpenBLAS picks per CPU family, so the
factors of a low-rank layer, and everything trained from them, differ in their last bits from one
machine to the next. Hestenes' method (1958) needs only dot products, rotations and square roots,
done here one after another in a fixed order:

    repeat until no pair of rows of A (n x m, n <= m) is left to rotate:
        for each pair p < q:  alpha = |a_p|^2, beta = |a_q|^2, gamma = a_p . a_q
            if |gamma| > tol * sqrt(alpha * beta):       # not yet orthogonal
                zeta = (beta - alpha) / (2 gamma),  t = sign(zeta) / (|zeta| + sqrt(1 + zeta^2))
                c = 1 / sqrt(1 + t^2),  s = c t
                (a_p, a_q) <- (c a_p - s a_q, s a_p + c a_q)    # the same rotation on Q's rows
    then A = Q^T diag(sigma) V^T with sigma_j = |a_j|, v_j = a_j / sigma_j, so U = Q^T.

The rotation zeroes a_p . a_q (t is the smaller root of t^2 + 2 zeta t - 1 = 0); sweeps converge
quadratically, and the singular values come out to high relative accuracy (Demmel & Veselic 1992).
``_orthogonalize_rows`` is plain Python; the kernel is the same function compiled by Numba, and
the tests check that both give the same bits.
"""
import math

import numpy as np
from numba import njit

from .validate import as_array

TOL = 1e-15
MAX_SWEEPS = 60


def _orthogonalize_rows(a, q, tol, max_sweeps):
    """Rotate pairs of rows of ``a`` (and of ``q``) until all rows of ``a`` are orthogonal; returns the
    number of sweeps."""
    n, m = a.shape
    for sweep in range(max_sweeps):
        rotated = False
        for p in range(n - 1):
            for r in range(p + 1, n):
                alpha = beta = gamma = 0.0
                for i in range(m):
                    alpha += a[p, i] * a[p, i]
                    beta += a[r, i] * a[r, i]
                    gamma += a[p, i] * a[r, i]
                if abs(gamma) <= tol * math.sqrt(alpha * beta):
                    continue
                rotated = True
                zeta = (beta - alpha) / (2.0 * gamma)
                if abs(zeta) > 1e150:          # zeta^2 would overflow: t ~ 1 / (2 zeta)
                    t = 0.5 / zeta
                else:
                    t = math.copysign(1.0, zeta) / (abs(zeta) + math.sqrt(1.0 + zeta * zeta))
                c = 1.0 / math.sqrt(1.0 + t * t)
                s = c * t
                for rows in (a, q):
                    for i in range(rows.shape[1]):
                        x, y = rows[p, i], rows[r, i]
                        rows[p, i] = c * x - s * y
                        rows[r, i] = s * x + c * y
        if not rotated:
            return sweep + 1
    return max_sweeps


_orthogonalize_rows_kernel = njit(cache=True)(_orthogonalize_rows)


def svd(a, kernel=True):
    """``u, s, vt`` of a 2-D real array in float64, as ``np.linalg.svd(a, full_matrices=False)``:
    ``a = u @ diag(s) @ vt``, ``s`` descending, ``u`` (n, k) and ``vt`` (k, m) orthonormal, k = min(n, m).
    The signs of singular vector pairs may differ from LAPACK's (either is a valid SVD).
    ``kernel=False`` runs the plain Python loop (slow: for small matrices and the tests)."""
    a = as_array(a, "a")
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"svd needs a non-empty 2-D array, got shape {a.shape}")
    if a.dtype.kind not in "fiu":
        raise TypeError(f"svd needs a real array, got dtype {a.dtype}")
    if not np.all(np.isfinite(a)):
        raise ValueError("svd: the array has inf or nan entries")
    if a.shape[0] > a.shape[1]:          # orthogonalize the shorter side: svd(a.T) transposed
        u, s, vt = svd(a.T, kernel)
        return vt.T, s, u.T
    rows = np.array(a, dtype=np.float64, order="C")   # a copy: the rotations work in place
    q = np.eye(rows.shape[0])
    (_orthogonalize_rows_kernel if kernel else _orthogonalize_rows)(rows, q, TOL, MAX_SWEEPS)
    sigma = np.sqrt((rows * rows).sum(axis=1))
    order = np.argsort(-sigma, kind="stable")
    sigma = sigma[order]
    vt = np.zeros_like(rows[order])
    nonzero = sigma > 0
    vt[nonzero] = rows[order][nonzero] / sigma[nonzero, None]
    return q[order].T.copy(), sigma, vt

