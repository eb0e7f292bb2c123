"""Environments that make this machine compute like another one, for the determinism tests.

Numba compiles for the CPU named by ``NUMBA_CPU_NAME``/``NUMBA_CPU_FEATURES``; NumPy skips the SIMD
paths listed in ``NPY_DISABLE_CPU_FEATURES``; OpenBLAS uses the kernels of ``OPENBLAS_CORETYPE``;
thread counts come from ``NUMBA_NUM_THREADS`` and friends. Each takes effect when the library
loads, so every configuration runs in a fresh process.
"""
import platform

X86 = platform.machine().lower() in ("x86_64", "amd64")
HASWELL = ("+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+cx8,+f16c,+fma,+fsgsbase,+fxsr,+lzcnt,+mmx,+movbe,+pclmul,"
           "+popcnt,+rdrnd,+sahf,+sse,+sse2,+sse3,+sse4.1,+sse4.2,+ssse3,+xsave,+xsaveopt")


def threads(n):
    return {name: str(n) for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


CONFIGURATIONS = {
    "1 thread": threads(1),
    "4 threads": threads(4),
    "generic CPU (no SIMD, no FMA)": {"NUMBA_CPU_NAME": "generic"},
    "another OpenBLAS kernel": {"OPENBLAS_CORETYPE": "Sandybridge" if X86 else "ARMV8"},
}
if X86:
    CONFIGURATIONS["AVX2 laptop (Haswell)"] = {"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": HASWELL}
    CONFIGURATIONS["NumPy without AVX2 and AVX-512"] = {"NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4"}
