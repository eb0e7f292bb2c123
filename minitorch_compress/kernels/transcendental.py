"""exp, log, tanh, erfc and powers that give the same bits on every CPU.

NumPy's float32 ``exp``/``log``/``tanh`` pick a SIMD implementation at run time (AVX-512, AVX2,
baseline, NEON), and the C library picks FMA or SSE2 versions of ``exp``/``log``: each rounds a
little differently, so a model trained on one laptop drifts away from the same run on another.
These functions use only +, -, *, / (which IEEE 754 rounds the same everywhere), exact scaling
by powers of two and float64 intermediates, in a fixed order, and then round once to the input's
dtype. The polynomials are accurate to a few float64 ulps, far below float32's rounding.

    exp(x):  x = k ln2 + r, |r| <= ln2/2  (Cody & Waite: ln2 split in two so k*LN2_HI is exact)
             e^x = 2^k * sum_{n=0}^{13} r^n / n!          (next term < 5e-18 relative)
    log(x):  x = m 2^e, sqrt(1/2) <= m < sqrt(2),  s = (m - 1) / (m + 1),  |s| <= 0.172
             log x = e ln2 + 2 (s + s^3/3 + ... + s^25/25)  (atanh series; next term < 2e-19)
    tanh(x): |x| <= 1/2: t = expm1(2|x|) / (expm1(2|x|) + 2), expm1 by its Taylor series
             |x| >  1/2: t = 1 - 2 / (e^{2|x|} + 1);  the sign of x put back
    erfc(z): erfc |z| = e^{-z^2} erfcx |z|,  erfcx a Chebyshev series of degree 24 in (|z| - 3) / (|z| + 3)
             (3e-15 relative);  erfc(-|z|) = 2 - erfc |z|;  1 for |z| < 2^-56

Each function is a Numba kernel (``exp``, ``log``, ``tanh``, ``erfc``) with a NumPy twin doing the
same operations in the same order (``exp_reference``...; only exp's 2^k is found another way, from a
table, where the kernel sets its exponent bits): the tests check that both agree bit for bit, and
that float32 results are the float64 functions of NumPy (SciPy for erfc) correctly rounded.
``power(x, p)`` builds on them: repeated squaring for an integer p, exp(p log x) otherwise.
"""
import math

import numpy as np
from llvmlite import ir
from numba import config, njit, prange, types
from numba.extending import intrinsic

from . import threads
from .validate import as_array

NS_PER_ELEMENT = 10.0     # one thread, measured for exp and tanh
LN2_HI = 6.93147180369123816490e-01    # ln 2 with its low 32 bits zero (fdlibm): k * LN2_HI is exact
LN2_LO = 1.90821492927058770002e-10    # ln 2 - LN2_HI
INV_LN2 = 1.44269504088896338700e+00
SQRT_HALF = 0.70710678118654757
EXP_COEFFS = tuple(1.0 / math.factorial(n) for n in range(14))               # r^n / n!
EXPM1_COEFFS = tuple(1.0 / math.factorial(n + 1) for n in range(18))         # expm1(y) / y
ATANH_COEFFS = tuple(1.0 / (2 * n + 1) for n in range(13))                   # atanh(s) / s, in s^2
# beyond: inf and 0. EXP_MAX is the largest float64 whose e^x is finite; below EXP_MIN float64's
# last subnormals are given up
EXP_MAX, EXP_MIN = 709.782712893384, -744.0
POW2 = np.ldexp(1.0, np.arange(-1074, 1024))  # 2^k, exact, for k in [-1074, 1023]: 2^k * p rounds once


TWO_M54 = 2.0 ** -54


@intrinsic
def _pow2(typingctx, k):
    """2^k for an integer-valued float64 k in [-1022, 1023] (a normal number): the exponent field
    set directly, ``(k + 1023) << 52``. Converting k through int32 rather than int64 lets LLVM
    vectorise it on AVX2, which has no vector conversion of doubles to 64-bit integers."""
    if not isinstance(k, types.Float):
        return None

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        n = builder.sext(builder.fptosi(args[0], ir.IntType(32)), i64)
        return builder.bitcast(builder.shl(builder.add(n, ir.Constant(i64, 1023)), ir.Constant(i64, 52)),
                               ir.DoubleType())

    return types.float64(types.float64), codegen


