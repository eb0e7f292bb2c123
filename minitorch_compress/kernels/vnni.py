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
import numpy as np
from llvmlite import ir as llvm_ir
from numba import config
from numba.core import cgutils

from .idioms import target_features


def has_vnni():
    """True when Numba compiles for the host CPU and that has AVX512-VNNI."""
    if config.CPU_NAME not in (None, "host"):
        return False      # e.g. NUMBA_CPU_NAME=generic for portable caches: no VNNI code
    return "avx512vnni" in target_features()


def vpdpbusd(builder, acc, a, b):
    """IR: ``acc`` (16 int32 lanes) += the sum of each lane's 4 products uint8 ``a`` x int8 ``b``."""
    vec = acc.type
    fn = cgutils.get_or_insert_function(builder.module, llvm_ir.FunctionType(vec, [vec] * 3),
                                        "llvm.x86.avx512.vpdpbusd.512")
    return builder.call(fn, [acc, a, b])


def vpdpbusd_python(acc, a, b):
    """The same in NumPy: ``acc`` (n,) int32, ``a`` one lane (4,) uint8, ``b`` (n, 4) int8; int32 wraps."""
    wide = acc + (b.astype(np.int64) * a).sum(axis=1)
    return ((wide + 2 ** 31) % 2 ** 32 - 2 ** 31).astype(np.int32)
