"""Count instructions in a kernel's machine code: what lesson 07 shows to explain int8 speed.

Numba does not keep the assembly of functions loaded from its on-disk cache, so the kernel is
compiled once more, uncached, for the signature it already runs with (a few seconds).
"""
import re

import numpy as np

from . import dense, int8
from .microkernel import blocked_product

# kernel name -> (the packed weight's dtype, which picks the micro-kernel; a small call that
# compiles the product loop with it)
_KERNELS = {
    "dense": (np.float32, lambda: dense.matmul(np.ones((2, 3), np.float32), np.ones((3, 2), np.float32))),
    "portable": (np.int16,
                 lambda: int8.int8_matmul(np.ones((2, 8), np.int8), np.ones((8, 3), np.int8), kernel="portable")),
    "vnni": (np.int8, lambda: int8.int8_matmul(np.ones((2, 8), np.int8), np.ones((8, 3), np.int8))),
    "avx2": (np.int8, lambda: int8.int8_matmul(np.ones((2, 8), np.int8), np.ones((8, 3), np.int8))),
}
MNEMONICS = ("vpdpbusd", "vpdpwssd", "vpmaddubsw", "vpmaddwd", "vpmulld", "vfmadd231ps", "vfmadd213ps", "vfmadd132ps")


def instruction_counts(kernel, mnemonics=MNEMONICS):
    """{mnemonic: count} in the compiled code of ``kernel``: "dense", "portable", "vnni" or "avx2".

    Counts are static (instructions in the code, not executions): a loop body with 32
    ``vpdpbusd`` does 32 x 64 int8 multiply-adds per trip. On an AVX512-VNNI host LLVM compiles
    the portable kernel's multiply-add of int16 pairs to ``vpdpwssd`` (32 per instruction; without
    VNNI, ``vpmaddwd`` and an add): half of what ``vpdpbusd`` does, twice what ``vfmadd231ps`` does.
    The AVX2 byte kernel pairs each ``vpmaddubsw`` (32 multiply-adds in 256 bits) with a ``vpmaddwd``.
    """
    from numba import config, from_dtype, njit
    if config.DISABLE_JIT:
        raise RuntimeError("NUMBA_DISABLE_JIT=1: the kernels run as Python, so there is no machine code to count")
    if kernel not in _KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; expected one of {sorted(_KERNELS)}")
    if kernel in ("vnni", "avx2") and kernel != int8.BYTE_KERNEL:
        raise ValueError(f"this CPU's byte kernel is {int8.BYTE_KERNEL}, so there is no {kernel!r} kernel to inspect")
    weight_dtype, warm_up = _KERNELS[kernel]
    warm_up()
    signature = next(sig for sig in blocked_product.signatures if sig[2].dtype == from_dtype(weight_dtype))
    fresh = njit(parallel=True)(blocked_product.py_func)
    fresh.compile(signature)
    asm = "\n".join(fresh.inspect_asm().values())
    return {m: len(re.findall(rf"^\s*{m}\b", asm, re.MULTILINE)) for m in mnemonics}
