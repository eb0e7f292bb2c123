"""int8 products with AVX512-VNNI: ``vpdpbusd``, and whether this CPU has it.

``vpdpbusd acc, a, b`` multiplies 64 unsigned bytes of ``a`` by 64 signed bytes of ``b`` and adds
each group of 4 products into one of 16 int32 lanes of ``acc``: 64 multiply-adds in one
instruction, where float32 FMA does 16. To feed it, the weight ``W`` (N, K) is repacked once into
strips of ``NR = 32`` output columns; inside a strip, for each k-group of 4, the 32 columns' 4 bytes
lie side by side (128 bytes = two vectors; ``int8.pack_strips``). The activations stay row-major
(one k-group of a row is an int32 broadcast to all lanes). The micro-kernel (``microkernel.py``)
holds an 8 x 2 tile of int32 vectors (8 rows x 32 columns), and the product runs in parallel over
tiles of C, as the dense kernel does.

The instruction only exists on CPUs with ``avx512_vnni``; ``has_vnni()`` says whether this one
has it (and Numba compiles for it), and ``int8.py`` falls back to its portable kernel elsewhere.
"""
from numba import config

from .microkernel import target_features


def has_vnni():
    """True when Numba compiles for the host CPU and that has AVX512-VNNI."""
    if config.CPU_NAME not in (None, "host"):
        return False      # e.g. NUMBA_CPU_NAME=generic for portable caches: no VNNI code
    return "avx512vnni" in target_features()
