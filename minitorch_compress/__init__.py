"""minitorch_compress: a small autograd engine and the tools to make networks smaller and faster."""
import os

# Thread pools must be configured before NumPy (OpenBLAS) and Numba load. The engine alternates
# OpenBLAS and Numba-parallel calls; with the default settings, each library's idle threads spin
# and steal the cores from the other (up to 10x slower on 2 cores). Measured with
# benchmarks/kernels.py --threads (table in benchmarks/README.md): Numba's OpenMP pool with threads
# that sleep as soon as a region ends (OMP_WAIT_POLICY=passive) starts a parallel region in ~3-10 us
# (10-30 us while another process keeps a core busy) and never spins against OpenBLAS. Numba's
# work-queue pool never spins either but took 60-140 us per region, which made every small product
# (a 128x784x256 GEMM, a batch-1 layer, quantize + int8 product + requantize) pay several times its
# work. Short OpenMP spinning (GOMP_SPINCOUNT=1000) was as fast on a quiet machine but 55-80 us per
# region under load: a spinning thread loses its core to the other process, a woken one gets it.
# "omp workqueue tbb" (Numba wants all three named): where no OpenMP runtime is found (e.g. macOS
# without libomp), the work queue. The OpenMP pool is not fork-safe; the package never forks (the
# autograder and Jupyter start fresh processes). A short OpenBLAS spin timeout lets its threads
# sleep soon too. setdefault: a user's own choice (e.g. NUMBA_THREADING_LAYER) wins.
os.environ.setdefault("NUMBA_THREADING_LAYER_PRIORITY", "omp workqueue tbb")
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
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
