"""minitorch_compress: a small autograd engine and the tools to make networks smaller and faster."""
import os

# Thread pools must be configured before NumPy (OpenBLAS) and Numba load. The engine alternates
# OpenBLAS and Numba-parallel calls; with the default settings, each library's idle threads spin
# and steal the cores from the other (up to 2x slower on 2 cores). A work-queue Numba pool and a
# short OpenBLAS spin timeout remove that. setdefault: a user's own choice wins.
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from .random import manual_seed, get_rng  # noqa: E402
from .tensor import (  # noqa: E402
    Tensor, tensor, no_grad, enable_grad, is_grad_enabled, matmul, cat, stack, where,
    zeros, ones, zeros_like, ones_like, randn, rand, arange,
)
from .backend import get_backend, set_backend, use_backend  # noqa: E402
from .serialization import save, load  # noqa: E402
from . import functional, nn, optim, data, train  # noqa: E402

qint8 = "qint8"
quint8 = "quint8"

__all__ = [
    "Tensor", "tensor", "no_grad", "enable_grad", "is_grad_enabled", "matmul", "cat", "stack", "where",
    "zeros", "ones", "zeros_like", "ones_like", "randn", "rand", "arange",
    "manual_seed", "get_rng", "get_backend", "set_backend", "use_backend", "save", "load",
    "functional", "nn", "optim", "data", "train", "qint8", "quint8",
]
