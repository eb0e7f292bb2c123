"""The portable int8 kernel's multiply-add: int16 pairs.

Each 4-byte lane holds two k-values as int16 (X and W widened from int8), and the int32
accumulator gets the sum of the pair's two products: sign-extend, multiply, add even and odd
lanes. That is generic IR, which LLVM turns into ``vpdpwssd`` on AVX512-VNNI and ``vpmaddwd``
on AVX2 (``instruction_counts`` shows it), and into what other CPUs have.
"""
import numpy as np
from llvmlite import ir


def madd_pairs(builder, acc, a, b):
    """IR: ``acc`` (int32 lanes) += a[2i] * b[2i] + a[2i+1] * b[2i+1], ``a``, ``b`` as int16 pairs."""
    lanes = acc.type.count
    pairs, wide = ir.VectorType(ir.IntType(16), 2 * lanes), ir.VectorType(ir.IntType(32), 2 * lanes)
    a32, b32 = (builder.sext(builder.bitcast(v, pairs), wide) for v in (a, b))
    products = builder.mul(a32, b32)
    even, odd = (builder.shuffle_vector(products, ir.Constant(wide, ir.Undefined),
                                        ir.Constant(ir.VectorType(ir.IntType(32), lanes), list(range(first, 2 * lanes, 2))))
                 for first in (0, 1))
    return builder.add(acc, builder.add(even, odd))


def madd_pairs_python(acc, a, b):
    """The same in NumPy: ``acc`` (n,) int32, ``a`` one lane (2,) int16, ``b`` (n, 2) int16; int32 wraps."""
    wide = acc + (b.astype(np.int64) * a).sum(axis=1)
    return ((wide + 2 ** 31) % 2 ** 32 - 2 ** 31).astype(np.int32)