def _pow2_python(k):
    """``_pow2`` in Python: what runs with ``NUMBA_DISABLE_JIT=1``."""
    return math.ldexp(1.0, int(k))


if config.DISABLE_JIT:
    _pow2 = _pow2_python


# ----- the scalar functions, as a learner steps through them --------------------------------
@njit(cache=True)
def _horner(coeffs, x):
    p = coeffs[len(coeffs) - 1]
    for i in range(len(coeffs) - 2, -1, -1):
        p = p * x + coeffs[i]
    return p


@njit(cache=True)
def exp_scalar(x):
    """e^x for a float64 x."""
    if x != x:
        return x
    if x > EXP_MAX:
        return math.inf
    if x < EXP_MIN:
        return 0.0
    k = np.floor(x * INV_LN2 + 0.5)      # a float: no conversion to a 64-bit integer and back
    r = (x - k * LN2_HI) - k * LN2_LO
    # times 2^k, rounded once: for a subnormal 2^k (k < -1022), times 2^(k+54) (exact) then 2^-54;
    # for k = 1024 (2^1024 is no float64), times 2^1023 then 2, which overflows only where e^x
    # does. EXP_MIN and EXP_MAX keep k in [-1073, 1024], so _pow2 only sees normal powers of two.
    tiny, huge = k < -1022.0, k > 1023.0
    p = _horner(EXP_COEFFS, r) * _pow2(k + 54.0 if tiny else k - 1.0 if huge else k)
    return p * TWO_M54 if tiny else p * 2.0 if huge else p


@njit(cache=True)
def log_scalar(x):
    """Natural log of a float64 x (nan below 0, -inf at 0)."""
    if x != x or x < 0.0:
        return math.nan
    if x == 0.0:
        return -math.inf
    if x == math.inf:
        return x
    m, e = math.frexp(x)
    if m < SQRT_HALF:
        m, e = m * 2.0, e - 1
    s = (m - 1.0) / (m + 1.0)
    return e * LN2_HI + (e * LN2_LO + 2.0 * s * _horner(ATANH_COEFFS, s * s))


@njit(cache=True)
def tanh_scalar(x):
    """tanh of a float64 x."""
    a = abs(x)
    if a <= 0.5:
        em = 2.0 * a * _horner(EXPM1_COEFFS, 2.0 * a)
        t = em / (em + 2.0)
    else:
        t = 1.0 - 2.0 / (exp_scalar(2.0 * a) + 1.0)
    return math.copysign(t, x)


# erfcx z = exp(z^2) erfc z on [0, inf) as a Chebyshev series in t = (z - 3) / (z + 3), which maps
# [0, inf) onto [-1, 1): the coefficients of the degree-24 polynomial interpolating erfcx at the 25
# Chebyshev nodes, computed once in 40-digit arithmetic (mpmath). Worst relative error of erfcx on
# [0, 27], evaluated in float64 as below: 3.1e-15. erfc's own error grows beyond |z| = 6 with the
# rounding of z^2 in exp(-z^2), about z^2 * 1.1e-16 relative (6e-14 near 26), as in SciPy's erfc.
ERFCX_SCALE = 3.0
ERFC_ONE = 2.0 ** -56   # below it erfc z = 1 - 2z/sqrt(pi) + ... rounds to 1 (the series' sum is 2 ulps short)
ERFCX_CHEBYSHEV = (
    0.32986277475303677, -0.45366152053780207, 0.16039834082156296,
    -0.044908121151122825, 0.009641428650695697, -0.0014425080777443955,
    0.00010099436735379916, 1.20850245344553e-05, -3.6254206027537556e-06,
    7.186810742476415e-08, 8.914235859898217e-08, -7.421566624959606e-09,
    -2.389336570265878e-09, 3.0622355354899236e-10, 7.788945388151069e-11,
    -1.0973745829243855e-11, -3.091520731183782e-12, 3.525433881666995e-13,
    1.3990452165106536e-13, -8.24603777578662e-15, -6.639959717807432e-15,
    -7.977393927933048e-17, 3.0471772634989815e-16, 3.013390739854407e-17,
    -1.2501849841355294e-17,
)
ERFC_BLOCK = 256


