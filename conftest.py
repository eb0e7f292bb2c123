"""Test configuration shared by the unit tests and the notebook validation (nbval).

Thread counts default to 2 here, before NumPy or Numba load; the notebook kernels nbval starts
inherit these variables. An explicit setting wins (CI's foreign-CPU lane runs the lessons at
another thread count): the engine gives the same bits at any thread count.
"""
import os

for name, value in {
    "NUMBA_NUM_THREADS": "2",
    "OPENBLAS_NUM_THREADS": "2",
    "OMP_NUM_THREADS": "2",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
}.items():
    os.environ.setdefault(name, value)
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".numba_cache"))

# The package sets how idle threads wait (OpenBLAS's and Numba's) before NumPy loads; imported here,
# its settings also reach the notebook kernels nbval starts, whatever order a lesson imports in.
import minitorch_compress  # noqa: E402,F401
