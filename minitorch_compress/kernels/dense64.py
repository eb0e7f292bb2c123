"""Float64 ``C = A @ B`` in a fixed order: the product behind gradient checks and exact Hessians.

OpenBLAS picks its float64 kernel by CPU family, and the kernels sum in different orders, so a
Hessian built from its products differs in the last bits from one machine to the next. This loop
fixes the order instead: ``c[i, j]`` starts at 0 and adds ``a[i, k] * b[k, j]`` for k = 0, 1, ...,
each product and each sum rounded once (no fused multiply-add: Numba does not contract them
without ``fastmath``). The inner loop runs along a row of B, so the compiler may vectorise it
across j without changing any sum; rows of C are split between threads, one thread a row.
Simple rather than fast: these products are small (float32 training uses ``dense.matmul``).
"""
import numpy as np
from numba import njit, prange

from .validate import check_inner, check_matrix


@njit(cache=True, parallel=True)
def _product(a, b, c):
    m, k = a.shape
    for i in prange(m):
        for kk in range(k):
            aik = a[i, kk]
            for j in range(b.shape[1]):
                c[i, j] += aik * b[kk, j]


def product_python(a, b):
    """The same loop in plain Python (the kernel's twin, bit for bit; slow): for the tests."""
    m, k = a.shape
    c = np.zeros((m, b.shape[1]), np.float64)
    for i in range(m):
        for kk in range(k):
            for j in range(b.shape[1]):
                c[i, j] = c[i, j] + a[i, kk] * b[kk, j]
    return c


def matmul64(a, b):
    """``a @ b`` for 2-D float64 arrays (or Tensors), the same bits on every CPU; returns float64."""
    a = check_matrix(a, "a", [np.float64])
    b = check_matrix(b, "b", [np.float64])
    check_inner(a.shape, b.shape)
    c = np.zeros((a.shape[0], b.shape[1]), np.float64)
    if c.size:
        _product(np.ascontiguousarray(a), np.ascontiguousarray(b), c)
    return c
