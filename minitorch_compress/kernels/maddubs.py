"""int8 products on AVX2 without VNNI: ``vpmaddubsw`` then ``vpmaddwd``, as FBGEMM's AVX2 path.

The weight is packed as for VNNI (``int8.pack_strips``, a 4-byte lane holds 4 k-values), the
activations are unsigned bytes. For each lane::

    t0 = sat16(a0*b0 + a1*b1),  t1 = sat16(a2*b2 + a3*b3)    # vpmaddubsw: u8 x s8, pairs -> int16
    acc += t0 * 1 + t1 * 1                                   # vpmaddwd against ones -> int32

Two instructions (and an add) per 32 multiply-adds of 256 bits, where the int16-pair kernel
(``int16_pairs.py``) needs ``vpmaddwd`` and an add per 16. The catch is ``sat16``: the pair sum
saturates to [-32768, 32767]. With a in [0, A] and |b| <= B it lies in [-2AB, 2AB], so the result
is exact exactly when ``2 * A * B <= 32767`` (``fits``): 7-bit activations (A = 127, PyTorch's
``reduce_range``) with any int8 weight (B = 128) give 32,512; 8-bit activations (A = 255) need
weights of at most 7 bits (B = 64, 32,640). ``int8.int8_linear`` checks that bound on each call
(A from the codes, B from the packed weight) and runs the int16-pair kernel when it fails, so the
product is exact, the same integers on every CPU, whichever kernel runs.

``has_maddubs()`` says whether Numba compiles for a CPU with AVX2 (and, with AVX-512, AVX512-BW:
then the 512-bit forms of both instructions are used).
"""
import numpy as np
from llvmlite import ir
from numba import config
from numba.core import cgutils

from .idioms import target_features

INT16_MAX = 2 ** 15 - 1


def has_maddubs():
    """True when Numba compiles for a CPU with AVX2 (a named target needs its features listed)."""
    if config.CPU_NAME not in (None, "host") and config.CPU_FEATURES is None:
        return False      # e.g. NUMBA_CPU_NAME=generic: no x86 intrinsics
    return "avx2" in target_features()


def fits(a_max, b_max):
    """Whether u8 codes in [0, a_max] times s8 codes with |b| <= b_max never saturate a pair sum."""
    return 2 * int(a_max) * int(b_max) <= INT16_MAX


def _call(builder, name, ret, *args):
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ret, [v.type for v in args]), name)
    return builder.call(fn, list(args))


def maddubs(builder, acc, a, b):
    """IR: ``acc`` (16 int32 lanes) += the sum of each lane's 4 products uint8 ``a`` x int8 ``b``,
    pairs saturated to int16 (see the module docstring); in 512 bits with AVX512-BW, else in two
    halves of 256."""
    i8, i16, i32 = ir.IntType(8), ir.IntType(16), ir.IntType(32)
    wide = "avx512bw" in target_features()
    lanes = acc.type.count if wide else acc.type.count // 2
    bytes_, words, dwords = ir.VectorType(i8, 4 * lanes), ir.VectorType(i16, 2 * lanes), ir.VectorType(i32, lanes)
    names = (("llvm.x86.avx512.pmaddubs.w.512", "llvm.x86.avx512.pmaddw.d.512") if wide else
             ("llvm.x86.avx2.pmadd.ub.sw", "llvm.x86.avx2.pmadd.wd"))
    ones = ir.Constant(words, [1] * (2 * lanes))
    parts = []
    for h in range(acc.type.count // lanes):
        pick = ir.Constant(ir.VectorType(i32, lanes), list(range(h * lanes, (h + 1) * lanes)))
        a_h, b_h, acc_h = (builder.shuffle_vector(v, ir.Constant(v.type, ir.Undefined), pick) for v in (a, b, acc))
        pairs = _call(builder, names[0], words, builder.bitcast(a_h, bytes_), builder.bitcast(b_h, bytes_))
        parts.append(builder.add(acc_h, _call(builder, names[1], dwords, pairs, ones)))
    if len(parts) == 1:
        return parts[0]
    return builder.shuffle_vector(parts[0], parts[1], ir.Constant(ir.VectorType(i32, 2 * lanes), list(range(2 * lanes))))


def maddubs_python(acc, a, b):
    """The same in NumPy, saturation included: ``acc`` (n,) int32, ``a`` one lane (4,) uint8,
    ``b`` (n, 4) int8; int32 wraps."""
    products = b.astype(np.int64) * a.astype(np.int64)
    pairs = np.clip(products[:, 0::2] + products[:, 1::2], -INT16_MAX - 1, INT16_MAX)
    wide = acc + pairs.sum(axis=1)
    return ((wide + 2 ** 31) % 2 ** 32 - 2 ** 31).astype(np.int32)
