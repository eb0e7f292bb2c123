"""Batched float32 products ``C[p] = A[p] @ B[p]`` of many small matrices in one call.

Attention multiplies N x H pairs of small matrices (Q K^T and weights V, e.g. 17 x 16 by 16 x 17);
calling the blocked GEMM (``dense.matmul``) once per pair costs more in call overhead than in
arithmetic. Here one parallel loop runs over the pairs::

    for p (in parallel), i:   acc[:] = 0
                for k in order:   acc[j] = fma(A[p, i, k], B[p, k, j], acc[j])   for every j
                C[p, i] = acc

Each element of C is so the chain ``0 + a_0 b_0 + a_1 b_1 + ...`` in the order of k, each step
one fused multiply-add (``llvm.fma``, rounded once): the chain ``dense.matmul`` computes, so the
two give the same bits, on every CPU (vectorising over j does not change any chain).
``batched_matmul_python`` is the loop in NumPy (``fma32``), what runs with ``NUMBA_DISABLE_JIT=1``.
"""
import numpy as np
from llvmlite import ir
from numba import config, njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from . import threads
from .fma import fma32

NS_PER_MAC = 0.1   # one thread, measured on small attention products


@intrinsic
def _fma(typingctx, a, b, acc):
    """float32 ``a * b + acc`` rounded once."""
    sig = types.float32(types.float32, types.float32, types.float32)

    def codegen(context, builder, signature, args):
        f32 = ir.FloatType()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(f32, [f32] * 3), "llvm.fma.f32")
        return builder.call(fn, args)
    return sig, codegen


@njit(cache=True, parallel=True)
def _batched(a, b, c):
    nb, m, k = a.shape
    n = b.shape[2]
    for p in prange(nb):
        for i in range(m):
            for j in range(n):
                c[p, i, j] = 0
            for kk in range(k):
                aik = a[p, i, kk]
                for j in range(n):
                    c[p, i, j] = _fma(aik, b[p, kk, j], c[p, i, j])


def batched_matmul_python(a, b, c):
    """``_batched`` in NumPy: the same chains, a row of C at a time."""
    for p in range(a.shape[0]):
        for i in range(a.shape[1]):
            acc = np.zeros(b.shape[2], np.float32)
            for kk in range(a.shape[2]):
                acc = fma32(a[p, i, kk], b[p, kk], acc)
            c[p, i] = acc


if config.DISABLE_JIT:   # no machine code: run the loop in NumPy
    _batched = batched_matmul_python


def batched_matmul(a, b):
    """``a @ b`` for float32 arrays of shape (P, M, K) and (P, K, N) -> (P, M, N)."""
    if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
        raise TypeError(f"batched_matmul expects NumPy arrays, got {type(a).__name__} and {type(b).__name__}")
    if a.dtype != np.float32 or b.dtype != np.float32:
        raise TypeError(f"batched_matmul expects float32 arrays, got {a.dtype} and {b.dtype}")
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
        raise ValueError(f"batched_matmul: shapes {a.shape} and {b.shape} are not (P, M, K) and (P, K, N)")
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    c = np.empty((a.shape[0], a.shape[1], b.shape[2]), np.float32)
    if c.size:
        threads.run(_batched, a.size * b.shape[2] * NS_PER_MAC, a, b, c)
    return c


def batched_matmul_reference(a, b):
    """Plain NumPy in float64, rounded to float32: what the tests compare with."""
    return (np.asarray(a, np.float64) @ np.asarray(b, np.float64)).astype(np.float32)