@njit(cache=True)
def erfcx_argument(a):
    """t = (a - 3) / (a + 3) for a = |z| >= 0, with t = 1 at a = inf: a is capped at 1e300, where
    t rounds to 1, instead of a branch for inf (LLVM kept that branch's division scalar on AVX2)."""
    c = min(a, 1e300)
    return (c - ERFCX_SCALE) / (c + ERFCX_SCALE)


@njit(cache=True)
def erfc_scalar(z):
    """erfc z for a float64 z: erfc |z| = exp(-z^2) erfcx |z|, erfcx by its Chebyshev series summed
    with Clenshaw's recurrence b_j = 2t b_{j+1} - b_{j+2} + c_j; erfc(-|z|) = 2 - erfc |z|."""
    if z != z:
        return z
    a = abs(z)
    if a < ERFC_ONE:
        return 1.0
    t = erfcx_argument(a)
    b1, b2 = 0.0, 0.0
    for j in range(len(ERFCX_CHEBYSHEV) - 1, 0, -1):
        b1, b2 = 2.0 * t * b1 - b2 + ERFCX_CHEBYSHEV[j], b1
    tail = exp_scalar(-a * a) * (t * b1 - b2 + ERFCX_CHEBYSHEV[0])
    return tail if z >= 0 else 2.0 - tail


# ----- the kernels: the scalar functions over an array, in parallel ----------------------------
@njit(cache=True, parallel=True)
def _exp(x, out):
    for i in prange(x.size):
        out[i] = exp_scalar(np.float64(x[i]))


@njit(cache=True, parallel=True)
def _log(x, out):
    for i in prange(x.size):
        out[i] = log_scalar(np.float64(x[i]))


@njit(cache=True, parallel=True)
def _tanh(x, out):
    for i in prange(x.size):
        out[i] = tanh_scalar(np.float64(x[i]))


