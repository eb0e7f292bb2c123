"""Which matrix-multiply implementation the engine uses.

``"numba"`` (the default) calls our own kernel, ``minitorch_compress.kernels.matmul``: every
output is one fused multiply-add chain over k in order, so a product gives the same bits on every
CPU and at any thread count, and so does everything trained with it. ``"numpy"`` calls NumPy's
``@`` (OpenBLAS), which picks a different kernel for each CPU family; its sums round differently
from one machine to the next. Lessons switch to it to time both::

    mc.set_backend("numpy")          # globally
    with mc.use_backend("numpy"):    # for a block
        ...
    mc.matmul(a, b, backend="numpy") # for one call

Float64 products (gradient checks, exact Hessians) run ``kernels.matmul64``, a plain loop in a
fixed order, on the "numba" backend too. Batched products (3-D and more, batch dimensions
broadcast) of small matrices run ``kernels.batched_matmul`` (the same chains, so the same bits, in one
call), larger ones the kernel once per matrix. Integer products are exact and always go to NumPy.
"""
from contextlib import contextmanager

import numpy as np

BACKENDS = ("numba", "numpy")
_KERNELS = {np.dtype(np.float32): "matmul", np.dtype(np.float64): "matmul64"}
_current = "numba"
BATCHED_MACS = 64 ** 3   # up to this size per matrix, a batch runs as one ``kernels.batched_matmul`` call


def get_backend():
    return _current


def set_backend(name):
    global _current
    _current = _check(name)


@contextmanager
def use_backend(name):
    global _current
    previous, _current = _current, _check(name)
    try:
        yield
    finally:
        _current = previous


def _check(name):
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {BACKENDS}")
    return name


def matmul_arrays(a, b, backend=None):
    """``a @ b`` on NumPy arrays (2-D or batched) with the chosen backend."""
    name = _current if backend is None else _check(backend)
    if name == "numpy" or a.ndim < 2 or b.ndim < 2 or a.dtype != b.dtype or a.dtype not in _KERNELS:
        return a @ b
    from . import kernels
    matmul = getattr(kernels, _KERNELS[a.dtype])
    if a.ndim == b.ndim == 2:
        return matmul(a, b)
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul shape mismatch: {a.shape} @ {b.shape}")
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    if b.ndim == 2:    # (..., M, K) @ (K, N) is one (.. M, K) @ (K, N) product: the same chains
        return matmul(np.ascontiguousarray(a).reshape(-1, k), b).reshape(batch + (m, n))
    a = np.broadcast_to(a, batch + a.shape[-2:])
    b = np.broadcast_to(b, batch + b.shape[-2:])
    if a.dtype == np.float32 and m * n * k <= BATCHED_MACS:   # small matrices: one call for all of them
        return kernels.batched_matmul(a.reshape((-1, m, k)), b.reshape((-1, k, n))).reshape(batch + (m, n))
    out = np.empty(batch + (m, n), a.dtype)
    for index in np.ndindex(*batch):
        out[index] = matmul(a[index], b[index])
    return out
