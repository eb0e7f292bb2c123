"""Test configuration shared by the unit tests and the notebook validation (nbval).

Thread counts are pinned here, before NumPy or Numba load, so that float sums split the
same way on every machine (a learner's 8-core laptop too); the notebook kernels nbval
starts inherit these variables.
"""
import os

for name, value in {
    "NUMBA_NUM_THREADS": "2",
    "OPENBLAS_NUM_THREADS": "2",
    "OMP_NUM_THREADS": "2",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
}.items():
    os.environ[name] = value
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".numba_cache"))
