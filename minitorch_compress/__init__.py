"""minitorch_compress: a small autograd engine and the tools to make networks smaller and faster."""
import os

# Thread pools must be configured before NumPy (OpenBLAS) and Numba load. Waking sleeping threads
# can cost more than a small product takes, so Numba's OpenMP pool spins about a millisecond after
# each region (GOMP_SPINCOUNT) and the kernels of one training step find it awake; OpenBLAS's own
# threads sleep soon (OPENBLAS_THREAD_TIMEOUT), so that they do not take the cores from ours.
# Measurements behind both: benchmarks/README.md ("thread settings", "Training throughput").
# "omp workqueue tbb" (Numba wants all three named): where no OpenMP runtime is found (e.g. macOS
# without libomp), the work queue. The OpenMP pool is not fork-safe; the package never forks (the
# autograder and Jupyter start fresh processes). setdefault: a user's own choice (e.g.
# NUMBA_THREADING_LAYER, OMP_WAIT_POLICY=passive) wins.
os.environ.setdefault("NUMBA_THREADING_LAYER_PRIORITY", "omp workqueue tbb")
os.environ.setdefault("GOMP_SPINCOUNT", "30000")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from .random import manual_seed, get_rng  # noqa: E402
from .tensor import (  # noqa: E402
    Tensor, tensor, no_grad, enable_grad, is_grad_enabled, matmul, cat, stack, where,
    zeros, ones, zeros_like, ones_like, randn, rand, arange,
)
from .backend import get_backend, set_backend, use_backend  # noqa: E402
from .serialization import save, load  # noqa: E402
from . import functional, nn, optim, data, train  # noqa: E402

# The tools load on first use (``mc.prune``, ``mc.quant``, ...), as torch's submodules are there after
# ``import torch``, while ``import minitorch_compress`` stays quick.
_LAZY = ("autograd", "blocks", "contrastive", "distill", "gradcheck", "grading", "kernels", "layerdrop", "lottery",
         "lowrank", "metrics", "mixup", "prune", "quant", "search", "sharing", "sparse", "table", "validation", "vit")


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


qint8 = "qint8"
quint8 = "quint8"

__all__ = [
    "Tensor", "tensor", "no_grad", "enable_grad", "is_grad_enabled", "matmul", "cat", "stack", "where",
    "zeros", "ones", "zeros_like", "ones_like", "randn", "rand", "arange",
    "manual_seed", "get_rng", "get_backend", "set_backend", "use_backend", "save", "load",
    "functional", "nn", "optim", "data", "train", "qint8", "quint8",
]
