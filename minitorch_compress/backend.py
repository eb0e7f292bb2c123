"""Which matrix-multiply implementation the engine uses.

``"numpy"`` calls NumPy's ``@`` (OpenBLAS); ``"numba"`` calls our own kernel,
``minitorch_compress.kernels.matmul``. Lessons switch between them to time both::

    mc.set_backend("numba")          # globally
    with mc.use_backend("numba"):    # for a block
        ...
    mc.matmul(a, b, backend="numba") # for one call

Our kernel is float32 and 2-D; anything else (float64 gradient checks, batched
products) always goes to NumPy.
"""
from contextlib import contextmanager

import numpy as np

BACKENDS = ("numpy", "numba")
_current = "numpy"


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
    """``a @ b`` on NumPy arrays with the chosen backend."""
    name = _current if backend is None else _check(backend)
    if name == "numba" and a.ndim == 2 and b.ndim == 2 and a.dtype == b.dtype == np.float32:
        from .kernels import matmul
        return matmul(a, b)
    return a @ b
