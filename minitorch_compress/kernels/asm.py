"""Count instructions in a kernel's machine code: what lesson 07 shows to explain int8 speed.

Numba does not keep the assembly of functions loaded from its on-disk cache, so the kernel is
compiled once more, uncached, for the signature it already runs with (a few seconds).
"""
import re

import numpy as np

from . import dense, int8, vnni

# kernel name -> (Numba dispatcher, a small call that compiles it with its usual signature)
_KERNELS = {
    "dense": (dense._gemm_packed, lambda: dense.matmul(np.ones((2, 3), np.float32), np.ones((3, 2), np.float32))),
    "portable": (int8.portable_linear,
                 lambda: int8.int8_matmul(np.ones((2, 8), np.int8), np.ones((8, 3), np.int8), kernel="portable")),
    "vnni": (vnni.vnni_linear, lambda: int8.int8_matmul(np.ones((2, 8), np.int8), np.ones((8, 3), np.int8))),
}
MNEMONICS = ("vpdpbusd", "vpdpwssd", "vpmaddwd", "vpmulld", "vfmadd231ps", "vfmadd213ps", "vfmadd132ps")


def instruction_counts(kernel, mnemonics=MNEMONICS):
    """{mnemonic: count} in the compiled code of ``kernel``: "dense", "portable" or "vnni".

    Counts are static (instructions in the code, not executions): a loop body with 32
    ``vpdpbusd`` does 32 x 64 int8 multiply-adds per trip. On an AVX512-VNNI host LLVM compiles
    the portable kernel's widened int32 loop to ``vpdpwssd`` (pairs of int16, 32 per instruction):
    half of what ``vpdpbusd`` does, which is why the hand-written VNNI kernel is faster.
    """
    if kernel not in _KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; expected one of {sorted(_KERNELS)}")
    if kernel == "vnni" and not vnni.has_vnni():
        raise ValueError("this CPU has no AVX512-VNNI, so there is no 'vnni' kernel to inspect")
    dispatcher, warm_up = _KERNELS[kernel]
    warm_up()
    from numba import njit
    fresh = njit(parallel=True)(dispatcher.py_func)
    fresh.compile(dispatcher.signatures[0])
    asm = "\n".join(fresh.inspect_asm().values())
    return {m: len(re.findall(rf"^\s*{m}\b", asm, re.MULTILINE)) for m in mnemonics}