@njit(cache=True, parallel=True)
def _erfc(x, out):
    # erfc_scalar, a block of elements at a time: each Clenshaw step depends on the one before, so one
    # element's chain waits on itself; a block's independent chains fill the vector lanes
    for block in prange((x.size + ERFC_BLOCK - 1) // ERFC_BLOCK):
        lo = block * ERFC_BLOCK
        n = min(lo + ERFC_BLOCK, x.size) - lo
        t, b1, b2 = np.empty(n), np.zeros(n), np.zeros(n)
        for e in range(n):
            t[e] = erfcx_argument(abs(np.float64(x[lo + e])))
        for j in range(len(ERFCX_CHEBYSHEV) - 1, 0, -1):
            for e in range(n):
                b1[e], b2[e] = 2.0 * t[e] * b1[e] - b2[e] + ERFCX_CHEBYSHEV[j], b1[e]
        for e in range(n):
            z = np.float64(x[lo + e])
            a = abs(z)
            tail = exp_scalar(-a * a) * (t[e] * b1[e] - b2[e] + ERFCX_CHEBYSHEV[0])
            out[lo + e] = z if z != z else (1.0 if a < ERFC_ONE else (tail if z >= 0 else 2.0 - tail))


def _apply(kernel, x):
    x = np.asarray(x) if np.isscalar(x) else as_array(x, "x")
    if x.dtype.kind in "iub":
        x = x.astype(np.float32)      # as PyTorch: integer tensors give float32
    elif x.dtype not in (np.float32, np.float64):
        raise TypeError(f"x must be a real array, got dtype {x.dtype}")
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty(flat.size, x.dtype)
    threads.run(kernel, flat.size * NS_PER_ELEMENT, flat, out)
    return out.reshape(x.shape)


def exp(x):
    """e^x elementwise for a float32 or float64 array (same dtype out), the same bits on every CPU."""
    return _apply(_exp, x)


def log(x):
    """Natural log elementwise (nan below 0, -inf at 0), the same bits on every CPU."""
    return _apply(_log, x)


def tanh(x):
    """tanh elementwise, the same bits on every CPU."""
    return _apply(_tanh, x)


def erfc(x):
    """The complementary error function elementwise, the same bits on every CPU (GELU's normal CDF)."""
    return _apply(_erfc, x)


def power(x, exponent):
    """``x ** exponent`` elementwise for a float array and a number, the same bits on every CPU.

    An integer exponent multiplies by repeated squaring in float64 (x**2 is x*x, exactly as NumPy
    rounds it in float32); any other exponent is exp(exponent * log x) in float64 (nan for x < 0,
    as NumPy). Integer arrays keep NumPy's exact integer power.
    """
    x = np.asarray(x)
    if x.dtype.kind != "f":
        return x ** exponent
    if not np.isscalar(exponent) or isinstance(exponent, (bool, np.bool_)):
        raise TypeError(f"exponent must be a number, got {type(exponent).__name__}")
    x64 = x.astype(np.float64)
    if float(exponent).is_integer():
        n = abs(int(exponent))
        result, base = np.ones_like(x64), x64
        while n:
            if n & 1:
                result = result * base
            base, n = base * base, n >> 1
        with np.errstate(divide="ignore"):
            out = 1.0 / result if exponent < 0 else result
    else:
        out = exp(float(exponent) * log(x64))
    return out.astype(x.dtype)


# ----- NumPy twins: the same operations in the same order, on whole arrays ---------------------
def _horner_reference(coeffs, x):
    p = np.full_like(x, coeffs[-1])
    for c in coeffs[-2::-1]:
        p = p * x + c
    return p


def _exp64_reference(x):
    inside = np.clip(np.nan_to_num(x, nan=0.0), EXP_MIN, EXP_MAX)
    k = np.floor(inside * INV_LN2 + 0.5)
    r = (inside - k * LN2_HI) - k * LN2_LO
    huge = k > 1023     # 2^1024 is no float64: times 2^1023, then 2
    out = _horner_reference(EXP_COEFFS, r) * POW2[np.minimum(k, 1023).astype(np.int64) + 1074] * np.where(huge, 2.0, 1.0)
    return np.where(x > EXP_MAX, np.inf, np.where(x < EXP_MIN, 0.0, np.where(np.isnan(x), x, out)))


def exp_reference(x):
    x = np.asarray(x)
    return _exp64_reference(x.astype(np.float64)).astype(x.dtype)


def log_reference(x):
    x = np.asarray(x)
    x64 = x.astype(np.float64)
    regular = (x64 > 0) & (x64 < np.inf)
    m, e = np.frexp(np.where(regular, x64, 1.0))
    low = m < SQRT_HALF
    m, e = np.where(low, m * 2.0, m), np.where(low, e - 1, e).astype(np.float64)
    s = (m - 1.0) / (m + 1.0)
    out = e * LN2_HI + (e * LN2_LO + 2.0 * s * _horner_reference(ATANH_COEFFS, s * s))
    special = np.where(x64 == 0, -np.inf, np.where(x64 == np.inf, np.inf, np.nan))
    return np.where(regular, out, special).astype(x.dtype)


def tanh_reference(x):
    x = np.asarray(x)
    a = np.abs(x.astype(np.float64))
    small = np.minimum(a, 0.5)
    em = 2.0 * small * _horner_reference(EXPM1_COEFFS, 2.0 * small)
    t = np.where(a <= 0.5, em / (em + 2.0), 1.0 - 2.0 / (_exp64_reference(2.0 * a) + 1.0))
    return np.copysign(t, x).astype(x.dtype)


def erfc_reference(z):
    """``erfc`` in NumPy, the same operations in the same order, on whole arrays (float64)."""
    z = np.asarray(z, np.float64)
    a = np.abs(z)
    with np.errstate(invalid="ignore", over="ignore"):
        capped = np.minimum(a, 1e300)
        t = (capped - ERFCX_SCALE) / (capped + ERFCX_SCALE)
        b1, b2 = np.zeros_like(t), np.zeros_like(t)
        for c in ERFCX_CHEBYSHEV[:0:-1]:
            b1, b2 = 2.0 * t * b1 - b2 + c, b1
        tail = _exp64_reference(-a * a) * (t * b1 - b2 + ERFCX_CHEBYSHEV[0])
    return np.where(np.isnan(z), z, np.where(a < ERFC_ONE, 1.0, np.where(z >= 0, tail, 2.0 - tail)))
